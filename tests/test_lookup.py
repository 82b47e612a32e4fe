"""Finding a partner from what a person typed (kpi/lookup.py, spec section 6 NAME lookup)."""

from __future__ import annotations

from datetime import date

import pytest

from kpi.lookup import (
    MAX_LISTED,
    MAX_SUGGESTIONS,
    Ambiguous,
    Found,
    NotFound,
    describe,
    find_partner,
)
from kpi.models import Partner


def partner(name: str, id: str | None = None) -> Partner:
    return Partner(id=id or f"id-{name}", name=name, joined_on=date(2024, 1, 1))


NAMES = [
    "Northwind Traders",
    "Acme Corp",
    "Acme Labs",
    "Acme",
    "North Star Systems",
    "Northwind Digital",
    "Müller Systemhaus",
    "Großhandel Weber AG",
    "Société Générale Conseil",
    "Globex Corporation",
    "Initech",
    "Umbrella Partners",
    "Stark Industries",
    "Wayne Enterprises",
]
PARTNERS = [partner(name) for name in NAMES]
BY_NAME = {p.name: p for p in PARTNERS}


def names(partners: tuple[Partner, ...]) -> list[str]:
    return [p.name for p in partners]


# 1. CRM id


def test_exact_crm_id_is_found() -> None:
    assert find_partner("id-Initech", PARTNERS) == Found(BY_NAME["Initech"])


def test_crm_id_ignores_surrounding_spaces_but_not_case() -> None:
    target = partner("Initech", id="0015g00000AbCdE")
    others = [partner("Acme Corp")]
    assert find_partner("  0015g00000AbCdE\t", [*others, target]) == Found(target)
    assert find_partner("0015g00000abcde", [*others, target]) == NotFound("0015g00000abcde", ())


def test_crm_id_wins_over_a_name() -> None:
    by_id = partner("Initech", id="Acme Corp")
    by_name = partner("Acme Corp", id="001")
    assert find_partner("Acme Corp", [by_name, by_id]) == Found(by_id)


# 2. exact name


@pytest.mark.parametrize("query", ["acme corp", "ACME CORP", "  Acme   corp ", "Acme\tCorp"])
def test_exact_name_ignores_case_and_whitespace(query: str) -> None:
    assert find_partner(query, PARTNERS) == Found(BY_NAME["Acme Corp"])


def test_exact_name_wins_over_names_that_contain_it() -> None:
    assert find_partner("acme", PARTNERS) == Found(BY_NAME["Acme"])


def test_exact_name_of_the_whitespace_collapsed_stored_name() -> None:
    spaced = partner("Blue   Ocean  Partners")
    assert find_partner("blue ocean partners", [*PARTNERS, spaced]) == Found(spaced)


def test_duplicate_exact_names_are_ambiguous() -> None:
    first = partner("Acme Corp", id="002")
    second = partner("ACME CORP", id="001")
    result = find_partner("Acme Corp", [partner("Acme Corp Intl"), first, second])
    assert result == Ambiguous("Acme Corp", (second, first))


# 3. part of a name


def test_unique_part_of_a_name_is_found() -> None:
    assert find_partner("wind trad", PARTNERS) == Found(BY_NAME["Northwind Traders"])
    assert find_partner("LABS", PARTNERS) == Found(BY_NAME["Acme Labs"])


def test_several_parts_are_ambiguous_sorted_by_name() -> None:
    result = find_partner("north", PARTNERS)
    assert isinstance(result, Ambiguous)
    assert result.query == "north"
    assert names(result.candidates) == [
        "North Star Systems",
        "Northwind Digital",
        "Northwind Traders",
    ]


def test_sorting_ignores_case() -> None:
    result = find_partner(
        "corp", [partner("acme corp"), partner("Zeta Corp"), partner("Beta Corp")]
    )
    assert isinstance(result, Ambiguous)
    assert names(result.candidates) == ["acme corp", "Beta Corp", "Zeta Corp"]


# 4. fuzzy


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Acme Crop", "Acme Corp"),  # transposed letters; "Acme" and "Acme Labs" exist too
        ("acme crp", "Acme Corp"),
        ("Corp Acme", "Acme Corp"),  # words swapped
        ("ACME-CORP", "Acme Corp"),  # punctuation
        ("Umbrela Partners", "Umbrella Partners"),
        ("Stark Industres", "Stark Industries"),
        ("Initec", "Initech"),
    ],
)
def test_a_typo_is_found(query: str, expected: str) -> None:
    assert find_partner(query, PARTNERS) == Found(BY_NAME[expected])


def test_a_typo_between_two_similar_names_is_not_guessed() -> None:
    result = find_partner("Nortwind", PARTNERS)
    assert isinstance(result, NotFound)
    assert names(result.suggestions)[:2] == ["Northwind Digital", "Northwind Traders"]


def test_a_typo_of_a_duplicated_name_is_ambiguous() -> None:
    first, second = partner("Acme Corp", id="001"), partner("Acme Corp", id="002")
    result = find_partner("Acme Crop", [first, second, partner("Initech")])
    assert result == Ambiguous("Acme Crop", (first, second))


