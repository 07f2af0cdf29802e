"""Audio bytes of any container and codec the bridges deliver → 16 kHz mono samples, with PyAV.

PyAV bundles FFmpeg's libraries, so ogg/opus voice notes, mp4/aac, mpeg, wav and webm need no
system ffmpeg. The length cap is checked twice: against the duration the container states,
before anything is decoded, and while decoding (a file may state no duration, or a false one),
so an over-long file never costs more than the cap's worth of decoding.
"""

from __future__ import annotations

import io

import av
import numpy as np

from backend.speech.base import AudioTooLong, UnreadableAudio

SAMPLE_RATE = 16_000  # what Whisper models take


def stated_duration(audio: bytes) -> float | None:
    """Seconds the container says it lasts (None when it does not say, as MediaRecorder's webm often does)."""
    with _open(audio) as container:
        stream = _audio_stream(container)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
        return None


def refuse_if_too_long(audio: bytes, *, max_seconds: float) -> None:
    """`AudioTooLong` when the container states a duration over the cap; nothing is decoded."""
    stated = stated_duration(audio)
    if stated is not None and stated > max_seconds:
        raise AudioTooLong(
            f"The audio lasts {stated:.0f} s; at most {max_seconds:.0f} s is transcribed.",
            duration_seconds=stated,
            max_seconds=max_seconds,
        )


def decode(audio: bytes, *, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at 16 kHz; `AudioTooLong` as soon as the decoded audio passes `max_seconds`."""
    limit = int(max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    samples = 0
    try:
        with _open(audio) as container:
            for frame in _frames(container.decode(_audio_stream(container))):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    samples += chunks[-1].size
                if samples > limit:
                    raise AudioTooLong(
                        f"The audio lasts more than {max_seconds:.0f} s, the most that is transcribed.",
                        duration_seconds=None,
                        max_seconds=max_seconds,
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise UnreadableAudio(f"The audio could not be decoded ({exc}).") from exc
    if not chunks or sum(chunk.size for chunk in chunks) == 0:
        raise UnreadableAudio("The file holds no audio that could be decoded.")
    return np.concatenate(chunks)


def _open(audio: bytes) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise UnreadableAudio(f"The file is not audio that can be read ({exc}).") from exc


def _audio_stream(container: av.container.InputContainer) -> av.AudioStream:
    if not container.streams.audio:
        raise UnreadableAudio(f"The file ({container.format.name}) has no audio in it.")
    return container.streams.audio[0]


def _frames(frames):  # noqa: ANN001, ANN202 - av.AudioFrame iterator
    """Frames up to the first damaged packet: a voice note cut short still has its first words."""
    try:
        yield from frames
    except av.InvalidDataError:
        return
