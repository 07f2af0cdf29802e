"""Transcription: real-time factor of voice notes on this machine, and the latency a voice note adds to its reply.

Speaks clips of about 5, 15, 30 and 60 s with espeak-ng, encodes them as WhatsApp voice notes
(ogg/opus, 48 kHz mono) and transcribes each through the product's own `WhisperTranscriber`
(length check, PyAV decoding and faster-whisper in a worker thread), `--rounds` times. The
baselines, measured in the same run: decoding the same note alone (what PyAV costs, no model),
and the 5 s clip's real-time factor (so longer clips show what length adds beyond the fixed cost).

    python -m bench.transcription [--model tiny.en] [--clips 5,15,30,60] [--rounds 3] [--note-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time

from backend.speech import audio
from backend.speech.whisper import WhisperTranscriber
from bench.common import quiet_logs
from tests.speech_support import speak, to_ogg_opus

# What customers ask a business, spoken one after another until a clip is long enough.
SENTENCES = [
    "Good morning, I would like to know what time you open on Saturday.",
    "Is the museum open on Sunday morning?",
    "Can I pay by credit card when I pick up my order?",
    "My parcel did not arrive yesterday, could you check where it is?",
    "We are a group of six people and we want to book a table for dinner.",
    "Do you have parking near the shop, or should we take the train?",
    "I bought a blue jacket last week and it is too small, can I change it?",
    "Please call me back this afternoon, I am free after three o'clock.",
]


def clip_text(seconds: float, sentence_seconds: list[float]) -> str:
    """Sentences (cycling) whose spoken lengths add up to about `seconds` (the nearest sum, short or over)."""
    chosen, total = [], 0.0
    while total < seconds:
        index = len(chosen) % len(SENTENCES)
        if chosen and total + sentence_seconds[index] - seconds > seconds - total:
            break
        chosen.append(SENTENCES[index])
        total += sentence_seconds[index]
    return " ".join(chosen)


def seconds_of(note: bytes) -> float:
    return audio.decode(note, max_seconds=3600).size / audio.SAMPLE_RATE


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def heard(said: str, transcript: str) -> float:
    """Share of the words said that the transcript has (a sanity check of the figures, not a word error rate)."""
    got = set(words(transcript))
    spoken = words(said)
    return sum(word in got for word in spoken) / len(spoken)


def decode_seconds(note: bytes, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        audio.decode(note, max_seconds=3600)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def transcribe_seconds(transcriber: WhisperTranscriber, note: bytes, rounds: int) -> tuple[float, str]:
    times, text = [], ""
    for _ in range(rounds):
        started = time.perf_counter()
        text = (await transcriber.transcribe(note)).text
        times.append(time.perf_counter() - started)
    return statistics.median(times), text


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="tiny.en", help="faster-whisper model name or folder (tiny.en = the bundled one)")
    p.add_argument("--clips", default="5,15,30,60", help="Clip lengths to measure, in seconds of speech")
    p.add_argument("--rounds", type=int, default=3, help="Transcriptions per clip (the median is shown)")
    p.add_argument("--note-seconds", type=float, default=10.0, help="Length of the 'typical voice note'")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of the model; 0 = all cores")
    args = p.parse_args()
    quiet_logs()
    targets = [float(value) for value in args.clips.split(",") if value.strip()]
    if not targets:
        p.error("--clips needs at least one length")

    print("speaking the clips with espeak-ng…", flush=True)
    sentence_seconds = [seconds_of(speak(sentence)) for sentence in SENTENCES]
    clips = []
    for target in [*targets, args.note_seconds]:
        text = clip_text(target, sentence_seconds)
        note = to_ogg_opus(speak(text))
        clips.append((target, text, note, seconds_of(note)))

    # A first voice note after a start also waits for the model to load.
    _, note_text, note, note_audio = clips.pop()
    transcriber = WhisperTranscriber(
        args.model, compute_type=args.compute_type, threads=args.threads, concurrency=1, max_seconds=3600
    )
    started = time.perf_counter()
    await transcriber.transcribe(note)
    cold = time.perf_counter() - started
    print(f"\nmodel {transcriber.model_name} ({transcriber.describe()['source']}), {args.compute_type}, "
          f"{transcriber.threads} threads, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}); "
          f"{args.rounds} rounds each, median shown")  # fmt: skip

    rows = []
    for target, text, clip, seconds in clips:
        decoded = decode_seconds(clip, args.rounds)
        took, transcript = await transcribe_seconds(transcriber, clip, args.rounds)
        rows.append((target, seconds, decoded, took, heard(text, transcript)))
    base_rtf = rows[0][3] / rows[0][1]
    print(f"\n{'clip':>5} {'audio s':>8} {'decode s':>9} {'transcribe s':>13} {'RTF':>6} {'x decode':>9} "
          f"{f'RTF x {rows[0][0]:.0f} s clip':>15} {'words heard':>12}")  # fmt: skip
    for target, seconds, decoded, took, share in rows:
        rtf = took / seconds
        print(f"{target:>4.0f}s {seconds:>8.1f} {decoded:>9.3f} {took:>13.2f} {rtf:>6.3f} {took / decoded:>9.0f} "
              f"{rtf / base_rtf:>15.2f} {share:>11.0%}")  # fmt: skip

    warm, transcript = await transcribe_seconds(transcriber, note, args.rounds)
    print(f"\na typical {note_audio:.1f} s voice note adds {warm:.2f} s to its reply (RTF {warm / note_audio:.3f}, "
          f"words heard {heard(note_text, transcript):.0%});")  # fmt: skip
    print(f"the first one after a start adds {cold:.2f} s (loading the model included)")
    await transcriber.close()


if __name__ == "__main__":
    asyncio.run(main())
