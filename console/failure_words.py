"""Failures in a person's words: the errors the backend stores (a worker's, a gateway's, a status check's)
and the reason codes of degraded replies. The technical text itself goes in an expander, never in the sentence."""

from __future__ import annotations

import re

from console.markdown_text import plain

# A stored error often starts with the exception's class ("RetryLater: ..."), or with a reason code
# ("ollama_unreachable: ..."): words for a developer, not a person.
_TECHNICAL_PREFIX = re.compile(
    r"^(?:[A-Z][A-Za-z]*(?:Error|Exception|Later|Failure|Unavailable|Busy|Unreachable)|[A-Z][a-z]+[A-Z]\w*|[a-z]+_[a-z_]+): "
)
# What went wrong, first match wins: the more specific before the general.
_PROBLEMS = (
    (re.compile(r"migrations not at head", re.I), "has an older schema: restart the backend to apply its migrations"),
    (re.compile(r"not ready yet|still starting", re.I), "is still starting"),
    (re.compile(r"is not set\b|not configured", re.I), "is not configured"),
    (re.compile(r"not connected|scan its qr", re.I), "is not connected: scan its QR code first"),
    (re.compile(r"window_closed|24 hours|template", re.I),
     "only accepts an approved template now: the customer last wrote more than 24 hours ago"),
    (re.compile(r"rate.?limit|too many", re.I), "is refusing messages for now: too many in a short time"),
    (re.compile(r"token_invalid|expired or revoked|refused the api key|api key|unauthori[sz]ed|forbidden|\b40[13]\b", re.I),
     "refused the credentials"),
    (re.compile(r"unreachable|connecterror|connection (?:refused|reset)|could not connect|not reachable|name resolution",
                re.I), "could not be reached"),
    (re.compile(r"timed? ?out|timeout|took too long", re.I), "took too long to answer"),
    (re.compile(r"no such model|model_not_found|model .*not found|manifest|not pulled", re.I), "does not have the model"),
    (re.compile(r"worker lost", re.I), "stopped while working on it"),
    (re.compile(r"media_too_large|too large|too big", re.I), "was given a file that is too large"),
    (re.compile(r"\bHTTP [45]\d\d\b|status(?: code)? [45]\d\d|answered with an error|ollama_error|openai_error", re.I),
     "answered with an error"),
)  # fmt: skip
_SYSTEMS = (
    (re.compile(r"worker lost", re.I), "the reply worker"),
    (re.compile(r"ollama", re.I), "Ollama"),
    (re.compile(r"openai", re.I), "the OpenAI-compatible server"),
    (re.compile(r"waha", re.I), "WAHA (the WhatsApp gateway)"),
    (re.compile(r"evolution", re.I), "Evolution API (the WhatsApp gateway)"),
    (re.compile(r"sandbox", re.I), "the sandbox phone"),
    (re.compile(r"cloud api|graph\.facebook|meta", re.I), "the WhatsApp Cloud API"),
    (re.compile(r"gateway|whatsapp", re.I), "the WhatsApp gateway"),
    (re.compile(r"embedding", re.I), "the search model"),
    (re.compile(r"postgres|database|asyncpg|sqlstate|migrations", re.I), "the database"),
)
# Marks of text written for a developer: identifiers, exception names, HTTP or socket jargon.
_DEVELOPER_WORDS = re.compile(r"\w+_\w+|[a-z][A-Z]|Error\b|Exception\b|Errno|errno|Traceback|\bHTTP\b|://", re.S)


# A job's stored error is "reason_code: A sentence.", "…; retrying." when another attempt follows
# (the backend's workers write it); each code in this console's words.
JOB_REASONS = {
    "engine_unreachable": "the model engine could not be reached",
    "engine_timeout": "the model engine did not answer in time",
    "engine_error": "the model engine refused the request",
    "model_not_found": "the model engine does not have this model",
    "unsupported_document": "this kind of file cannot be read",
    "corrupt_document": "the file is damaged and cannot be read",
    "document_too_large": "the document is too large to index",
    "document_too_complex": "the document is too costly to read within this server's limits",
    "empty_document": "the document has no text to index",
    "embedding_failed": "the document's text could not be prepared for search",
    "channel_busy": "the number reached its replies-per-minute limit",
    "gateway_unreachable": "the WhatsApp gateway could not be reached",
    "gateway_error": "the WhatsApp gateway refused the message",
    "database_unreachable": "the database could not be reached",
    "timed_out": "a step took too long",
    "worker_lost": "the worker doing this stopped before it finished",
    "internal_error": "something went wrong on our side",
}
_JOB_ERROR = re.compile(r"^(?P<code>[a-z][a-z_]*): (?P<sentence>.*?)(?P<retrying>; retrying)?\.?$", re.S)


def person_error(error: str | None, what: str, system: str = "the model engine") -> str:
    """A stored technical error in a person's words: "`what` Ollama could not be reached." (the detail goes in an expander)."""
    original = (error or "").strip()
    if (job := _JOB_ERROR.match(original)) and job["code"] in JOB_REASONS:
        again = "; another attempt follows" if job["retrying"] else ""
        return f"{what} {JOB_REASONS[job['code']]}{again}."
    detail = _TECHNICAL_PREFIX.sub("", original)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(original)), system)
    for pattern, why in _PROBLEMS:
        if pattern.search(original):
            return f"{what} {system} {why}."
    # Already a sentence for a person ("Nobody scanned the QR code in time. ..."; a new code's own sentence).
    sentence = f"{job['sentence']}." if job else detail if detail == original else ""
    if sentence[:1].isupper() and not _DEVELOPER_WORDS.search(sentence):
        return f"{what} {plain(sentence)}"
    return f"{what} something went wrong; the technical detail is below."


DEGRADED_REASONS = {
    "ollama_unreachable": "Ollama could not be reached",
    "ollama_error": "Ollama answered with an error",
    "openai_unreachable": "the OpenAI-compatible server could not be reached",
    "openai_auth": "the OpenAI-compatible server refused the API key",
    "openai_error": "the OpenAI-compatible server answered with an error",
    "embedded_unavailable": "the embedded model could not be loaded",
    "prompt_too_long": "the question and sources did not fit the model's window",
    "model_not_found": "the model is not available on its engine",
    "timeout": "the model took too long to answer",
    "empty_answer": "the model gave an empty answer",
    "no_engine": "no model engine is configured for this assistant",
    "embeddings_unavailable": "the embedding model was unavailable, so only exact words were searched",
}


# Why a reply quotes the documents instead of sending what the model wrote (a trace's `quote_reason`), when the
# reason is a check the model's reply failed; degraded and ungrounded replies have notes of their own.
QUOTE_REASONS = {
    "wrong_language": "the model answered in another language than the customer's, twice",
    "unsupported_claims": "the model stated something no sentence of the documents supports",
    "yes_no": "the small demo model answered yes or no without the documents' words",
}


def degraded_words(reason: str | None) -> str:
    """Why no model wrote a reply, from its reason code; a code this console does not know yet still reads as words."""
    if reason in DEGRADED_REASONS:
        return DEGRADED_REASONS[reason]
    return f"the model engine failed ({reason.replace('_', ' ')})" if reason else "the model was unavailable"