def test_far_off_query_suggests_the_nearest_best_first() -> None:
    result = find_partner("Wayne Enterprizes Group", PARTNERS)
    assert result == NotFound("Wayne Enterprizes Group", (BY_NAME["Wayne Enterprises"],))

    blues = [partner("Blue Ocean Partners"), partner("Blue Sky Partners")]
    result = find_partner("Blue Partners", [*PARTNERS, *blues])
    assert isinstance(result, NotFound)
    assert names(result.suggestions) == [
        "Blue Sky Partners",  # one word away and shorter: the higher score
        "Blue Ocean Partners",
        "Umbrella Partners",
    ]


def test_at_most_five_suggestions() -> None:
    many = [partner(f"Vandelay {word}") for word in "ABCDEFGH"]
    result = find_partner("Vandelai", many)
    assert isinstance(result, NotFound)
    assert len(result.suggestions) == MAX_SUGGESTIONS
    assert names(result.suggestions) == [f"Vandelay {word}" for word in "ABCDE"]


@pytest.mark.parametrize("query", ["zzzzqx", "qwxv", "!!!"])
def test_gibberish_has_no_suggestions(query: str) -> None:
    assert find_partner(query, PARTNERS) == NotFound(query, ())


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_blank_query_is_not_found_without_suggestions(query: str) -> None:
    assert find_partner(query, PARTNERS) == NotFound("", ())


def test_no_partners_at_all() -> None:
    assert find_partner("Acme", []) == NotFound("Acme", ())


def test_the_query_is_kept_with_whitespace_collapsed() -> None:
    assert find_partner("  zzzz   qqqq ", PARTNERS) == NotFound("zzzz qqqq", ())


# Unicode


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("müller", "Müller Systemhaus"),
        ("MÜLLER SYSTEMHAUS", "Müller Systemhaus"),
        ("mu\u0308ller", "Müller Systemhaus"),  # decomposed u + combining diaeresis
        ("Muller Systemhaus", "Müller Systemhaus"),  # no umlaut on the keyboard
        ("GROSSHANDEL", "Großhandel Weber AG"),  # casefold: ß is ss
        ("société", "Société Générale Conseil"),
        ("societe generale", "Société Générale Conseil"),
    ],
)
def test_unicode_names(query: str, expected: str) -> None:
    assert find_partner(query, PARTNERS) == Found(BY_NAME[expected])


# Accepted shapes of the partner list; prepared names are cached by the tuple of names


def test_partners_as_a_tuple() -> None:
    assert find_partner("initech", tuple(PARTNERS)) == Found(BY_NAME["Initech"])


def test_results_come_from_the_partners_passed() -> None:
    old = [partner("Acme Corp", id="old"), partner("Initech", id="old-2")]
    new = [partner("Acme Corp", id="new"), partner("Initech", id="new-2")]
    assert find_partner("Acme Crop", old) == Found(old[0])
    assert find_partner("Acme Crop", new) == Found(new[0])
    renamed = [partner("Acme Corporation", id="new"), partner("Initech", id="new-2")]
    assert find_partner("acme corp", renamed) == Found(renamed[0])


# describe()


def test_describe_found_is_the_name() -> None:
    assert describe(Found(BY_NAME["Müller Systemhaus"])) == "Müller Systemhaus"


def test_describe_ambiguous() -> None:
    candidates = tuple(
        partner(name) for name in ["Northwind Digital", "Northwind Traders", "North Star Systems"]
    )
    assert describe(Ambiguous("North", candidates)) == (
        "“North” matches 3 partners: Northwind Digital, Northwind Traders, North Star Systems."
        " Say which."
    )


def test_describe_ambiguous_names_duplicates_by_id() -> None:
    result = find_partner(
        "acme corp", [partner("Acme Corp", id="001"), partner("Acme Corp", id="002")]
    )
    assert (
        describe(result)
        == "“acme corp” matches 2 partners: Acme Corp (001), Acme Corp (002). Say which."
    )


def test_describe_ambiguous_lists_at_most_ten() -> None:
    many = tuple(partner(f"Partner {n:02}") for n in range(1, 26))
    result = find_partner("partner", many)
    assert isinstance(result, Ambiguous)
    assert len(result.candidates) == 25
    listed = ", ".join(f"Partner {n:02}" for n in range(1, MAX_LISTED + 1))
    assert describe(result) == f"“partner” matches 25 partners: {listed} and 15 more. Say which."


def test_describe_not_found_with_suggestions() -> None:
    result = NotFound("Acme Crp", (BY_NAME["Acme Corp"], BY_NAME["Acme Labs"]))
    assert describe(result) == "No partner matches “Acme Crp”. Did you mean Acme Corp, Acme Labs?"


def test_describe_not_found_with_one_suggestion() -> None:
    assert describe(find_partner("Stork", PARTNERS)) == (
        "No partner matches “Stork”. Did you mean Stark Industries?"
    )


def test_describe_not_found_without_suggestions() -> None:
    assert describe(find_partner("zzz", PARTNERS)) == "No partner matches “zzz”."


def test_describe_blank_query() -> None:
    assert describe(find_partner("  ", PARTNERS)) == "No partner name or CRM id was given."


def test_describe_escapes_nothing() -> None:
    odd = partner("<Acme> & *Sons*")
    assert describe(find_partner("<acme>", [odd])) == "<Acme> & *Sons*"
    assert describe(find_partner("&", [odd, partner("A & B")])) == (
        "“&” matches 2 partners: <Acme> & *Sons*, A & B. Say which."
    )
