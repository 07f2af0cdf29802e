"""Speech: voice notes turned into the customer's words, locally (see `base.Transcriber`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.speech.base import (
    AudioTooLong,
    Transcriber,
    TranscriberUnavailable,
    Transcript,
    TranscriptionError,
    UnreadableAudio,
)

if TYPE_CHECKING:
    from backend.settings import Settings

__all__ = [
    "AudioTooLong",
    "Transcriber",
    "TranscriberUnavailable",
    "Transcript",
    "TranscriptionError",
    "UnreadableAudio",
    "make_transcriber",
]


def make_transcriber(settings: Settings) -> Transcriber:
    """The transcriber these settings describe (its model loads at start-up or on the first voice note)."""
    from backend.speech.whisper import WhisperTranscriber

    return WhisperTranscriber(
        settings.whisper_model,
        language=settings.whisper_language,
        compute_type=settings.whisper_compute_type,
        threads=settings.whisper_threads,
        concurrency=settings.transcribe_concurrency,
        max_seconds=settings.voice_max_seconds,
        models_dir=settings.data_dir / "models",
    )
