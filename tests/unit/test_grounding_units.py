"""The grounding guard's stricter rules: money only as money, quantities with their unit, in several languages."""

from __future__ import annotations

import pytest

from rag.grounding import check_grounding, extract_facts, states_fact


def unsupported(reply: str, *support: str) -> list[str]:
    return [fact.text for fact in check_grounding(reply, support).unsupported]


BIKESHOP = (
    "## Repairs\n\nA flat tyre repair takes about 20 minutes and costs €12. Repairs carry a 6-month warranty; "
    "our frames carry a 2-year warranty.\n\n## Rentals\n\nA city bike costs €60 per week."
)


def test_the_city_bike_invented_price_is_stopped() -> None:
    assert unsupported("A city bike for a week is around 20 euros.", BIKESHOP) == ["20 euros"]
    assert unsupported("A city bike for a week is 60 euros.", BIKESHOP) == []


@pytest.mark.parametrize(
    ("reply", "source"),
    [
        ("The warranty is 2 years.", "Frames: 2 years."),
        ("A garantia é de 2 anos.", "Frames: 2 years."),
        ("La garantía es de dos años.", "Frames: 2 years."),
        ("Die Garantie beträgt 2 Jahre.", "Frames: two years."),
        ("La garantie est de 2 ans.", "Frames: 24 months."),
        ("Garansi 2 tahun.", "Frames: 2 years."),
        ("वारंटी 2 साल है।", "Frames: 2 years."),
    ],
)
def test_the_same_duration_in_any_language_backs_it(reply: str, source: str) -> None:
    assert unsupported(reply, source) == []


@pytest.mark.parametrize(
    ("reply", "source", "stopped"),
    [
        ("The repair warranty is 2 years.", "Repairs: 2 days.", "2 years"),
        ("The repair warranty is 2 years.", "Repairs: 2 months.", "2 years"),
        ("A garantia é de 2 anos.", "Garantia de reparos: 6 meses.", "2 anos"),
        ("Son 6 meses.", "Garantía: 6 días.", "6 meses"),
        ("Es dauert 3 Tage.", "Dauer: 3 Stunden.", "3 Tage"),
        ("Ça prend 45 minutes.", "Durée : 45 jours.", "45 minutes"),
        ("Pengiriman 5 hari.", "Pengiriman 5 minggu.", "5 hari"),
        ("The warranty is two years.", "Repairs carry a 6-month warranty.", "two years"),
    ],
)
def test_a_duration_is_not_backed_by_the_same_number_in_another_unit(reply: str, source: str, stopped: str) -> None:
    assert unsupported(reply, source) == [stopped]


@pytest.mark.parametrize(
    ("reply", "source"),
    [
        ("We deliver up to 5 km.", "Entregamos até 5 quilômetros."),
        ("Entregamos hasta 5 km.", "We deliver within 5 km."),
        ("We deliver within 5 km.", "Lieferung im Umkreis von 5000 m."),
        ("It takes 1 hour.", "Takes 60 minutes."),
        ("Es tarda 30 minutos.", "A first check-up takes about 30 min."),
        ("Tables for 8 people.", "Mesas para 8 pessoas."),
    ],
)
def test_distances_durations_and_counts_compare_across_languages_and_sizes(reply: str, source: str) -> None:
    assert unsupported(reply, source) == []


def test_distances_and_counts_keep_their_unit() -> None:
    assert unsupported("We deliver within 5 km.", "We deliver within 5 miles.") == ["5 km"]
    assert unsupported("Tables for 8 people.", "8 tables.") == ["8 people"]
    assert unsupported("Entregamos até 5 km.", "Taxa de entrega: 5 reais.") == ["5 km"]


def test_a_range_gives_its_unit_to_both_ends() -> None:
    facts = extract_facts("Entrega em 3 a 5 dias úteis.")
    assert [(fact.kind, fact.text, fact.unit) for fact in facts] == [("quantity", "3", "day"), ("quantity", "5 dias", "day")]
    assert unsupported("Delivery takes 3 days.", "Entrega em 3 a 5 dias úteis.") == []
    assert unsupported("Delivery takes 3 weeks.", "Entrega em 3 a 5 dias úteis.") == ["3 weeks"]


def test_money_is_backed_only_by_money() -> None:
    assert unsupported("Cuesta 20 euros.", "La reparación tarda unos 20 minutos y cuesta 12 €.") == ["20 euros"]
    assert unsupported("Custa R$ 20.", "Fica pronto em 20 minutos. Um pão custa R$ 1,50.") == ["R$ 20"]
    assert unsupported("Custa R$ 1,50.", "Fica pronto em 20 minutos. Um pão custa R$ 1,50.") == []


def test_a_price_list_without_currency_keeps_real_prices() -> None:
    price_list = "Preços\n\n- Pão francês: 0,80\n- Bolo de cenoura (fatia): 6"
    assert unsupported("O bolo de cenoura custa R$ 6.", price_list) == []
    assert unsupported("O pão francês custa R$ 0,80.", price_list) == []
    assert unsupported("O bolo custa R$ 8.", price_list) == ["R$ 8"]


def test_a_known_wrong_duration_is_stated_and_a_right_one_is_not_confused_with_it() -> None:
    assert states_fact("Repairs have a 6-month warranty.", "6 months")
    assert states_fact("Os reparos têm 6 meses de garantia.", "6 months")
    assert not states_fact("Repairs have a 6-month warranty.", "2 years")
    assert states_fact("The warranty is two years.", "2 years")


def test_words_that_look_like_units_after_other_things_are_not_quantities() -> None:
    assert [fact.kind for fact in extract_facts("SmolLM2-360M, gpt-4o, 5 M, an hour, €5 m")] == ["number", "money"]
