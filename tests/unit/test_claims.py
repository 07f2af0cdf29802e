"""Yes/no replies across languages, claim sentences, and claim support by vectors (fixed vectors: no model)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.claims import asserts_yes_no, claim_sentences, denies, unsupported_claims


@pytest.mark.parametrize(
    ("reply", "language"),
    [
        ("Sure … we accept all major cards.", "en"),
        ("No, I'm not.", "en"),
        ("Yes! See you soon.", "en"),
        ("We don't deliver on Sundays.", "en"),
        ("You can bring your dog.", "en"),
        ("Sim, aceitamos Pix.", "pt"),
        ("Não aceitamos cartão de crédito.", "pt"),
        ("Claro! Entregamos até 3 km.", "pt"),
        ("Sí, claro.", "es"),
        ("No aceptamos tarjetas de crédito.", "es"),
        ("Ja, wir liefern auch samstags.", "de"),
        ("Nein, sonntags haben wir geschlossen.", "de"),
        ("Oui, bien sûr.", "fr"),
        ("Nous n'acceptons pas les cartes.", "fr"),
        ("Ya, kami buka hari Minggu.", "id"),
        ("Tidak, kami tutup.", "id"),
        ("हाँ, हम कार्ड स्वीकार करते हैं।", "hi"),
        ("नहीं, रविवार को बंद है।", "hi"),
        ("Yes, we are open.", "pt"),  # a model answering in English to a Portuguese question
    ],
)
def test_a_reply_that_asserts_or_denies_is_recognised(reply: str, language: str) -> None:
    assert asserts_yes_no(reply, language)


@pytest.mark.parametrize(
    ("reply", "language"),
    [
        ("A croissant costs 1.80 euros.", "en"),
        ("We open at 7:30 on Saturday.", "en"),
        ("Don't hesitate to contact us!", "en"),
        ("Thank you for your message.", "en"),
        ("Now we bake bread every morning.", "en"),
        ("O pão de queijo custa R$ 1,50.", "pt"),
        ("El examen de la vista cuesta $250.", "es"),
        ("Ya está listo tu pedido.", "es"),  # Spanish "ya" is "already", not the Indonesian yes
        ("Si vous voulez, appelez-nous au 020 555 0187.", "fr"),  # French "si" is "if"
        ("Die Garantie beträgt 2 Jahre.", "de"),
        ("Harganya Rp 15.000.", "id"),
        ("क्रोइसां की कीमत 1.80 यूरो है।", "hi"),
    ],
)
def test_a_reply_that_only_states_facts_does_not_assert_yes_or_no(reply: str, language: str) -> None:
    assert not asserts_yes_no(reply, language)


def test_denial_words_in_several_languages() -> None:
    assert denies("Monday: closed") and denies("Domingo: cerrado") and denies("Feriados: fechado")
    assert denies("We take cash and debit cards, but no credit cards.")
    assert not denies("Saturday: 10:00–16:00") and not denies("Aceptamos tarjetas de crédito.")


def test_claim_sentences_are_the_ones_stating_a_fact_or_a_yes_no() -> None:
    sentences = ["Hi there!", "A croissant costs 1.80 euros.", "Yes, we deliver.", "Let me know if you need anything else!"]
    assert claim_sentences(sentences, "en") == ["A croissant costs 1.80 euros.", "Yes, we deliver."]


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_claim_close_to_a_source_sentence_is_supported_and_a_far_one_is_not() -> None:
    claims = ["Repairs have a 6-month warranty.", "We sell used bikes."]
    sources = ["Every repair carries a 6-month warranty on our work.", "Saturday: 10:00–16:00"]
    claim_vectors = np.stack([unit(1, 0.1, 0), unit(0, 0, 1)])
    source_vectors = np.stack([unit(1, 0, 0), unit(0, 1, 0)])
    assert unsupported_claims(claims, claim_vectors, sources, source_vectors, threshold=0.9) == [1]


def test_a_claim_that_flips_the_source_from_no_to_yes_is_unsupported_however_close() -> None:
    sources = ["We take cash and debit cards, but no credit cards."]
    source_vectors = np.stack([unit(1, 0)])
    close = np.stack([unit(1, 0.05), unit(1, 0.05)])
    claims = ["We accept all major credit cards.", "We do not take credit cards."]
    assert unsupported_claims(claims, close, sources, source_vectors, threshold=0.9, language="en") == [0]


def test_without_sources_every_claim_is_unsupported_and_without_claims_none() -> None:
    vectors = np.stack([unit(1, 0)])
    assert unsupported_claims(["Yes."], vectors, [], np.zeros((0, 2), dtype=np.float32)) == [0]
    assert unsupported_claims([], np.zeros((0, 2), dtype=np.float32), ["x"], vectors) == []
