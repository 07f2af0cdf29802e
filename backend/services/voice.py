"""Voice notes heard before they are answered: fetched through the gateway, transcribed locally, the
transcript stored as the customer's words. A note that cannot be heard gets the polite reply instead."""

from __future__ import annotations

import time
from dataclasses import replace

import structlog

from backend import metrics
from backend.gateways.base import ChannelRef, Gateway, MediaRef
from backend.gateways.errors import retryable
from backend.runtime import Runtime
from backend.speech.base import TranscriptionError
from backend.store import media as media_store
from backend.store import messages as messages_store
from backend.store.messages import MessageRow

log = structlog.get_logger(__name__)

UNCLEAR = "voice_unclear"  # the reason of a voice note nobody could hear: it gets policy.voice_unclear_reply


async def hear_voice_notes(rt: Runtime, gateway: Gateway, ref: ChannelRef, batch: list[MessageRow]) -> list[MessageRow]:
    """The burst with each voice note's text its transcript (or its reason `voice_unclear`). A download
    that may work later raises, so the job retries it with back-off; nothing is answered before."""
    notes = [message for message in batch if message.reason == "voice_note"]
    if not notes:
        return batch
    media = await media_store.media_of(rt.db, [message.id for message in notes])
    heard: dict[int, MessageRow] = {}
    for message in notes:
        row = media.get(message.id)
        text, error = await _hear(rt, gateway, ref, message, row) if row is not None else ("", "no_media")
        if text:
            heard[message.id] = replace(message, text=text, reason=None)
        else:
            await messages_store.set_inbound_status(rt.db, [message.id], "pending", UNCLEAR)
            await media_store.save_media_error(rt.db, message.id, error or "empty")
            heard[message.id] = replace(message, reason=UNCLEAR)
    return [heard.get(message.id, message) for message in batch]


async def _hear(
    rt: Runtime, gateway: Gateway, ref: ChannelRef, message: MessageRow, row: media_store.MediaRow
) -> tuple[str, str | None]:
    """(transcript, why not) of one voice note."""
    if row.data is None and row.error in media_store.REFUSED_ON_ARRIVAL:
        return "", row.error
    data = row.data
    if data is None:
        ref_media = MediaRef(kind=row.kind, handle=row.handle, mimetype=row.mimetype, filename=row.filename, size=row.size_bytes)  # type: ignore[arg-type]
        try:
            data = await gateway.download_media(ref, ref_media, rt.settings.media_max_bytes)
        except Exception as exc:
            if retryable(exc):
                await media_store.save_media_error(rt.db, message.id, f"download failed, retrying: {type(exc).__name__}")
                raise
            log.warning("voice.download_refused", message=message.id, error=type(exc).__name__)
            return "", getattr(exc, "code", None) or type(exc).__name__
        await media_store.save_download(rt.db, message.id, data)
    started = time.perf_counter()
    try:
        transcript = await rt.transcriber.transcribe(data)
    except TranscriptionError as exc:
        log.warning("voice.unheard", message=message.id, error=exc.code)
        return "", exc.code
    seconds = time.perf_counter() - started
    metrics.TRANSCRIPTION_SECONDS.observe(seconds)
    metrics.VOICE_NOTE_SECONDS.observe(transcript.duration_seconds)
    if transcript.empty:
        return "", "nothing_heard"
    await media_store.save_heard(rt.db, message.id, transcript.text, transcript.model, transcript.duration_seconds, seconds)
    log.info("voice.heard", message=message.id, audio_seconds=round(transcript.duration_seconds, 1), seconds=round(seconds, 2))
    return transcript.text, None
