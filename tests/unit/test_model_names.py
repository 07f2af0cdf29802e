"""Ollama model names: a name without a tag is the `latest` one, as Ollama lists it."""

from __future__ import annotations

import pytest

from rag.llm.ollama import ollama_model_name


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("llama3.2:latest", "llama3.2:latest"),
        ("llama3.2:3b", "llama3.2:3b"),
        ("library/qwen2.5", "library/qwen2.5:latest"),
        ("library/qwen2.5:0.5b", "library/qwen2.5:0.5b"),
    ],
)
def test_a_model_name_is_spelt_as_ollama_lists_it(name, listed):
    assert ollama_model_name(name) == listed


def test_spellings_of_one_model_agree():
    assert ollama_model_name("llama3.2") == ollama_model_name("llama3.2:latest")
    assert ollama_model_name("llama3.2") != ollama_model_name("llama3.2:3b")
