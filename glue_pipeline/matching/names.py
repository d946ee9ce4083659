"""Name normalisation for matching: company names split into a core name and a legal form,
person names folded to letters, nickname groups and the usual email local-part patterns.

Pure functions over strings, plus `map_unique` to apply one to a column cheaply: names repeat a
lot, so each distinct value is computed once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable
from functools import cache, lru_cache
from typing import TYPE_CHECKING, TypeVar

import jellyfish
import numpy as np
import pandas as pd

from glue_pipeline.matching import Texts

if TYPE_CHECKING:
    import icu

# Letters NFKD does not decompose into a base letter plus a combining mark.
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
                       "ı": "i", "ħ": "h", "ŧ": "t"})  # noqa: RUF001 - the letters folded


@cache
def spoof_checker() -> icu.SpoofChecker:
    import icu  # on first use: ICU adds some 10 MiB resident that all-ASCII data never needs

    return icu.SpoofChecker()


@lru_cache(maxsize=4096)
def _latin_lookalike(ch: str) -> str:
    """The ASCII letters a non-Latin letter looks like (Cyrillic 'es' as 'c'), else the letter."""
    if ch.isascii() or not ch.isalpha() or unicodedata.name(ch, "").startswith("LATIN"):
        return ch
    skeleton: str = spoof_checker().getSkeleton(0, ch)
    return skeleton if skeleton.isascii() and skeleton.isalpha() else ch


def latin_lookalikes_folded(word: str) -> str:
    """A word mixing ASCII letters with look-alike letters of another script ("Inc" written
    with a Cyrillic 'es') read as the ASCII word; other words unchanged."""
    if word.isascii() or not any(ch.isascii() and ch.isalpha() for ch in word):
        return word
    return "".join(_latin_lookalike(ch) for ch in word)


def fold(text: str | None) -> str:
    """NFKD, combining marks dropped, casefolded: 'Société' -> 'societe', 'Øre' -> 'ore'."""
    if not isinstance(text, str) or not text:
        return ""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.casefold().translate(_FOLD)


Value = TypeVar("Value")


def map_unique(func: Callable[[Value], Hashable], values: Iterable[Value]) -> Texts:
    """func applied to each distinct value once, as an object array aligned with `values`."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    mapped = np.empty(len(uniques), dtype=object)
    mapped[:] = [func(value) for value in uniques]
    return mapped[codes]


# ---------------------------------------------------------------------------------------------
# Company names

# Canonical legal form -> the ways it is written, after folding and with punctuation as spaces
# (runs of single letters are joined first, so "S.A." arrives as "sa" and "S. à r.l." as "sarl").
LEGAL_FORMS: dict[str, tuple[str, ...]] = {
    "ltd": ("ltd", "limited"),
    "inc": ("inc", "incorporated"),
    "llc": ("llc",),
    "llp": ("llp",),
    "lp": ("lp",),
    "plc": ("plc", "public limited company"),
    "corp": ("corp", "corporation"),
    "co": ("co", "company", "cie"),
    "pty": ("pty", "proprietary"),
    "pte": ("pte",),
    "pvt": ("pvt", "private"),
    "gmbh": ("gmbh", "gesellschaft mit beschrankter haftung"),
    "ag": ("ag", "aktiengesellschaft"),
    "kg": ("kg", "kommanditgesellschaft"),
    "kgaa": ("kgaa",),
    "ohg": ("ohg",),
    "ug": ("ug",),
    "ev": ("ev",),
    "sa": ("sa", "sociedad anonima", "societe anonyme"),
    "sas": ("sas",),
    "sarl": ("sarl",),
    "srl": ("srl",),
    "spa": ("spa",),
    "sl": ("sl",),
    "sro": ("sro",),
    "spzoo": ("sp zoo",),
    "bv": ("bv", "besloten vennootschap"),
    "nv": ("nv", "naamloze vennootschap"),
    "oy": ("oy",),
    "oyj": ("oyj",),
    "ab": ("ab",),
    "as": ("as",),
    "asa": ("asa",),
    "aps": ("aps",),
    "kk": ("kk", "kabushiki kaisha"),
    "sdn bhd": ("sdn bhd",),
    "bhd": ("bhd", "berhad"),
    "ltda": ("ltda",),
    "lda": ("lda",),
    "se": ("se",),
    "tbk": ("tbk", "terbuka"),
}
# Forms written before the name ("PT Contoso", "OOO Contoso").
PREFIX_LEGAL_FORMS: dict[str, str] = {"pt": "pt", "ooo": "ooo", "zao": "zao", "oao": "oao"}

