"""Voice notes transcribed by the real bundled model (Whisper tiny.en), from real speech (espeak-ng)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from backend.settings import Settings
from backend.speech import AudioTooLong, TranscriberUnavailable, UnreadableAudio, make_transcriber
from backend.speech.audio import decode
from backend.speech.whisper import WhisperTranscriber
from tests.speech_support import convert, silence_wav, speak, to_ogg_opus

QUESTION = "What time do you open on Saturday?"
QUESTION_WORDS = ("time", "open", "saturday")
# Generous bounds: a hang fails the test instead of the run, and a slow CI machine still passes.
TRANSCRIBE_TIMEOUT = 120
REFUSE_TIMEOUT = 10


def assert_words(text: str, words: tuple[str, ...]) -> None:
    missing = [word for word in words if word not in text.lower()]
    assert not missing, f"{missing} not heard in {text!r}"


@pytest.fixture(scope="module")
def question_wav() -> bytes:
    return speak(QUESTION)


@pytest.fixture(scope="module")
def question_ogg(question_wav: bytes) -> bytes:
    return to_ogg_opus(question_wav)


async def test_a_spoken_question_in_an_ogg_opus_voice_note_is_transcribed(question_ogg: bytes):
    assert question_ogg[:4] == b"OggS"
    transcriber = make_transcriber(Settings(_env_file=None))
    assert transcriber.describe()["loaded"] is False, "the model loads on the first voice note, not before"
    transcript = await asyncio.wait_for(transcriber.transcribe(question_ogg), TRANSCRIBE_TIMEOUT)
    assert_words(transcript.text, QUESTION_WORDS)
    assert transcript.model == "tiny.en" and transcript.language == "en"
    assert 2.0 < transcript.duration_seconds < 4.5  # espeak says it in ~3 s
    assert transcript.seconds_taken > 0 and not transcript.empty
    assert transcriber.describe()["loaded"] is True and transcriber.describe()["bundled"] is True


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("webm", "libopus", 48_000), ("mp4", "aac", 44_100), ("mp3", "libmp3lame", 44_100), ("wav", "pcm_s16le", 16_000)],
)
async def test_other_audio_containers_the_bridges_deliver_are_transcribed(container: str, codec: str, rate: int):
    audio = convert(speak("Is the museum open on Sunday morning?"), container, codec, rate)
    transcript = await asyncio.wait_for(WhisperTranscriber().transcribe(audio), TRANSCRIBE_TIMEOUT)
    assert_words(transcript.text, ("museum", "sunday", "morning"))


async def test_espeak_wav_as_it_comes_is_transcribed(question_wav: bytes):
    # Written to a pipe, its header states no real length: that must not look like an endless file.
    transcript = await asyncio.wait_for(WhisperTranscriber().transcribe(question_wav), TRANSCRIBE_TIMEOUT)
    assert_words(transcript.text, QUESTION_WORDS)


async def test_a_voice_note_cut_short_still_gives_its_first_words(question_ogg: bytes):
    transcript = await asyncio.wait_for(
        WhisperTranscriber().transcribe(question_ogg[: len(question_ogg) * 2 // 3]), TRANSCRIBE_TIMEOUT
    )
    assert_words(transcript.text, ("what", "time"))


@pytest.mark.parametrize(
    "damage",
    ["random bytes", "ogg header then garbage", "ogg header only", "an image", "text", "nothing"],
)
async def test_corrupt_audio_raises_unreadable_audio_quickly(damage: str, question_ogg: bytes):
    data = {
        "random bytes": os.urandom(40_000),
        "ogg header then garbage": question_ogg[:200] + os.urandom(40_000),
        "ogg header only": question_ogg[:100],
        "an image": b"\x89PNG\r\n\x1a\n" + os.urandom(3_000),
        "text": b"I am not a voice note. " * 200,
        "nothing": b"",
    }[damage]
    transcriber = WhisperTranscriber()
    with pytest.raises(UnreadableAudio):
        await asyncio.wait_for(transcriber.transcribe(data), REFUSE_TIMEOUT)
    assert transcriber.active == 0


async def test_over_length_audio_is_refused_before_it_is_transcribed(question_ogg: bytes):
    transcriber = WhisperTranscriber(max_seconds=2.0)
    with pytest.raises(AudioTooLong) as refused:
        await asyncio.wait_for(transcriber.transcribe(question_ogg), REFUSE_TIMEOUT)
    assert refused.value.max_seconds == 2.0 and 2.5 < refused.value.duration_seconds < 4.5
    assert transcriber.transcribed == 0 and not transcriber.loaded, "refused before the model even loaded"


def test_audio_that_does_not_state_its_length_is_cut_off_at_the_cap_while_decoding(question_ogg: bytes):
    # decode() alone trusts no stated duration: it counts what it decodes.
    assert 2.5 < decode(question_ogg, max_seconds=60).size / 16_000 < 4.5
    with pytest.raises(AudioTooLong) as refused:
        decode(question_ogg, max_seconds=1.0)
    assert refused.value.duration_seconds is None


async def test_silence_is_an_empty_transcript():
    transcript = await asyncio.wait_for(WhisperTranscriber().transcribe(silence_wav(4.0)), TRANSCRIBE_TIMEOUT)
    assert transcript.text == "" and transcript.empty
    assert 3.9 < transcript.duration_seconds < 4.1


@pytest.mark.parametrize(("bound", "notes"), [(1, 3), (2, 4)])
async def test_voice_notes_arriving_at_once_are_transcribed_within_the_bound(bound: int, notes: int, question_ogg: bytes):
    transcriber = WhisperTranscriber(concurrency=bound)
    transcripts = await asyncio.wait_for(
        asyncio.gather(*(transcriber.transcribe(question_ogg) for _ in range(notes))), TRANSCRIBE_TIMEOUT
    )
    for transcript in transcripts:
        assert_words(transcript.text, QUESTION_WORDS)
    assert transcriber.transcribed == notes and transcriber.active == 0
    assert transcriber.peak_active == bound


async def test_a_caller_that_gives_up_does_not_let_more_than_the_bound_run(question_ogg: bytes):
    transcriber = WhisperTranscriber(concurrency=1)
    with pytest.raises(TimeoutError):  # a reply job cancelled mid-transcription: its thread runs on
        await asyncio.wait_for(transcriber.transcribe(question_ogg), 0.2)
    transcript = await asyncio.wait_for(transcriber.transcribe(question_ogg), TRANSCRIBE_TIMEOUT)
    assert_words(transcript.text, QUESTION_WORDS)
    assert transcriber.peak_active == 1


async def test_the_event_loop_keeps_ticking_while_a_note_is_transcribed():
    note = to_ogg_opus(speak(" ".join([QUESTION] * 3)))  # ~9 s: long enough that a stall would show
    transcriber = WhisperTranscriber()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    transcript = await asyncio.wait_for(transcriber.transcribe(note), TRANSCRIBE_TIMEOUT)
    took = time.perf_counter() - started
    ticking.cancel()
    assert_words(transcript.text, QUESTION_WORDS)
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False)]
    # Loading and transcribing take most of a second or more; on the loop they would stall the ticker that long.
    assert took > 0.3 and max(gaps) < max(0.2, took / 3), f"the loop stalled {max(gaps):.2f} s of {took:.2f} s"


async def test_a_model_that_cannot_be_loaded_is_reported_not_crashed(question_ogg: bytes, tmp_path):
    transcriber = WhisperTranscriber(str(tmp_path / "no-such-model"))
    for _ in range(2):  # the second attempt fails at once, from the remembered error
        with pytest.raises(TranscriberUnavailable):
            await asyncio.wait_for(transcriber.transcribe(question_ogg), TRANSCRIBE_TIMEOUT)
    assert "no-such-model" in transcriber.describe()["error"] and transcriber.active == 0
