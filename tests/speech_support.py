"""Real speech for the tests: Debian's espeak-ng says a sentence, PyAV puts it in the containers bridges deliver."""

from __future__ import annotations

import io
import shutil
import subprocess

import av
import numpy as np

ESPEAK = "espeak-ng"
INSTALL = "install it with `sudo apt-get install -y espeak-ng` (scripts/test.sh does)"


def speak(text: str, *, words_per_minute: int = 140, voice: str = "en") -> bytes:
    """A WAV file (22.05 kHz mono) of espeak-ng saying `text` in `voice` (en, pt-br, es, de, ...)."""
    binary = shutil.which(ESPEAK)
    assert binary is not None, f"{ESPEAK} is not installed: the speech tests need it; {INSTALL}"
    args = [binary, "-v", voice, "-s", str(words_per_minute), "--stdout", text]
    done = subprocess.run(args, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout[:4] == b"RIFF", f"{ESPEAK} failed: {done.stderr.decode(errors='replace')}"
    return done.stdout


def silence_wav(seconds: float, *, rate: int = 16_000) -> bytes:
    """A WAV file of digital silence."""
    return encode(np.zeros(int(seconds * rate), dtype=np.int16), rate, "wav", "pcm_s16le", rate)


def to_ogg_opus(wav: bytes) -> bytes:
    """Ogg/Opus, 48 kHz mono: what a WhatsApp voice note is."""
    return convert(wav, "ogg", "libopus", 48_000)


def convert(audio: bytes, container: str, codec: str, rate: int) -> bytes:
    """`audio` re-encoded as mono `codec` at `rate` in `container` (ogg, webm, mp4, mp3, wav, ...)."""
    with av.open(io.BytesIO(audio)) as source:
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in _mono_s16(source, source.streams.audio[0].rate)])
        return encode(samples, source.streams.audio[0].rate, container, codec, rate)


def encode(samples: np.ndarray, sample_rate: int, container: str, codec: str, rate: int) -> bytes:
    """Mono 16-bit `samples` at `sample_rate` written as `codec` at `rate` in `container`."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=rate, layout="mono")
        # Encoders take frames of their own size (opus: 20 ms, aac: 1024 samples); the resampler cuts them so.
        frame_size = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate, frame_size=frame_size)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            target.mux(stream.encode(resampled))
        target.mux(stream.encode(None))
    return out.getvalue()


def _mono_s16(source: av.container.InputContainer, rate: int):  # av.AudioFrame iterator
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    for frame in source.decode(audio=0):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
