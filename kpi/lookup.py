"""Finding a partner from what a person typed (kpi-spec.md section 6, the ``NAME`` lookup).

``find_partner(query, partners)`` applies these rules in order and stops at the first that
matches anything:

1. **CRM id** - the query, stripped of surrounding spaces, equals a partner's ``id`` exactly
   (case-sensitive).
2. **Exact name** - the query equals a partner's name ignoring case (``str.casefold``, Unicode
   NFC, runs of whitespace collapsed to one space). Several partners with that same name give
   ``Ambiguous``.
3. **Part of a name** - the query (normalized the same way) occurs in exactly one partner's
   name: ``Found``; in several: ``Ambiguous`` listing them sorted by name.
4. **Fuzzy** - for typos. Names and query are folded (NFKD with accents dropped, casefolded,
   then ``rapidfuzz.utils.default_process``, which turns non-alphanumerics into spaces, and
   runs of spaces collapsed) and each name gets the best of three rapidfuzz scores, 0-100:

   - ``fuzz.ratio`` (Indel similarity of the whole strings) - typos in the whole name;
   - ``fuzz.token_sort_ratio`` x 0.95 - the same words in another order (queries of two or
     more words only);
   - ``fuzz.partial_ratio`` x 0.9, only for names at least 1.5 times as long as the query -
     a mistyped *part* of a longer name ("Nortwind" for "Northwind Traders").

   If the best-scoring name scores at least ``FOUND_SCORE`` (85) and leads the next different
   name by at least ``FOUND_LEAD`` (8) points it is ``Found`` (or ``Ambiguous`` if several
   partners carry that same folded name). Otherwise ``NotFound`` with up to
   ``MAX_SUGGESTIONS`` (5) partners scoring at least ``SUGGEST_SCORE`` (65), best first
   (ties by name).

A blank query is ``NotFound`` with no suggestions.

Why these thresholds and not ``fuzz.WRatio`` with 90: WRatio also gives partial credit when
the *name* is contained in the query, so "Acme Crop" scores 90 against "Acme" but only 88.9
against "Acme Corp" - the wrong partner wins. With the asymmetric scoring above, a name
contained in the query only gets its plain ratio ("Acme Crop" vs "Acme": 61.5). One
substituted or transposed character costs two Indel edits, so it scores ``100 * (1 - 1/n)``
for an n-character name: 85.7 at 7 characters, 88.9 at 9, 94.1 at 17; a dropped or doubled
character scores higher still. ``FOUND_SCORE`` 85 therefore accepts a single slip in any name
of 7 or more characters, while two slips in a short name (77.8 at 9 characters) only produce a
suggestion. The 8-point lead makes sure a typo that sits between two similar names
("Nortwind" between "Northwind Traders" and "Northwind Digital") is never resolved silently:
it is ``NotFound`` and both are suggested. ``SUGGEST_SCORE`` 65 keeps suggestions to names
that share most of their characters with the query: it still admits two slips in a
six-character name (66.7) but not a longer name of which only some part loosely resembles the
query (a partial score of 66.7, weighted to 60 - "Nortwind" against "Globex Corporation");
gibberish gets none.

Speed: all scoring runs in rapidfuzz's C++ (``process.extract`` with a ``score_cutoff``), and
the normalized names of the last few partner lists are cached (keyed by the tuple of names), so
a lookup among 2,000 partners takes a few milliseconds, the first one included.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

from rapidfuzz import fuzz, process, utils

from kpi.models import Partner

FOUND_SCORE = 85.0
FOUND_LEAD = 8.0
SUGGEST_SCORE = 65.0
MAX_SUGGESTIONS = 5
MAX_LISTED = 10

_TOKEN_SORT_WEIGHT = 0.95
_PARTIAL_WEIGHT = 0.9
_PARTIAL_MIN_LENGTH_RATIO = 1.5


@dataclass(frozen=True)
class Found:
    partner: Partner


@dataclass(frozen=True)
class Ambiguous:
    """Several partners match ``query``; ``candidates`` are sorted by name."""

    query: str
    candidates: tuple[Partner, ...]


@dataclass(frozen=True)
class NotFound:
    """No partner matches ``query``; ``suggestions`` are the nearest names, best first."""

    query: str
    suggestions: tuple[Partner, ...]


LookupResult = Found | Ambiguous | NotFound

_Scorer = Callable[..., float]


def find_partner(query: str, partners: Sequence[Partner]) -> LookupResult:
    """The partner ``query`` names, by the rules in this module's docstring."""
    shown = " ".join(query.split())
    if not shown:
        return NotFound(query=shown, suggestions=())

    stripped = query.strip()
    by_id = [p for p in partners if p.id == stripped]
    if by_id:
        return _one_or_many(shown, by_id)

    index = _index(tuple(p.name for p in partners))
    wanted = _normalize(shown)
    exact = [partners[i] for i, name in enumerate(index.normalized) if name == wanted]
    if exact:
        return _one_or_many(shown, exact)
    containing = [partners[i] for i, name in enumerate(index.normalized) if wanted in name]
    if containing:
        return _one_or_many(shown, containing)

    return _fuzzy(shown, partners, index)