_LEGAL_BY_TOKENS: dict[tuple[str, ...], str] = {
    tuple(variant.split()): canonical
    for canonical, variants in LEGAL_FORMS.items() for variant in variants
}
_LONGEST_FORM = max(len(tokens) for tokens in _LEGAL_BY_TOKENS)

# Low-information words: kept in the core name, down-weighted when scoring.
GENERIC_WORDS: frozenset[str] = frozenset([
    "the", "and", "of", "group", "groep", "gruppe", "holding", "holdings", "services", "service",
    "solutions", "solution", "company", "international", "global", "worldwide",
    "consulting", "consultants", "consultancy", "technologies", "technology", "tech", "systems",
    "enterprises", "enterprise", "industries", "partners", "associates", "management", "corporate",
    "trading", "ventures", "agency", "labs",
])

# Abbreviations of words in company names, read as the word ("Intl", "Int'l": "international").
WORD_ABBREVIATIONS: dict[str, str] = {
    "intl": "international", "tech": "technology", "technologies": "technology",
    "svcs": "services", "svc": "service", "mgmt": "management", "assoc": "associates",
    "bros": "brothers", "mfg": "manufacturing", "natl": "national", "grp": "group",
    "hldgs": "holdings", "ctr": "center", "centre": "center", "dept": "department",
    "univ": "university", "assn": "association",
}

_APOSTROPHES = re.compile(r"['’`´]")  # noqa: RUF001 - the apostrophes names are written with
_AMPERSAND = re.compile(r"\s*[&+]\s*")
_NON_WORD = re.compile(r"[\W_]+")


def _join_single_letters(tokens: list[str]) -> list[str]:
    """'a b c' -> 'abc', so "A.B.C." equals "ABC" and "S.A." reads as the form "sa"."""
    joined: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if run:
            joined.append("".join(run))
            run = []
        if token:
            joined.append(token)
    return joined


