"""WhatsApp pairing codes drawn as PNG images."""

from __future__ import annotations

import io

import segno


def qr_png(data: str, *, scale: int = 6) -> bytes:
    """A full QR code (never a Micro QR: phones can't scan those) with the quiet zone scanners need."""
    code = segno.make_qr(data, error="l")
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
