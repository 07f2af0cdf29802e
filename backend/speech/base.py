"""What the reply pipeline speaks to turn a voice note into words: one interface, its result and its errors."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when nothing was said (silence, noise): the caller asks the customer to type instead
    language: str  # what the model heard it in: "pt", "en", ... (the contact's language when it was given)
    duration_seconds: float  # of the audio
    seconds_taken: float  # decoding + transcription, without waiting for a turn
    model: str
    # How sure the model's own language detection was; None when the language was given (the contact's,
    # WHISPER_LANGUAGE, the assistant's only language, or English for an English-only model).
    language_probability: float | None = None

    @property
    def empty(self) -> bool:
        return not self.text


class TranscriptionError(Exception):
    """Base of what `Transcriber.transcribe` raises; `code` is what traces and metrics show."""

    code = "transcription_failed"


class UnreadableAudio(TranscriptionError):
    """The bytes are not audio any decoder knows (corrupt, truncated to nothing, an image, ...)."""

    code = "unreadable_audio"


class AudioTooLong(TranscriptionError):
    """Longer than the cap: refused before it was decoded (or as soon as decoding passed the cap)."""

    code = "audio_too_long"

    def __init__(self, message: str, *, duration_seconds: float | None, max_seconds: float) -> None:
        super().__init__(message)
        self.duration_seconds = duration_seconds  # None when the file did not say and decoding stopped at the cap
        self.max_seconds = max_seconds


class TranscriberUnavailable(TranscriptionError):
    """The model cannot be loaded (missing package or folder, a name that cannot be downloaded offline)."""

    code = "transcriber_unavailable"


class Transcriber(Protocol):
    model_name: str

    async def transcribe(self, audio: bytes, *, language: str | None = None, among: Collection[str] | None = None) -> Transcript:
        """The words in `audio` (ogg/opus, mp4/aac, mpeg, wav, webm, ...), computed off the event loop, heard in
        `language` (the contact's, when known) or else in the most likely of `among` (the assistant's languages)."""
        ...

    def load(self) -> None:
        """Load the model now, blocking (start-up calls it from a thread); `TranscriberUnavailable` if it cannot be."""
        ...

    def describe(self) -> dict[str, Any]:
        """For the status page: which model, whether it is loaded, why it cannot be."""
        ...

    async def close(self) -> None: ...
