"""The console has words for every channel detail the backend's API can send, and no others."""

from __future__ import annotations

from backend.services.channels import CHANNEL_DETAILS, Channel
from console.channel_words import DETAILS


def test_the_console_words_exactly_the_details_of_the_api_schema():
    schema_enum = set(Channel.model_json_schema()["properties"]["detail"]["enum"])
    assert schema_enum == CHANNEL_DETAILS
    assert set(DETAILS) == schema_enum
