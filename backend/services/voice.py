"""Voice notes heard before they are answered: fetched through the gateway, transcribed locally in the
contact's language (or the most likely of the assistant's), the transcript stored as the customer's words.
A note that cannot be heard gets the polite reply instead."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import replace

import structlog

from backend import metrics
from backend.gateways.base import ChannelRef, Gateway, MediaRef
from backend.gateways.errors import retryable
from backend.runtime import Runtime
from backend.speech.base import Transcript, TranscriptionError
from backend.store import media as media_store
from backend.store import messages as messages_store
from backend.store.messages import MessageRow

log = structlog.get_logger(__name__)

UNCLEAR = "voice_unclear"  # the reason of a voice note nobody could hear: it gets policy.voice_unclear_reply


async def hear_voice_notes(
    rt: Runtime,
    gateway: Gateway,
    ref: ChannelRef,
    batch: list[MessageRow],
    *,
    language: str | None = None,
    among: Collection[str] | None = None,
) -> list[MessageRow]:
    """The burst with each voice note's text its transcript and `heard_language` the language it was heard in
    (or its reason `voice_unclear`). `language`: the contact's, when known (Whisper's own detection is unreliable
    on short notes); otherwise the most likely of `among` (the assistant's languages). A download that may work
    later raises, so the job retries it with back-off; nothing is answered before."""
    notes = [message for message in batch if message.reason == "voice_note"]
    if not notes:
        return batch
    media = await media_store.media_of(rt.db, [message.id for message in notes])
    heard: dict[int, MessageRow] = {}
    for message in notes:
        row = media.get(message.id)
        transcript, error = (
            await _hear(rt, gateway, ref, message, row, language, among) if row is not None else (None, "no_media")
        )
        if transcript is not None:
            heard[message.id] = replace(message, text=transcript.text, reason=None, heard_language=transcript.language)
        else:
            await messages_store.set_inbound_status(rt.db, [message.id], "pending", UNCLEAR)
            await media_store.save_media_error(rt.db, message.id, error or "empty")
            heard[message.id] = replace(message, reason=UNCLEAR)
    return [heard.get(message.id, message) for message in batch]


async def _hear(
    rt: Runtime,
    gateway: Gateway,
    ref: ChannelRef,
    message: MessageRow,
    row: media_store.MediaRow,
    language: str | None,
    among: Collection[str] | None,
) -> tuple[Transcript | None, str | None]:
    """(transcript with words, why not) of one voice note."""
    if row.data is None and row.error in media_store.REFUSED_ON_ARRIVAL:
        return None, row.error
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
            return None, getattr(exc, "code", None) or type(exc).__name__
        await media_store.save_download(rt.db, message.id, data)
    started = time.perf_counter()
    try:
        transcript = await rt.transcriber.transcribe(data, language=language, among=among)
    except TranscriptionError as exc:
        log.warning("voice.unheard", message=message.id, error=exc.code)
        return None, exc.code
    seconds = time.perf_counter() - started
    metrics.TRANSCRIPTION_SECONDS.observe(seconds)
    metrics.VOICE_NOTE_SECONDS.observe(transcript.duration_seconds)
    if transcript.empty:
        return None, "nothing_heard"
    await media_store.save_heard(rt.db, message.id, transcript.text, transcript.model, transcript.duration_seconds, seconds)
    log.info(
        "voice.heard",
        message=message.id,
        language=transcript.language,
        audio_seconds=round(transcript.duration_seconds, 1),
        seconds=round(seconds, 2),
    )
    return transcript, None
