"""What a failed or retried job says to a person: a stable reason code and a sentence."""

from __future__ import annotations

import asyncpg
import pytest

from backend.gateways.errors import GatewayHttpError, GatewayUnreachable
from backend.workers.jobs import REASONS, PermanentFailure, RetryLater, describe
from backend.workers.runner import LOST, reason_of


def test_a_retried_job_says_its_code_its_sentence_and_that_it_retries():
    assert (
        describe("engine_unreachable", retrying=True) == "engine_unreachable: The answer engine could not be reached; retrying."
    )
    assert describe("engine_unreachable") == "engine_unreachable: The answer engine could not be reached."


def test_a_handlers_own_sentence_replaces_the_codes_without_doubled_punctuation():
    said = describe("document_too_complex", "The document is nested 400 levels deep.", retrying=True)
    assert said == "document_too_complex: The document is nested 400 levels deep; retrying."


@pytest.mark.parametrize(
    ("exc", "reason", "message"),
    [
        (RetryLater("channel_busy", delay=15), "channel_busy", None),
        (PermanentFailure("empty_document", "The file has no text."), "empty_document", "The file has no text."),
        (GatewayUnreachable("WAHA did not answer."), "gateway_unreachable", "WAHA did not answer."),
        (GatewayHttpError("WAHA answered 418.", http_status=418, code="teapot"), "gateway_error", "WAHA answered 418."),
        (TimeoutError(), "timed_out", None),
        (asyncpg.CannotConnectNowError("starting up"), "database_unreachable", None),
        (KeyError("contact_id"), "internal_error", None),
    ],
)
def test_every_failure_gets_a_known_reason_and_never_an_exception_class(exc, reason, message):
    assert reason_of(exc) == (reason, message)
    assert reason in REASONS
    assert type(exc).__name__ not in describe(*reason_of(exc))


def test_a_job_whose_worker_died_says_so():
    assert LOST == "worker_lost: The worker doing this stopped before it finished."