def describe(result: LookupResult) -> str:
    """One sentence for a person: the partner's name, the choices, or the nearest names.

    Nothing is escaped. Names that occur more than once in the sentence are followed by their
    CRM id, and an ambiguous query names at most ``MAX_LISTED`` (10) candidates, then says how
    many more there are.
    """
    if isinstance(result, Found):
        return result.partner.name
    if isinstance(result, Ambiguous):
        shown = _list(result.candidates[:MAX_LISTED])
        if len(result.candidates) > MAX_LISTED:
            shown += f" and {len(result.candidates) - MAX_LISTED:,} more"
        count = f"{len(result.candidates):,}"
        return f"“{result.query}” matches {count} partners: {shown}. Say which."
    if not result.query:
        return "No partner name or CRM id was given."
    sentence = f"No partner matches “{result.query}”."
    if result.suggestions:
        sentence += f" Did you mean {_list(result.suggestions)}?"
    return sentence


def _fuzzy(shown: str, partners: Sequence[Partner], index: _Index) -> LookupResult:
    wanted = _fold(shown)
    if not wanted:
        return NotFound(query=shown, suggestions=())
    folded = index.folded
    scores: dict[int, float] = {}

    def score_with(
        scorer: _Scorer, weight: float, choices: list[str], positions: list[int] | None = None
    ) -> None:
        for _, score, k in process.extract(
            wanted, choices, scorer=scorer, limit=None, score_cutoff=SUGGEST_SCORE / weight
        ):
            i = k if positions is None else positions[k]
            scores[i] = max(scores.get(i, 0.0), score * weight)

    score_with(fuzz.ratio, 1.0, folded)
    if " " in wanted:  # sorting the words of a one-word query changes nothing
        score_with(fuzz.token_sort_ratio, _TOKEN_SORT_WEIGHT, folded)
    positions, names, lengths = index.by_length
    start = bisect_left(lengths, len(wanted) * _PARTIAL_MIN_LENGTH_RATIO)
    score_with(fuzz.partial_ratio, _PARTIAL_WEIGHT, names[start:], positions[start:])

    if not scores:
        return NotFound(query=shown, suggestions=())
    ranked = sorted(scores, key=lambda i: (-scores[i], *_name_key(partners[i])))
    best_name = folded[ranked[0]]
    best_score = scores[ranked[0]]
    runner_up = next((scores[i] for i in ranked if folded[i] != best_name), 0.0)
    if best_score >= FOUND_SCORE and best_score - runner_up >= FOUND_LEAD:
        return _one_or_many(shown, [partners[i] for i in ranked if folded[i] == best_name])
    return NotFound(query=shown, suggestions=tuple(partners[i] for i in ranked[:MAX_SUGGESTIONS]))


def _one_or_many(shown: str, matches: list[Partner]) -> LookupResult:
    if len(matches) == 1:
        return Found(matches[0])
    return Ambiguous(query=shown, candidates=tuple(sorted(matches, key=_name_key)))


def _name_key(partner: Partner) -> tuple[str, str, str]:
    return (_normalize(partner.name), partner.name, partner.id)


def _list(partners: Sequence[Partner]) -> str:
    counts: dict[str, int] = {}
    for partner in partners:
        counts[partner.name] = counts.get(partner.name, 0) + 1
    return ", ".join(f"{p.name} ({p.id})" if counts[p.name] > 1 else p.name for p in partners)


class _Index:
    """Partner names prepared for matching; position ``i`` belongs to ``partners[i]``."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.normalized = [_normalize(name) for name in names]

    @cached_property
    def folded(self) -> list[str]:
        return [_fold(name) for name in self.names]

    @cached_property
    def by_length(self) -> tuple[list[int], list[str], list[int]]:
        """Positions, folded names and their lengths, ordered by that length, shortest first."""
        lengths = [len(name) for name in self.folded]
        positions = sorted(range(len(lengths)), key=lengths.__getitem__)
        return positions, [self.folded[i] for i in positions], [lengths[i] for i in positions]


@lru_cache(maxsize=4)
def _index(names: tuple[str, ...]) -> _Index:
    """The index of the last few partner lists, so repeated lookups skip the normalizing."""
    return _Index(names)


def _normalize(text: str) -> str:
    """For exact and part-of-name matching: NFC, casefolded, whitespace runs collapsed."""
    if text.isascii():
        return " ".join(text.lower().split())
    folded = unicodedata.normalize("NFD", text).casefold()
    return " ".join(unicodedata.normalize("NFC", folded).split())


def _fold(text: str) -> str:
    """For fuzzy matching: accents dropped, casefolded, non-alphanumeric runs made one space."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(utils.default_process(text).split())