def _strip_legal_forms(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Legal forms at the end (several in a row, "and" between them) and known prefix forms;
    never strips the last word of the name."""
    forms: list[str] = []
    while len(tokens) > 1:
        for size in range(min(_LONGEST_FORM, len(tokens) - 1), 0, -1):
            canonical = _LEGAL_BY_TOKENS.get(tuple(tokens[-size:]))
            if canonical:
                forms.insert(0, canonical)
                tokens = tokens[:-size]
                break
        else:
            break
        while len(tokens) > 1 and tokens[-1] == "and":  # "GmbH & Co. KG", "Smith & Co"
            tokens = tokens[:-1]
    if len(tokens) > 1 and tokens[0] in PREFIX_LEGAL_FORMS:
        forms.insert(0, PREFIX_LEGAL_FORMS[tokens[0]])
        tokens = tokens[1:]
    return tokens, forms


@lru_cache(maxsize=65536)
def company_key(name: str | None) -> tuple[str, str | None]:
    """(core name, canonical legal form or None).

    "Contoso Limited" -> ("contoso", "ltd"); "Contoso (UK) Ltd" -> ("contoso uk", "ltd");
    "Contoso Int'l Tech" -> ("contoso international technology", None);
    "Société Générale S.A." -> ("societe generale", "sa"); "Müller GmbH & Co. KG" ->
    ("muller", "gmbh co kg"); "Smith & Sons" -> ("smith and sons", None).
    """
    text = _APOSTROPHES.sub("", fold(name))
    if not text.isascii():
        text = " ".join(latin_lookalikes_folded(word) for word in text.split())
    text = _AMPERSAND.sub(" and ", text)
    tokens = _join_single_letters(_NON_WORD.sub(" ", text).split())
    core, forms = _strip_legal_forms(tokens)
    core = [WORD_ABBREVIATIONS.get(token, token) for token in core]
    return " ".join(core), (" ".join(forms) or None)


def core_without_generic(core: str) -> str:
    """The distinctive words of a core name; the core itself when every word is generic."""
    distinctive = [word for word in core.split() if word not in GENERIC_WORDS]
    return " ".join(distinctive) if distinctive else core


def generic_words(core: str) -> frozenset[str]:
    return frozenset(word for word in core.split() if word in GENERIC_WORDS)


def legal_forms_compatible(form_a: str | None, form_b: str | None) -> bool:
    """Missing on either side, or sharing a part ("pty ltd" and "ltd")."""
    if not form_a or not form_b:
        return True
    return bool(set(form_a.split()) & set(form_b.split()))


# ---------------------------------------------------------------------------------------------
# Person names

_NON_LETTER = re.compile(r"[^a-z]+")


def person_key(name: str | None) -> str:
    """Letters only, folded: "O'Brien" -> 'obrien', 'José-María' -> 'josemaria', emoji dropped."""
    folded = fold(name)
    if folded.isascii():
        return _NON_LETTER.sub("", folded)
    return "".join(ch for ch in folded if ch.isalpha())


# Letters written out in ASCII the German and Scandinavian way ("Müller" as "Mueller", "Weiß" as
# "Weiss", "Åberg" as "Aaberg"), besides fold's way of dropping the marks ("Muller").
_SPELLED_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "æ": "ae", "å": "aa",
                              "ß": "ss", "œ": "oe"})


def spelled_out_key(name: str | None) -> str:
    """person_key of the name with umlauts, ø, å and ß written out: 'Jürgen' -> 'juergen',
    'Søren' -> 'soeren'; the same as person_key for a name without such letters."""
    if not isinstance(name, str) or name.isascii():
        return person_key(name)
    return person_key(unicodedata.normalize("NFC", name).lower().translate(_SPELLED_OUT))


def ascii_key(name: str | None) -> str:
    """person_key restricted to a-z, as found in email addresses."""
    return _NON_LETTER.sub("", person_key(name))


# Nicknames and short forms come from the `nicknames` package (a maintained, hand-curated dataset
# of English given names: "elizabeth has_nickname liz"). A name's groups are the canonical names
# it belongs to: itself when it has nicknames, and every name that has it as a nickname. Weak
# evidence: a nickname may belong to several groups ("chris", "ted", "al") and people pick names
# freely.

@lru_cache(maxsize=1)
def _nickname_tables() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    from nicknames import NickNamer  # on first use: reading the dataset takes some 20 ms

    namer = NickNamer()
    return namer.nickname_lookup, namer.canonical_lookup


@lru_cache(maxsize=1)
def nickname_names() -> frozenset[str]:
    """Every name the dataset knows, as a canonical name or as a nickname (built once: every
    duplicate-risk call asks)."""
    nicknames, canonicals = _nickname_tables()
    return frozenset(nicknames) | frozenset(canonicals)


@lru_cache(maxsize=65536)
def canonical_first_names(first: str | None) -> frozenset[str]:
    """The canonical names a first name may stand for: 'bob' -> {'bob', 'bert', 'bobby',
    'robert'}, 'robert' -> {'robert'}; an unknown name stands for itself."""
    key = person_key(first)
    if not key:
        return frozenset()
    nicknames, canonicals = _nickname_tables()
    groups = ({key} if key in nicknames else set()) | canonicals.get(key, set())
    return frozenset(groups or {key})


def is_nickname_pair(first_a: str | None, first_b: str | None) -> bool:
    """Different first names that share a nickname group ('Bob' and 'Robert')."""
    key_a, key_b = person_key(first_a), person_key(first_b)
    if not key_a or not key_b or key_a == key_b:
        return False
    return bool(canonical_first_names(key_a) & canonical_first_names(key_b))


@lru_cache(maxsize=65536)
def nickname_relatives(first: str | None) -> frozenset[str]:
    """The other names of the first name's nickname groups: 'elizabeth' -> {'liz', 'beth',
    'betty', ...}, 'liz' -> {'elizabeth', ...}; empty for a name the dataset does not know."""
    key = person_key(first)
    nicknames, _ = _nickname_tables()
    related = set()
    for group in canonical_first_names(key):
        related |= {group, *nicknames.get(group, ())}
    related.discard(key)
    return frozenset(related)


# Soundex-like consonant classes; the first letter is coded too, so Catherine and Katherine agree.
_PHONETIC_DIGRAPHS = (("ph", "f"), ("ck", "k"), ("sch", "sk"), ("gh", "g"))
_PHONETIC_CLASSES = str.maketrans("bfpvcgjkqsxzdtlmnr", "111122222222334556")
_VOWEL_LIKE = re.compile(r"[aeiouyhw]")
_PHONETIC_LENGTH = 6


def phonetic_key(name: str | None) -> str:
    """Sound-alike key: 'Smith', 'Smyth' and 'Schmidt' -> '253'; '' for an empty name."""
    key = ascii_key(name)
    if not key:
        return ""
    for digraph, sound in _PHONETIC_DIGRAPHS:
        key = key.replace(digraph, sound)
    head = "0" if key[0] in "aeiouy" else ""  # vowel-initial names keep a marker
    coded = _VOWEL_LIKE.sub("", key).translate(_PHONETIC_CLASSES)
    collapsed = "".join(ch for i, ch in enumerate(coded) if i == 0 or ch != coded[i - 1])
    return (head + collapsed)[:_PHONETIC_LENGTH]


def sound_keys(name: str) -> tuple[str, str, str]:
    """Three sound-alike keys of a name key: phonetic_key, and jellyfish's NYSIIS and Metaphone
    (each hears other respellings: 'Geoffrey'/'Jeffrey' agree by the first, 'Smith'/'Smyth' by
    the third); '' for each when the name has no ASCII letters."""
    key = ascii_key(name)
    if not key:
        return "", "", ""
    return phonetic_key(key), jellyfish.nysiis(key), jellyfish.metaphone(key)


# Email local parts people get from their names, by pattern name. "first" and "last" alone are
# weak: many people share them.
WEAK_EMAIL_PATTERNS: frozenset[str] = frozenset({"first", "last"})


def email_local_pattern_names(first: str | None, last: str | None) -> dict[str, str]:
    """Local part -> the pattern that produced it ('jsmith' -> 'flast'), strongest first."""
    fn, ln = ascii_key(first), ascii_key(last)
    candidates: list[tuple[str, str]] = []
    if fn and ln:
        candidates += [
            ("first.last", f"{fn}.{ln}"), ("firstlast", fn + ln), ("flast", fn[0] + ln),
            ("f.last", f"{fn[0]}.{ln}"), ("last.first", f"{ln}.{fn}"), ("first_last", f"{fn}_{ln}"),
            ("first-last", f"{fn}-{ln}"), ("firstl", fn + ln[0]), ("lastf", ln + fn[0]),
        ]
    if fn:
        candidates.append(("first", fn))
    if ln:
        candidates.append(("last", ln))
    patterns: dict[str, str] = {}
    for pattern, local in candidates:
        patterns.setdefault(local, pattern)
    return patterns


def email_local_patterns(first: str | None, last: str | None) -> set[str]:
    """first.last, firstlast, flast, f.last, firstl, first, last, last.first, first_last,
    first-last, lastf: ASCII-folded and lowercase."""
    return set(email_local_pattern_names(first, last))


def whole_name_in_local(local: str, last: str | None) -> tuple[str, str] | None:
    """(pattern, first-name part) when an email local part is the last name with a whole first
    name (first.last, first_last, first-last, last.first, firstlast): 'liz.jones', 'Jones' ->
    ('first.last', 'liz'); None otherwise. Initials do not count: 'ljones' stands for too many
    names."""
    ln = ascii_key(last)
    if not ln:
        return None
    for separator, pattern in ((".", "first.last"), ("_", "first_last"), ("-", "first-last")):
        if local.endswith(separator + ln):
            return _whole_first(pattern, local[:-len(ln) - 1])
    if local.startswith(ln + "."):
        return _whole_first("last.first", local[len(ln) + 1:])
    if local.endswith(ln):
        return _whole_first("firstlast", local[:-len(ln)])
    return None


def _whole_first(pattern: str, first: str) -> tuple[str, str] | None:
    return (pattern, first) if len(first) >= 2 and first.isalpha() and first.isascii() else None


@lru_cache(maxsize=65536)
def ascii_nickname_relatives(first: str | None) -> frozenset[str]:
    """nickname_relatives as they appear in email addresses (ascii_key)."""
    return frozenset(filter(None, (ascii_key(name) for name in nickname_relatives(first))))
