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
# The most a voice note or an audio file really has (WhatsApp: 16 or 48 kHz, mono; a song: 48 kHz stereo). Decoding
# costs input samples, not output seconds: a 170 KB FLAC declaring 1 MHz and 8 channels took ~31 s to decode.
MAX_SOURCE_RATE = 48_000
MAX_SOURCE_CHANNELS = 2


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
    with _open(audio) as container:
        refuse_unusual(_audio_stream(container))
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
    source_limit = int(max_seconds * MAX_SOURCE_RATE * MAX_SOURCE_CHANNELS)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    samples = source_samples = 0
    try:
        with _open(audio) as container:
            stream = _audio_stream(container)
            refuse_unusual(stream)
            for frame in _frames(container.decode(stream)):
                # What the decoder produced, whatever the stream declared: a frame may claim another rate or layout.
                source_samples += frame.samples * max(len(frame.layout.channels), 1)
                if frame.sample_rate > MAX_SOURCE_RATE or len(frame.layout.channels) > MAX_SOURCE_CHANNELS:
                    raise UnreadableAudio("The audio's sample rate or channel count is not one a voice note has.")
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    samples += chunks[-1].size
                if samples > limit or source_samples > source_limit:
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


def refuse_unusual(stream: av.AudioStream) -> None:
    """`UnreadableAudio` for a stream whose declared rate or channels no voice note has, before decoding any of it."""
    rate, channels = stream.sample_rate or 0, stream.channels or 0
    if rate > MAX_SOURCE_RATE or channels > MAX_SOURCE_CHANNELS:
        raise UnreadableAudio(f"Audio at {rate} Hz with {channels} channels is not a voice note; it is not transcribed.")


def _open(audio: bytes) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise UnreadableAudio(f"The file is not audio that can be read ({exc}).") from exc


def _audio_stream(container: av.container.InputContainer) -> av.AudioStream:
    if not container.streams.audio:
        raise UnreadableAudio(f"The file ({container.format.name}) has no audio in it.")
    return container.streams.audio[0]


def _frames(frames):  # av.AudioFrame iterator
    """Frames up to the first damaged packet: a voice note cut short still has its first words."""
    try:
        yield from frames
    except av.InvalidDataError:
        return
