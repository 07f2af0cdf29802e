"""Prometheus metrics, defined once; `/metrics` serves them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter("wa_messages_in_total", "Inbound messages stored", ["provider"])
MESSAGES_IGNORED = Counter("wa_messages_ignored_total", "Inbound messages not answered, by reason", ["reason"])
MESSAGES_OUT = Counter("wa_messages_out_total", "Outbound messages sent", ["provider", "author"])
REPLY_FAILURES = Counter("wa_reply_failures_total", "Replies that failed, by reason", ["reason"])
REPLY_LATENCY = Histogram(
    "wa_reply_latency_seconds",
    "From the customer's message stored to the reply sent",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
DUPLICATE_WEBHOOKS = Counter("wa_duplicate_webhooks_total", "Webhook deliveries of an already stored message", ["provider"])
GATEWAY_CALLS = Histogram("wa_gateway_call_seconds", "Calls to WhatsApp gateways", ["provider", "operation", "outcome"])
LLM_CALLS = Histogram(
    "wa_llm_call_seconds", "Calls to language-model engines (ollama, openai)", ["engine", "operation", "outcome"]
)
ANSWERS = Counter("wa_answers_total", "Answers built, by the engine that answered and the outcome", ["engine", "outcome"])
UNGROUNDED_ANSWERS = Counter(
    "wa_ungrounded_answers_total", "Generated replies not sent: they stated a fact the sources lack", ["engine"]
)
TRANSCRIPTION_SECONDS = Histogram(
    "wa_transcription_seconds", "Time to transcribe a voice note", buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60)
)
VOICE_NOTE_SECONDS = Histogram(
    "wa_voice_note_seconds", "Length of the voice notes heard", buckets=(2, 5, 10, 20, 30, 60, 120, 300)
)
JOB_QUEUE_DEPTH = Gauge("wa_job_queue_depth", "Jobs by status", ["status"])
JOB_QUEUE_OLDEST_AGE = Gauge("wa_job_queue_oldest_age_seconds", "Age of the oldest due queued job")
GOLDEN_REGRESSIONS = Gauge("wa_golden_regressions", "Golden questions failing that passed before, in each assistant's latest run")


def observe_llm_call(engine: str):  # the `on_call` hook of a rag.llm engine
    return lambda operation, outcome, seconds: LLM_CALLS.labels(engine, operation, outcome).observe(seconds)
