"""Sentences of the documents: how a chunk is split, and which sentences answer (rag.sentences)."""

from __future__ import annotations

from rag.sentences import (
    Sentence,
    by_shared_words,
    embedding_text,
    quoted,
    ranked,
    relevant,
    split_passages,
    split_sentences,
)


def test_sentences_end_at_stops_question_and_exclamation_marks():
    text = "We bake every morning. Do you deliver? Yes! Orders close at noon."
    assert split_sentences(text) == ["We bake every morning.", "Do you deliver?", "Yes!", "Orders close at noon."]


def test_list_items_and_lines_are_sentences_without_their_markers():
    text = "- Monday: closed\n- Tuesday to Friday: 6:30 – 18:30\n* Saturday: 7:30 – 16:00\n1. Sunday: 8:00 – 13:00"
    assert split_sentences(text) == [
        "Monday: closed",
        "Tuesday to Friday: 6:30 – 18:30",
        "Saturday: 7:30 – 16:00",
        "Sunday: 8:00 – 13:00",
    ]


def test_prices_times_emails_urls_and_abbreviations_do_not_end_a_sentence():
    text = (
        "A croissant costs 1.80 euros. We open at 7.30 on Saturdays. Write to info@crumb-bakery.example.com or see "
        "www.crumb-bakery.example.com. Delivery takes approx. 20 minutes, e.g. within the town. Ask Dr. Okafor or J. Smith."
    )
    assert split_sentences(text) == [
        "A croissant costs 1.80 euros.",
        "We open at 7.30 on Saturdays.",
        "Write to info@crumb-bakery.example.com or see www.crumb-bakery.example.com.",
        "Delivery takes approx. 20 minutes, e.g. within the town.",
        "Ask Dr. Okafor or J. Smith.",
    ]


def test_other_languages_split_at_their_own_marks():
    assert split_sentences("¿Abren los domingos? Sí, de 8 a 13 h. Z.B. Brot kostet 2,40 €.") == [
        "¿Abren los domingos?",
        "Sí, de 8 a 13 h.",
        "Z.B. Brot kostet 2,40 €.",
    ]
    assert split_sentences("हम रविवार को बंद रहते हैं। सोमवार को दुकान खुलती है।") == [
        "हम रविवार को बंद रहते हैं।",
        "सोमवार को दुकान खुलती है।",
    ]


def test_a_hard_wrapped_sentence_stays_whole_and_empty_lines_are_dropped():
    text = "We deliver within 5 km of the shop,\nfrom Tuesday to Saturday.\n\n—\n"
    assert split_sentences(text) == ["We deliver within 5 km of the shop, from Tuesday to Saturday."]


def test_a_sentence_is_embedded_with_the_last_part_of_its_heading():
    assert embedding_text("Crumb & Co. Bakery > Opening hours", "Monday: closed") == "Opening hours: Monday: closed"
    assert embedding_text("", "Monday: closed") == "Monday: closed"


def sentence(chunk: int, position: int, text: str, score: float, rank: int = 1) -> Sentence:
    return Sentence(chunk, position, text, score, rank, score)


def test_the_quote_is_the_best_sentence_and_those_almost_as_good_in_reading_order():
    found = [
        sentence(1, 0, "Monday: closed", 0.84),
        sentence(1, 2, "Saturday: 7:30 – 16:00", 0.90),
        sentence(1, 3, "Sunday: 8:00 – 13:00", 0.89),
        sentence(2, 0, "A croissant costs 1.80 euros.", 0.70, rank=2),
    ]
    assert [s.text for s in quoted(found)] == ["Saturday: 7:30 – 16:00", "Sunday: 8:00 – 13:00"]
    assert [s.text for s in quoted(found, most=1)] == ["Saturday: 7:30 – 16:00"]


def test_a_clear_winner_is_quoted_alone_and_never_more_than_three():
    clear = [sentence(1, 0, "A croissant costs 1.80 euros.", 0.93), sentence(1, 1, "A baguette costs 2.40 euros.", 0.86)]
    assert [s.text for s in quoted(clear)] == ["A croissant costs 1.80 euros."]
    close = [sentence(1, i, f"Line {i}.", 0.9 - i * 0.001) for i in range(6)]
    assert len(quoted(close)) == 3
    assert len(relevant(close)) == 6


def test_a_sentence_repeated_by_overlapping_chunks_counts_once():
    found = [sentence(1, 4, "Orders close at noon.", 0.9), sentence(2, 0, "Orders  close at noon.", 0.9, rank=2)]
    assert [(s.chunk_id, s.position) for s in ranked(found)] == [(1, 4)]


def test_without_vectors_sentences_are_chosen_by_the_words_of_the_question():
    found = [
        Sentence(1, 0, "Monday: closed", rank=1),
        Sentence(1, 1, "The delivery fee is 3.50 euros.", rank=1),
    ]
    scored = by_shared_words("what is the delivery fee?", found)
    assert [s.text for s in quoted(scored)] == ["The delivery fee is 3.50 euros."]


def test_a_chosen_sentence_of_a_short_line_comes_with_the_rest_of_its_line():
    [kettle, price] = [
        Sentence(1, 0, "XK-4471 is a blue stainless steel kettle.", 0.92, 1, 0.92, line=0),
        Sentence(1, 1, "It costs 20 euros.", 0.78, 1, 0.78, line=0),
    ]
    other = Sentence(1, 2, "Our teapots are hand-made in Portugal and come in four colours.", 0.80, 1, 0.80, line=1)
    assert quoted([kettle, price, other]) == [kettle, price]


def test_split_passages_know_each_sentence_line_and_chunk_rank():
    from rag.types import Passage

    passages = [
        Passage(7, 1, "a.md", 0, "Prices", "- A croissant costs 1.80 euros.\n- A baguette costs 2.40 euros. Fresh daily.", 0.5),
        Passage(3, 1, "a.md", 1, "Contact", "Phone: 020 555 0187", 0.4),
    ]
    found = [(s.chunk_id, s.position, s.line, s.rank) for s in split_passages(passages)]
    assert found == [(7, 0, 0, 1), (7, 1, 1, 1), (7, 2, 1, 1), (3, 0, 0, 2)]


def test_a_quote_is_the_lead_in_then_each_source_s_sentences_under_its_heading_never_its_file_name():
    from rag.answer import quote_text
    from rag.types import Passage

    passages = [
        Passage(1, 1, "bakery.md", 0, "Crumb & Co. Bakery > Opening hours", "- Saturday: 7:30 – 16:00", 0.5),
        Passage(2, 1, "bakery.md", 1, "Crumb & Co. Bakery > Delivery", "We deliver within 5 km.", 0.4),
    ]
    chosen = [Sentence(1, 0, "Saturday: 7:30 – 16:00", 0.9, 1), Sentence(2, 0, "We deliver within 5 km.", 0.89, 2)]
    assert quote_text("Esto es lo que dicen nuestros documentos sobre eso:", chosen, passages) == (
        "Esto es lo que dicen nuestros documentos sobre eso:\n\n"
        "Saturday: 7:30 – 16:00\n_(Crumb & Co. Bakery · Opening hours)_\n\n"
        "We deliver within 5 km.\n_(Crumb & Co. Bakery · Delivery)_"
    )
