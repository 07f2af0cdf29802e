"""Transcription: real-time factor and words heard of voice notes in Portuguese, Spanish and English, per model.

Speaks customer questions with espeak-ng (`-v pt-br`, `-v es`, `-v en`), encodes them as WhatsApp voice notes
(ogg/opus, 48 kHz mono) and transcribes each through the product's own `WhisperTranscriber` (length check, PyAV
decoding and faster-whisper in a worker thread): a short note (one question, ~3 s) and a long one (four, ~12 s)
per language. Whisper base (multilingual, the default) runs with the language passed in (the contact's, as the
product does when it knows it), auto-detected among the assistant's languages (`--among`), and freely
auto-detected; Whisper tiny.en, the former default, runs in the same process on the same notes for comparison.

The real-time factor (RTF) is transcription seconds / audio seconds, the median of `--rounds`. "Heard" is the
share of the words said that the transcript has, accents and case ignored (a sanity check, not a word error
rate). espeak-ng's voices are synthetic and harder to hear than a person: the words-heard figures are a floor.

    python -m bench.transcription [--models base,tiny.en] [--rounds 2] [--among en,pt,es]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
import unicodedata
from pathlib import Path

from backend.speech import audio
from backend.speech.whisper import WhisperTranscriber
from bench.common import quiet_logs
from tests.speech_support import speak, to_ogg_opus

# What customers ask a bakery, as they would say it, per espeak-ng voice.
QUESTIONS = {
    "pt": (
        "pt-br",
        [
            "Bom dia, eu queria saber a que horas vocês abrem no sábado.",
            "Quanto custa o pão de queijo?",
            "Vocês fazem entrega no centro da cidade?",
            "Posso pagar com cartão de crédito quando buscar o pedido?",
        ],
    ),
    "es": (
        "es",
        [
            "Buenos días, quería saber a qué hora abren el sábado.",
            "¿Cuánto cuesta el pan de queso?",
            "¿Hacen entregas en el centro de la ciudad?",
            "¿Puedo pagar con tarjeta de crédito cuando recoja el pedido?",
        ],
    ),
    "en": (
        "en",
        [
            "Good morning, I would like to know what time you open on Saturday.",
            "How much is the cheese bread?",
            "Do you deliver to the city centre?",
            "Can I pay by credit card when I pick up my order?",
        ],
    ),
}


def words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.lower())
    return re.findall(r"[a-z']+", "".join(c for c in plain if not unicodedata.combining(c)))


def heard(said: str, transcript: str) -> float:
    got = set(words(transcript))
    spoken = words(said)
    return sum(word in got for word in spoken) / len(spoken)


def seconds_of(note: bytes) -> float:
    return audio.decode(note, max_seconds=3600).size / audio.SAMPLE_RATE


async def measure(
    transcriber: WhisperTranscriber, note: bytes, rounds: int, **options
) -> tuple[float, str, str]:  # (median seconds, transcript, language heard)
    times, text, language = [], "", ""
    for _ in range(rounds):
        started = time.perf_counter()
        transcript = await transcriber.transcribe(note, **options)
        times.append(time.perf_counter() - started)
        text, language = transcript.text, transcript.language
    return statistics.median(times), text, language


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", default="base,tiny.en", help="faster-whisper models (base, tiny.en = the packaged ones)")
    p.add_argument("--rounds", type=int, default=2, help="Transcriptions per note and mode (the median is shown)")
    p.add_argument("--among", default="en,pt,es", help="The assistant's languages, for detection among them")
    p.add_argument("--languages", default="pt,es,en", help="Languages of the notes")
    p.add_argument("--compute-type", default="int8")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of the model; 0 = all cores")
    p.add_argument("--models-dir", type=Path, default=None, help="Where Whisper base is joined (default: a temp dir)")
    args = p.parse_args()
    quiet_logs()
    among = tuple(code.strip() for code in args.among.split(",") if code.strip())
    languages = [code.strip() for code in args.languages.split(",") if code.strip() in QUESTIONS]

    print("speaking the notes with espeak-ng…", flush=True)
    notes = []  # (language, kind, text, note, audio seconds)
    for code in languages:
        voice, questions = QUESTIONS[code]
        for kind, text in (("short", questions[1]), ("long", " ".join(questions))):
            note = to_ogg_opus(speak(text, voice=voice))
            notes.append((code, kind, text, note, seconds_of(note)))

    models_dir = args.models_dir or Path(tempfile.mkdtemp(prefix="bench-whisper-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; {args.rounds} rounds, median shown")
    header = f"{'model':>8} {'mode':>13} {'lang':>4} {'note':>5} {'audio s':>7} {'took s':>7} {'RTF':>6} {'heard':>6} {'as':>3}"
    rows: list[tuple[str, str, str, str, float, float, float, str]] = []
    for model in [name.strip() for name in args.models.split(",") if name.strip()]:
        transcriber = WhisperTranscriber(
            model, compute_type=args.compute_type, threads=args.threads, max_seconds=3600, models_dir=models_dir
        )
        started = time.perf_counter()
        await asyncio.to_thread(transcriber.load)
        print(f"\n{model}: loaded in {time.perf_counter() - started:.2f} s from {transcriber.describe()['source']} "
              f"({transcriber.threads} threads, {args.compute_type})")  # fmt: skip
        print(header)
        english_only = model.endswith(".en")
        modes = [("given", {})] if english_only else [("given", {}), (f"among {','.join(among)}", {"among": among}), ("auto", {})]
        for mode, options in modes:
            for code, kind, text, note, seconds in notes:
                given = {"language": code} if mode == "given" else {}
                took, transcript, language = await measure(transcriber, note, args.rounds, **given, **options)
                share = heard(text, transcript)
                rows.append((model, mode, code, kind, seconds, took, share, language))
                print(f"{model:>8} {mode:>13} {code:>4} {kind:>5} {seconds:>7.1f} {took:>7.2f} {took / seconds:>6.3f} "
                      f"{share:>6.0%} {language:>3}", flush=True)  # fmt: skip
        await transcriber.close()

    print("\nsummary (all notes of each model and mode): audio-weighted RTF, mean words heard")
    for key in dict.fromkeys((model, mode) for model, mode, *_ in rows):
        chosen = [row for row in rows if (row[0], row[1]) == key]
        rtf = sum(row[5] for row in chosen) / sum(row[4] for row in chosen)
        per_language = {code: statistics.mean(row[6] for row in chosen if row[2] == code) for code in languages}
        shares = ", ".join(f"{code} {share:.0%}" for code, share in per_language.items())
        print(f"  {key[0]:>8} {key[1]:>13}: RTF {rtf:.3f}; heard {shares}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
