"""Duplicate risk: which existing contacts a new user may already be.

Never all pairs: blocking keys are joined with pandas merges on integer codes, and only the
pairs sharing a key are scored, in bulk with rapidfuzz. Name keys: the last name with the first
name or any one-letter deletion of it, and the other way round (so one typo in either name
still meets: "Jon"/"John", "Smiht"/"Smith"); the last name with the first name's nickname
groups (the `nicknames` dataset); the first name with a sound-alike key of the last name; the
sound-alike keys of both names, by each of three schemes (both names respelled: "Jon Smyth",
"John Smith"); the names swapped; and all of these again for names with umlauts, ø, å or ß
written out ("Müller" as "Mueller"). Email local parts, the local parts a user's name would give
and phone numbers are joined the same way and are evidence in themselves, and so are look-alikes
(below), joined on codes of their skeletons. So every pair that can reach the medium level shares
a key (unless the key is on more than MAX_BLOCK_CONTACTS contacts, or a sound key on more than
MAX_SOUND_BLOCK_CONTACTS, a guard against degenerate data).

A first name of several words is a given name and a middle name ("John A."); a user's middle
name may also come from a display name that reads first, middle, last. Two different middle
names make the same first and last names different people.

Evidence of three kinds, the best one of each kind counting, points added and capped at 100:
the names, by the first of NAME_LEVELS that applies; the emails, by the best of EMAIL_LEVELS;
the same phone number (its last digits; numbers shared by many people ignored),
SAME_PHONE_POINTS. Each level is declared once, as in splink's comparison level library: its
label, points, reason and, for a name level, its condition. Two email levels are found pair by
pair after the joins: nickname mailboxes (both ways) and, with the same name only, a contact
address on a tenant domain.

Look-alikes: one of the user's addresses (UPN, mail, smtp proxies) and one of the contact's, or
the two full names (first and last), that differ with case ignored but have the same Unicode TS
#39 skeleton (ICU's, taken of the casefolded string), at least one of the two containing a
non-ASCII character: "jаne.doe@" with a Cyrillic "а". Pure-ASCII pairs that share a skeleton
("rn"/"m") are ordinary names, left to the other name rules; names that are already the same
(they differ only in what the name keys ignore: "O’Brien", "O'Brien") stay "same". A look-alike
is high risk on its own: a second person does not come by another's name or address in other
letters.
Skeletons are computed only where a pair could have one non-ASCII string: none when every string
is ASCII; an ASCII string only when some non-ASCII string on the other side has a skeleton an
ASCII string can have.
"""  # noqa: RUF002 - look-alike characters are the subject

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from itertools import chain
from typing import NamedTuple, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler

from glue_pipeline.addresses import email_address
from glue_pipeline.columns import RISK_COLUMNS
from glue_pipeline.matching import Flags, Ints, Texts
from glue_pipeline.matching.names import (
    WEAK_EMAIL_PATTERNS,
    ascii_key,
    ascii_nickname_relatives,
    canonical_first_names,
    email_local_pattern_names,
    map_unique,
    nickname_names,
    person_key,
    sound_keys,
    spelled_out_key,
    spoof_checker,
    whole_name_in_local,
)

HIGH_RISK = 80
MEDIUM_RISK = 60
MIN_RISK_SCORE = 40

JW_SAME = 0.92  # Splink's Jaro-Winkler levels
JW_CLOSE = 0.88
JW_RESPELLED = 0.80  # sounding alike and this alike: "Geoffrey"/"Jeffrey" (0.87), not "John"/"Jane"
MIN_TYPO_LENGTH = 4  # a name shorter than this is not "one typo" from anything

Similarities: TypeAlias = npt.NDArray[np.float32]  # Jaro-Winkler, 0 to 1
Value = TypeVar("Value", bound=np.generic)


@dataclass(frozen=True)
class Level:
    """A level of one kind of evidence: its label, its points, its reason (a str.format
    template over the pair's texts, `p`) and, for a name level, the condition that puts a pair
    at it (over the pair's _NameFacts)."""

    label: str
    points: int
    reason: str
    condition: Callable[[_NameFacts], Flags] | None = None


# The first level whose condition holds wins; the last, without one, takes the other pairs.
NAME_LEVELS: tuple[Level, ...] = (
    Level("other_middle", 30, "same first and last name ({p.contact_given}) but different middle "
          "names ({p.user_middle_name} vs {p.contact_middle_name})",
          lambda f: f.first_same & f.last_same & f.middle_conflict),
    Level("same", 70, "{p.same_name}", lambda f: f.first_same & f.last_same),
    Level("lookalike", 80, "{p.looks_like}", lambda f: f.lookalike),
    # One name the same, the other one typo away.
    Level("similar", 65, "similar names ({p.user} vs {p.contact})",
          lambda f: (f.first_same & f.last_typo) | (f.last_same & f.first_typo)),
    Level("nickname", 60, "nickname: {p.user_first} vs {p.contact_first}, same last name "
          "({p.contact_last})", lambda f: f.last_same & f.nickname),
    Level("swapped", 60, "first and last names swapped ({p.user} vs {p.contact})",
          lambda f: f.swapped),
    # Both names respelled at once, each the same, one typo away or sounding alike.
    Level("respelled", 60, "both names spelt differently ({p.user} vs {p.contact})",
          lambda f: f.respelled & ~f.middle_conflict),
    # Both alike; or one the same, or a nickname, and the other alike or sounding alike.
    Level("close", 50, "close names ({p.user} vs {p.contact})",
          lambda f: ((f.first_jw >= JW_SAME) & f.last_near)
          | (f.first_same & (f.last_jw >= JW_CLOSE)) | (f.last_same & (f.first_jw >= JW_CLOSE))
          | (f.nickname & f.last_near) | (f.first_same & f.sound_alike)),
    Level("initial", 45, "first initial and last name agree ({p.user} vs {p.contact})",
          lambda f: f.last_same & f.initial),
    Level("same_last", 15, "same last name ({p.contact_last}) but first names differ "
          "({p.user_first_or_unknown} vs {p.contact_first_or_unknown})", lambda f: f.last_same),
    Level("none", 0, ""),
)
# Found by the joins of _email_evidence, which say when each applies.
EMAIL_LEVELS: tuple[Level, ...] = (
    Level("same_address", 90, "same email address {p.contact_address}"),
    # The user's own local part on a tenant (alias) domain.
    Level("alias_domain", 80, "{p.contact_address} is {p.detail} on an alias domain of the "
          "tenant ({p.domain})"),
    # A local part the user's name would give, on a tenant domain, unless the contact's own,
    # different name explains it; weaker when it is the first or last name alone.
    Level("tenant_pattern", 60, "{p.contact_address} matches the {p.detail} pattern of "
          "{p.user_name} on a tenant domain"),
    Level("tenant_weak_pattern", 20, "{p.contact_address} matches the {p.detail}-name-only "
          "pattern of {p.user_name} on a tenant domain"),
    # The user's own local part on another domain, unless it is just a pattern of the name.
    Level("own_local_elsewhere", 30, "same mailbox name {p.local} as {p.detail}, on another "
          "domain ({p.domain})"),
    Level("lookalike", 80, "{p.looks_like}"),
    # Found pair by pair (_nickname_pattern_evidence): a contact's address on a tenant domain
    # that a nickname of the user's first name gives, or a mailbox of the user's that the
    # contact's first name or one of its nicknames gives ("liz.jones@" for Elizabeth Jones).
    Level("nickname_pattern", 55, "{p.detail}"),
    # With the same name only: the contact's address is on a tenant domain.
    Level("tenant_domain", 15, "the contact's address {p.contact_address} is on a tenant domain"),
)
SAME_PHONE_POINTS = 40

PHONE_DIGITS = 9
MIN_PHONE_DIGITS = 7
SHARED_PHONE_PEOPLE = 5  # a number on more people than this is a switchboard: no evidence
MAX_BLOCK_CONTACTS = 5000  # a blocking key on more contacts than this is too common to use
# Likewise for the sounds of both names, which are coarse: one organization's contacts rarely
# share them, a million contacts often do.
MAX_SOUND_BLOCK_CONTACTS = 200

_NAME_POINTS = np.array([level.points for level in NAME_LEVELS])
_NAME_LEVEL_INDEX = {level.label: i for i, level in enumerate(NAME_LEVELS)}
_EMAIL_LEVELS = {level.label: level for level in EMAIL_LEVELS}
_EMAIL_POINTS = {level.label: level.points for level in EMAIL_LEVELS}
_PATTERN_KINDS = ("tenant_pattern", "tenant_weak_pattern")
_KEY_BITS = 29  # two vocabulary codes and a key type packed into one int64
_NON_DIGIT = re.compile(r"\D+")


def duplicate_risk(new_users: pd.DataFrame, contacts: pd.DataFrame, alias_domains: list[str],
                   max_candidates: int = 3, *, min_score: float = MIN_RISK_SCORE) -> pd.DataFrame:
    """The contacts each new user may duplicate, at most max_candidates per user.

    new_users: NEW_USER_COLUMNS: user_id, first_name, last_name, display_name, email (the UPN),
        other_emails (list: mail and smtp proxy addresses), phones (list).
    contacts: ORG_CONTACT_COLUMNS: contact_id, first_name, last_name, emails (list), phones (list).
    alias_domains: the tenant's verified domains.
    Returns RISK_COLUMNS: user_id, contact_id, score (0-100), level (high >= 80, medium >= 60, low),
    reasons; users in input order, then score descending and contact id ascending.
    """
    if max_candidates < 1:
        raise ValueError("max_candidates must be at least 1")
    data = _prepare(new_users, contacts, alias_domains)
    evidence = _Evidence.collect(data)
    scored = _score(data, _blocked_pairs(data, evidence), evidence)
    scored = scored[scored["score"] >= min_score]
    return _risk_frame(data, _best_per_user(data, scored, max_candidates))


def candidate_pairs(new_users: pd.DataFrame, contacts: pd.DataFrame,
                    alias_domains: list[str]) -> pd.DataFrame:
    """The (user_id, contact_id) pairs blocking lets through to scoring."""
    data = _prepare(new_users, contacts, alias_domains)
    users, contact_positions = np.divmod(_blocked_pairs(data, _Evidence.collect(data)),
                                         data.n_contacts)
    return pd.DataFrame({"user_id": data.user_ids.take(users).reset_index(drop=True),
                         "contact_id": data.contact_ids.take(contact_positions)
                         .reset_index(drop=True)})


def score_pairs(new_users: pd.DataFrame, contacts: pd.DataFrame, alias_domains: list[str],
                pairs: pd.DataFrame, *, min_score: float = 0) -> pd.DataFrame:
    """Score given (user_id, contact_id) pairs without blocking: the reference that blocking
    is checked against (all pairs of a small sample). Rows as in duplicate_risk, all of them
    at or above min_score."""
    data = _prepare(new_users, contacts, alias_domains)
    users = pd.Index(data.user_ids).get_indexer(pairs["user_id"]).astype(np.int64)
    contact_positions = pd.Index(data.contact_ids).get_indexer(pairs["contact_id"])
    if (users < 0).any() or (contact_positions < 0).any():
        raise ValueError("pairs name a user or contact that is not in the frames")
    scored = _score(data, _sorted_unique(users * data.n_contacts + contact_positions),
                    _Evidence.collect(data))
    return _risk_frame(data, _order(data, scored[scored["score"] >= min_score]))


def _blocked_pairs(data: _Prepared, evidence: _Evidence) -> Ints:
    return _sorted_unique(np.concatenate([_name_block_pairs(data), evidence.pair_codes()]))


def _sorted_unique(codes: Ints) -> Ints:
    """np.unique, several times faster on millions of int64 (sort, then drop repeats)."""
    ordered = np.sort(codes)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _objects(values: Iterable[object]) -> pd.Series:
    """Strings kept as a plain object column: converting millions of intermediate values to
    pandas' Arrow-backed strings costs more than the joins on them."""
    return pd.Series(values, dtype=object)


# ---------------------------------------------------------------------------------------------
# Preparation: names as codes into one shared vocabulary, emails and phones as long tables

@dataclass
class _Prepared:
    user_ids: pd.Series
    contact_ids: pd.Series
    user_upns: pd.Series  # as given (not converted: only look-alikes' are read)
    user_names: tuple[Texts, Texts]  # (first, last) as given or derived, for reasons
    contact_names: tuple[Texts, Texts]
    user_first: Ints  # vocabulary codes of the name keys (the given name), -1 when empty
    user_last: Ints
    contact_first: Ints
    contact_last: Ints
    spelled: _Spelled  # codes of the same names with umlauts and the like written out
    user_middle: Texts  # the first middle name's key ('' when none)
    contact_middle: Texts
    vocab: Texts  # name keys (person_key, spelled_out_key) by code
    sounds: tuple[Ints, ...]  # their sound-alike keys (names.sound_keys) as codes, one per scheme; -1: none
    user_emails: pd.DataFrame  # idx, address, on_tenant, local_id, address_id
    contact_emails: pd.DataFrame
    locals: pd.Index  # local parts by local_id
    user_phones: pd.DataFrame  # idx, phone (int64, last digits)
    contact_phones: pd.DataFrame

    @property
    def n_contacts(self) -> int:
        return len(self.contact_ids)


class _Spelled(NamedTuple):
    """Vocabulary codes of names written out (spelled_out_key), equal to the plain codes for
    names without umlauts, ø, å or ß."""

    user_first: Ints
    user_last: Ints
    contact_first: Ints
    contact_last: Ints


def _prepare(new_users: pd.DataFrame, contacts: pd.DataFrame,
             alias_domains: list[str]) -> _Prepared:
    tenant_domains = frozenset(d.strip().lower().rstrip(".") for d in alias_domains if d)
    user_first_raw, user_last_raw = _user_names(new_users)
    contact_first_raw = _text(contacts["first_name"])
    contact_last_raw = _text(contacts["last_name"])
    user_given, user_middle = _given_and_middle(user_first_raw, user_last_raw,
                                                _text(new_users["display_name"]))
    contact_given, contact_middle = _given_and_middle(contact_first_raw, contact_last_raw, None)
    names = (user_given, user_last_raw, contact_given, contact_last_raw)
    codes, vocab = _shared_codes([map_unique(key, column) for key in (person_key, spelled_out_key)
                                  for column in names])
    user_emails = _email_table(*_explode(_user_addresses(new_users)), tenant_domains)
    contact_emails = _email_table(*_explode(contacts["emails"]), tenant_domains)
    local_codes, local_vocab = _shared_codes([user_emails.pop("local").to_numpy(),
                                              contact_emails.pop("local").to_numpy()])
    address_codes, _ = _shared_codes([user_emails["address"].to_numpy(),
                                      contact_emails["address"].to_numpy()])
    for table, local_id, address_id in zip((user_emails, contact_emails), local_codes,
                                           address_codes, strict=True):
        table["local_id"], table["address_id"] = local_id, address_id
    return _Prepared(
        user_ids=new_users["user_id"].reset_index(drop=True),
        contact_ids=contacts["contact_id"].reset_index(drop=True),
        user_upns=new_users["email"].reset_index(drop=True),
        user_names=(user_first_raw, user_last_raw),
        contact_names=(contact_first_raw, contact_last_raw),
        user_first=codes[0], user_last=codes[1], contact_first=codes[2], contact_last=codes[3],
        spelled=_Spelled(*codes[4:]),
        user_middle=user_middle, contact_middle=contact_middle,
        vocab=vocab,
        sounds=_sound_codes(vocab),
        user_emails=user_emails,
        contact_emails=contact_emails,
        locals=pd.Index(_objects(local_vocab)),
        user_phones=_phone_table(*_explode(new_users["phones"])),
        contact_phones=_phone_table(*_explode(contacts["phones"])),
    )


def _sound_codes(vocab: Texts) -> tuple[Ints, ...]:
    """Per scheme of names.sound_keys, a code per vocabulary entry (-1: no sound): equal codes,
    equal sounds."""
    by_scheme = zip(*(sound_keys(name) for name in vocab), strict=True) if len(vocab) else ((), (), ())
    return tuple(_shared_codes([np.array(keys, dtype=object)])[0][0] for keys in by_scheme)


def _text(column: pd.Series) -> Texts:
    """Strings as an object array, '' for missing values."""
    return column.astype("str").fillna("").to_numpy(dtype=object)


def _user_names(users: pd.DataFrame) -> tuple[Texts, Texts]:
    """First and last names; missing ones taken from the display name ("Smith, John" or
    "John Smith"), then from the UPN's local part ("john.smith")."""
    first, last = _text(users["first_name"]), _text(users["last_name"])
    display, upn = _text(users["display_name"]), _text(users["email"])
    missing = np.flatnonzero((map_unique(person_key, first) == "")
                             | (map_unique(person_key, last) == ""))
    for i in missing:
        guess_first, guess_last = _split_name(display[i]) or _split_local(upn[i]) or ("", "")
        if not person_key(first[i]):
            first[i] = guess_first
        if not person_key(last[i]):
            last[i] = guess_last
    return first, last


def _given_and_middle(first: Texts, last: Texts, display: Texts | None) -> tuple[Texts, Texts]:
    """The given name (the first word of a first name of several words) and the first middle
    name's key: from the first name ("John A." -> "John", "a"), else from a display name that
    reads first, middle, last ("John A. Smith"). '' for no middle name."""
    given = first.copy()
    middle = np.full(len(first), "", dtype=object)
    for i in np.flatnonzero(np.fromiter((" " in name.strip() for name in first), bool, len(first))):
        words = [word for word in first[i].split() if person_key(word)]
        if len(words) >= 2:
            given[i], middle[i] = words[0], person_key(words[1])
    if display is not None:
        three_words = np.fromiter((name.strip().count(" ") >= 2 for name in display), bool, len(display))
        for i in np.flatnonzero((middle == "") & three_words):
            words = [word for word in display[i].split() if person_key(word)]
            if len(words) >= 3 and person_key(words[0]) == person_key(given[i]) \
                    and person_key(words[-1]) == person_key(last[i]):
                middle[i] = person_key(words[1])
    return given, middle


def _split_name(display: str) -> tuple[str, str] | None:
    if "," in display:
        last, _, first = display.partition(",")
        words = [w for w in first.split() if person_key(w)]
        return (words[0] if words else "", last.strip()) if person_key(last) else None
    words = [w for w in display.split() if person_key(w)]  # drops emoji and stray symbols
    if len(words) >= 2:
        return words[0], words[-1]
    return ("", words[0]) if words else None


def _split_local(upn: str) -> tuple[str, str] | None:
    parts = [p for p in upn.partition("@")[0].replace("_", ".").replace("-", ".").split(".") if p]
    return (parts[0], parts[-1]) if len(parts) >= 2 else None


def _shared_codes(arrays: Sequence[Texts]) -> tuple[list[Ints], Texts]:
    """Codes of all arrays in one vocabulary; '' gets -1."""
    codes, uniques = pd.factorize(_objects(np.concatenate(arrays)))
    vocab = np.asarray(uniques, dtype=object)
    empty = np.flatnonzero(vocab == "")
    if len(empty):
        codes = np.where(codes == empty[0], -1, codes)
    return np.split(codes.astype(np.int64), np.cumsum([len(a) for a in arrays])[:-1]), vocab


def _explode(values: pd.Series) -> tuple[Ints, list[object]]:
    """(owner position, value) for list cells; a plain string counts as a list of one."""
    lists = [v if isinstance(v, (list, tuple, np.ndarray)) else ([v] if isinstance(v, str) else [])
             for v in values.to_numpy(dtype=object)]
    owners = np.repeat(np.arange(len(lists), dtype=np.int64), [len(v) for v in lists])
    return owners, list(chain.from_iterable(lists))


def _user_addresses(users: pd.DataFrame) -> pd.Series:
    return _objects([[upn, *(others if isinstance(others, (list, tuple, np.ndarray)) else [])]
                     for upn, others in zip(_text(users["email"]),
                                            users["other_emails"].to_numpy(dtype=object), strict=True)])


def _parse_address(text: object) -> tuple[str, str] | None:
    """(local, domain) of 'SMTP:John.Smith+news@Contoso.com' -> ('john.smith', 'contoso.com');
    None for anything else (other proxy types such as 'sip:', not an address)."""
    address = email_address(text.strip().lower()) if isinstance(text, str) else None
    if address is None:
        return None
    local, at, domain = address.rpartition("@")
    local = local.partition("+")[0]  # plus-addressing
    if not at or not local or not domain or ":" in address:
        return None
    return local, domain


def _address_text(text: object) -> str | None:
    parsed = _parse_address(text)
    return f"{parsed[0]}@{parsed[1]}" if parsed else None


def _email_table(owners: Ints, addresses: list[object], tenant_domains: frozenset[str]
                 ) -> pd.DataFrame:
    """idx, local, address, on_tenant (the domain is one of the tenant's), one row per
    distinct address of each owner."""
    parsed = [_parse_address(a) for a in addresses]
    valid = np.fromiter((p is not None for p in parsed), np.bool_, len(parsed))
    kept = [p for p in parsed if p is not None]
    table = pd.DataFrame({
        "idx": owners[valid],
        "local": _objects([local for local, _ in kept]),
        "address": _objects([f"{local}@{domain}" for local, domain in kept]),
        "on_tenant": np.fromiter((domain in tenant_domains for _, domain in kept), np.bool_,
                                 len(kept)),
    })
    return table.drop_duplicates(["idx", "address"]).reset_index(drop=True)


def _phone_table(owners: Ints, numbers: list[object]) -> pd.DataFrame:
    """idx, phone: the last digits as an integer; numbers on many people are dropped."""
    digits = [_NON_DIGIT.sub("", n) if isinstance(n, str) else "" for n in numbers]
    valid = np.fromiter((len(d) >= MIN_PHONE_DIGITS for d in digits), bool, len(digits))
    phone = np.array([int(d[-PHONE_DIGITS:]) for d in digits if len(d) >= MIN_PHONE_DIGITS],
                     dtype=np.int64)
    table = pd.DataFrame({"idx": owners[valid], "phone": phone}).drop_duplicates()
    people = table.groupby("phone")["idx"].transform("size")
    return table[people <= SHARED_PHONE_PEOPLE].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Blocking on names

def _name_block_pairs(data: _Prepared) -> Ints:
    """Pair codes (user * n_contacts + contact) sharing a name key; names with letters written
    out another way ("Müller", "Mueller") give their keys in both spellings."""
    tokens = _name_tokens(data.vocab, data.sounds)
    spelled = data.spelled
    user_keys = pd.concat([
        _name_keys(tokens, data.user_first, data.user_last, swapped=True),
        _name_keys(tokens, *_written_out(data.user_first, data.user_last, spelled.user_first,
                                         spelled.user_last), swapped=True)], ignore_index=True)
    contact_keys = pd.concat([
        _name_keys(tokens, data.contact_first, data.contact_last, swapped=False),
        _name_keys(tokens, *_written_out(data.contact_first, data.contact_last,
                                         spelled.contact_first, spelled.contact_last),
                   swapped=False)], ignore_index=True)
    contact_keys = contact_keys[contact_keys["key"].isin(user_keys["key"])]
    block_sizes = contact_keys["key"].value_counts()
    sounds_only = (block_sizes.index.to_numpy(np.int64) >> (2 * _KEY_BITS)) >= _KEY_SOUNDS
    too_common = block_sizes.index[(block_sizes.to_numpy() > MAX_BLOCK_CONTACTS)
                                   | (sounds_only & (block_sizes.to_numpy() > MAX_SOUND_BLOCK_CONTACTS))]
    joined = user_keys.merge(contact_keys[~contact_keys["key"].isin(too_common)], on="key")
    pairs: Ints = joined["idx_x"].to_numpy(np.int64) * data.n_contacts + joined["idx_y"].to_numpy(np.int64)
    by_sound = (joined["key"].to_numpy(np.int64) >> (2 * _KEY_BITS)) >= _KEY_SOUNDS
    return np.concatenate([pairs[~by_sound], _respelled_candidates(data, _sorted_unique(pairs[by_sound]))])


def _respelled_candidates(data: _Prepared, pairs: Ints) -> Ints:
    """The pairs met on the sounds of both names that can be respelled (NAME_LEVELS): both names
    alike by Jaro-Winkler. The sounds are coarse, so most pairs they meet are not, and no other
    name level needs them (the others have keys of their own)."""
    users, contacts = np.divmod(pairs, data.n_contacts)
    alike = ((_jaro_winkler(data.vocab, data.user_first[users], data.contact_first[contacts]) >= JW_RESPELLED)
             & (_jaro_winkler(data.vocab, data.user_last[users], data.contact_last[contacts]) >= JW_RESPELLED))
    kept: Ints = pairs[alike]
    return kept


def _written_out(first: Ints, last: Ints, spelled_first: Ints, spelled_last: Ints
                 ) -> tuple[Ints, Ints]:
    """The written-out codes of the people whose names have another spelling, -1 for the rest."""
    other = (spelled_first != first) | (spelled_last != last)
    return np.where(other, spelled_first, -1), np.where(other, spelled_last, -1)


@dataclass
class _Lists:
    """A list of tokens per vocabulary code, stored flat: code i owns
    tokens[starts[i]:starts[i + 1]]."""
    starts: Ints
    tokens: Ints

    @classmethod
    def of(cls, lists: list[list[str]], token_codes: Ints) -> _Lists:
        sizes = np.fromiter((len(x) for x in lists), np.int64, len(lists))
        return cls(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), token_codes)

    def expand(self, idx: Ints, codes: Ints) -> tuple[Ints, Ints]:
        """(owner, token) for every token of every owner's code."""
        counts = self.starts[codes + 1] - self.starts[codes]
        first_of_owner = np.repeat(self.starts[codes] - (np.cumsum(counts) - counts), counts)
        return np.repeat(idx, counts), self.tokens[np.arange(counts.sum()) + first_of_owner]


@dataclass
class _NameTokens:
    """Per vocabulary code, in one token space: the name itself, its sound-alike keys (one per
    scheme of names.sound_keys), the name and its one-letter deletions, and the canonical names
    of its nickname groups."""
    name: Ints
    sounds: tuple[Ints, ...]
    variants: _Lists
    nicknames: _Lists


def _name_tokens(vocab: Texts, sounds: tuple[Ints, ...]) -> _NameTokens:
    variants = [_deletions(name) for name in vocab]
    known = nickname_names()
    nicknames = [sorted(canonical_first_names(name)) if name in known else [] for name in vocab]
    flat = [np.array(list(chain.from_iterable(lists)), dtype=object)
            for lists in (variants, nicknames)]
    codes, _ = _shared_codes([vocab, *flat])
    # A sound key is packed with a name token or with another sound key of its scheme, under a
    # kind of its own, so its codes need not share the names' token space.
    return _NameTokens(codes[0], sounds, _Lists.of(variants, codes[1]), _Lists.of(nicknames, codes[2]))


def _deletions(name: str) -> list[str]:
    """The name and, when long enough for a typo, each way of deleting one letter: two names
    one substitution, insertion, deletion or transposition apart share one of these."""
    if len(name) < MIN_TYPO_LENGTH:
        return [name] if name else []
    return [name, *{name[:i] + name[i + 1:] for i in range(len(name))}]


_KEY_LAST_FIRST, _KEY_FIRST_LAST, _KEY_LAST_NICKNAME, _KEY_FIRST_SOUND = 1, 2, 3, 4
_KEY_SOUNDS = 5  # + the scheme's position: both names sounding alike by one scheme


def _name_keys(tokens: _NameTokens, first: Ints, last: Ints,
               swapped: bool) -> pd.DataFrame:
    """idx, key. Keys: the last name with the first name or a deletion of it; the first name
    with the last name or a deletion of it; the last name with a nickname group of the first;
    the first name with the sound of the last; the sounds of both names, by each scheme (both
    names respelled: "Jon Smyth", "John Smith"); on one side only, the names swapped."""
    named = np.flatnonzero((first >= 0) & (last >= 0))
    first, last = first[named], last[named]
    parts = [
        _key_rows(_KEY_LAST_FIRST, named, tokens.name[last], tokens.variants.expand(
            np.arange(len(named)), first)),
        _key_rows(_KEY_FIRST_LAST, named, tokens.name[first], tokens.variants.expand(
            np.arange(len(named)), last)),
        _key_rows(_KEY_LAST_NICKNAME, named, tokens.name[last], tokens.nicknames.expand(
            np.arange(len(named)), first)),
        _key_rows(_KEY_FIRST_SOUND, named, tokens.name[first],
                  (np.arange(len(named)), tokens.sounds[0][last])),
        *(_key_rows(_KEY_SOUNDS + scheme, named, sounds[first], (np.arange(len(named)), sounds[last]))
          for scheme, sounds in enumerate(tokens.sounds)),
    ]
    if swapped:  # the user's first name as the contact's last, and the other way round
        parts.append(_key_rows(_KEY_LAST_FIRST, named, tokens.name[first],
                               (np.arange(len(named)), tokens.name[last])))
    return pd.concat(parts, ignore_index=True)


def _key_rows(kind: int, named: Ints, whole: Ints,
              parts: tuple[Ints, Ints]) -> pd.DataFrame:
    """Keys packing a kind, one name's token and a part token (row i of `parts` belongs to
    named[owner]); tokens of -1 (no sound-alike key) are left out."""
    owner, part = parts
    ok = (part >= 0) & (whole[owner] >= 0)
    owner, part = owner[ok], part[ok]
    key = ((np.int64(kind) << (2 * _KEY_BITS)) | (whole[owner].astype(np.int64) << _KEY_BITS)
           | part.astype(np.int64))
    return pd.DataFrame({"idx": named[owner], "key": key})


# ---------------------------------------------------------------------------------------------
# Email and phone evidence: exact joins that are also blocking keys

@dataclass
class _Evidence:
    email: pd.DataFrame  # pair, kind, points, contact_address, detail (user address or pattern)
    phone: pd.DataFrame  # pair, phone
    lookalike_name: pd.DataFrame  # pair

    @classmethod
    def collect(cls, data: _Prepared) -> _Evidence:
        return cls(_email_evidence(data), _phone_evidence(data), _name_lookalikes(data))

    def pair_codes(self) -> Ints:
        return np.concatenate([frame["pair"].to_numpy(np.int64)
                               for frame in (self.email, self.phone, self.lookalike_name)])


def _email_evidence(data: _Prepared) -> pd.DataFrame:
    """Best email evidence per pair. The user's own addresses: the same address anywhere; the
    same local part on a tenant domain; a local part that is not just a pattern of the name
    ("jdoe42") on any domain. The local parts the user's name would give: on a tenant domain.
    Joins run on integer codes of local parts and addresses."""
    contacts = data.contact_emails.rename(columns={"idx": "c", "address": "contact_address"})
    tenant_contacts = contacts[contacts["on_tenant"]].drop(columns="address_id")
    patterns = _user_patterns(data, set(data.locals[tenant_contacts["local_id"]])
                              | set(data.locals[data.user_emails["local_id"]]))
    own = data.user_emails.drop(columns="on_tenant").merge(patterns, on=["idx", "local_id"],
                                                           how="left")
    name_like = own["pattern"].notna()
    mailbox = pd.concat([
        own.merge(contacts.drop(columns="local_id"), on="address_id"),
        own[name_like].merge(tenant_contacts, on="local_id"),
        own[~name_like].merge(contacts.drop(columns="address_id"), on="local_id"),
    ], ignore_index=True)
    mailbox_kind = np.select(
        [(mailbox["contact_address"] == mailbox["address"]).to_numpy(bool),
         mailbox["on_tenant"].to_numpy(bool)],
        ["same_address", "alias_domain"], "own_local_elsewhere")
    mailbox = mailbox.assign(kind=_objects(mailbox_kind), detail=mailbox["address"])

    own_locals = set(zip(own["idx"], own["local_id"], strict=True))
    generated = patterns[np.fromiter((key not in own_locals for key in
                                      zip(patterns["idx"], patterns["local_id"], strict=True)), bool,
                                     len(patterns))]
    pattern_hits = generated.merge(tenant_contacts, on="local_id")
    pattern_kind = np.where(pattern_hits["pattern"].isin(WEAK_EMAIL_PATTERNS).to_numpy(),
                            "tenant_weak_pattern", "tenant_pattern")
    pattern_hits = pattern_hits.assign(kind=_objects(pattern_kind), detail=pattern_hits["pattern"])

    hits = pd.concat([frame[["idx", "c", "kind", "contact_address", "detail"]]
                      for frame in (mailbox, pattern_hits, _address_lookalikes(data))],
                     ignore_index=True)
    hits["points"] = hits["kind"].map(_EMAIL_POINTS).astype(np.int64)
    hits["pair"] = hits["idx"].to_numpy(np.int64) * data.n_contacts + hits["c"].to_numpy(np.int64)
    best = hits.sort_values(["pair", "points", "contact_address"], ascending=[True, False, True])
    return best.drop_duplicates("pair")[["pair", "kind", "points", "contact_address", "detail"]]


def _user_patterns(data: _Prepared, wanted: set[str]) -> pd.DataFrame:
    """idx, local_id, pattern: the local parts each user's name would give, in both spellings,
    among `wanted`."""
    width = len(data.vocab) + 1
    everyone = np.arange(len(data.user_first), dtype=np.int64)
    spelled = data.spelled
    other = (spelled.user_first != data.user_first) | (spelled.user_last != data.user_last)
    owners = np.r_[everyone, everyone[other]]
    combos, uniques = pd.factorize((np.r_[data.user_first, spelled.user_first[other]] + 1) * width
                                   + (np.r_[data.user_last, spelled.user_last[other]] + 1))
    rows = []
    for combo, (first, last) in enumerate(zip(uniques // width - 1, uniques % width - 1, strict=True)):
        names = email_local_pattern_names(data.vocab[first] if first >= 0 else "",
                                          data.vocab[last] if last >= 0 else "")
        rows += [(combo, local, pattern) for local, pattern in names.items() if local in wanted]
    by_combo = pd.DataFrame({"combo": np.array([r[0] for r in rows], dtype=np.int64),
                             "local_id": data.locals.get_indexer(pd.Index(_objects([r[1] for r in rows]))),
                             "pattern": _objects([r[2] for r in rows])})
    users = pd.DataFrame({"idx": owners, "combo": combos})
    return users.merge(by_combo, on="combo")[["idx", "local_id", "pattern"]] \
        .drop_duplicates(["idx", "local_id"])


def _nickname_pattern_evidence(data: _Prepared, users: Ints, contacts: Ints, facts: _NameFacts,
                               where: Flags) -> pd.DataFrame:
    """kind, points, contact_address, detail, indexed by pair position, where a nickname pattern
    joins the pair (EMAIL_LEVELS' nickname_pattern), in both directions: the user's first name's
    nicknames against the contact's addresses on tenant domains (first names the same or
    nicknames of each other), the contact's first name and its nicknames against the user's
    (first names nicknames of each other: with the same first name, the user's mailbox says
    nothing about the contact). Only for the given pairs, so a Python loop over cached patterns."""
    contact_addresses = _tenant_addresses(data.contact_emails, contacts[where & (facts.first_same | facts.nickname)])
    user_addresses = _tenant_addresses(data.user_emails, users[where & facts.nickname])
    rows: dict[int, tuple[str, str]] = {}
    for position in np.flatnonzero(where & (np.isin(contacts, list(contact_addresses))
                                            | np.isin(users, list(user_addresses)))):
        user, contact = int(users[position]), int(contacts[position])
        found = _contact_fits_a_nickname(data, user, contact_addresses.get(contact, ()))
        if found is None and facts.nickname[position]:
            found = _mailbox_fits_the_contact(data, user, contact, user_addresses.get(user, ()))
        if found is not None:
            rows[int(position)] = found
    return _found("nickname_pattern", np.array(list(rows), np.int64),
                  [address for address, _ in rows.values()], [detail for _, detail in rows.values()])


def _contact_fits_a_nickname(data: _Prepared, user: int, addresses: Sequence[str]) -> tuple[str, str] | None:
    """(address, reason) when one of the contact's addresses is a whole nickname of the user's
    first name with the user's last name."""
    first, last = data.vocab[data.user_first[user]], data.vocab[data.user_last[user]]
    nicknames = ascii_nickname_relatives(first)
    for address in addresses:
        local = address.partition("@")[0]
        hit = whole_name_in_local(local, last)
        if hit is not None and hit[1] in nicknames and not _users_own_pattern(data, user, local):
            return address, (f"{address} fits {_full_name(data.user_names, user)} by the nickname {hit[1]} "
                             f"({hit[0]})")
    return None


def _mailbox_fits_the_contact(data: _Prepared, user: int, contact: int,
                              addresses: Sequence[str]) -> tuple[str, str] | None:
    """(address, reason) when one of the user's mailboxes is the contact's first name or one of
    its nicknames with the contact's last name, and not a pattern of the user's own name in
    either spelling (that says nothing about the contact)."""
    first, last = data.vocab[data.contact_first[contact]], data.vocab[data.contact_last[contact]]
    for address in addresses:
        local = address.partition("@")[0]
        hit = whole_name_in_local(local, last)
        if hit is None or _users_own_pattern(data, user, local):
            continue
        pattern, named = hit
        by = f"the name {named}" if named == ascii_key(first) else \
            f"the nickname {named}" if named in ascii_nickname_relatives(first) else None
        if by is not None:
            return address, (f"the user's mailbox {address} fits the contact's name "
                             f"{_full_name(data.contact_names, contact)} by {by} ({pattern})")
    return None


def _users_own_pattern(data: _Prepared, user: int, local: str) -> bool:
    """Whether the local part is a pattern of the user's own name, in either spelling."""
    vocab, spelled = data.vocab, data.spelled
    return (local in _own_patterns(vocab[data.user_first[user]], vocab[data.user_last[user]])
            or local in _own_patterns(vocab[spelled.user_first[user]], vocab[spelled.user_last[user]]))


def _full_name(names: tuple[Texts, Texts], owner: int) -> str:
    return f"{names[0][owner]} {names[1][owner]}".strip()


@cache
def _own_patterns(first: str, last: str) -> dict[str, str]:
    return email_local_pattern_names(first, last)


def _tenant_addresses(emails: pd.DataFrame, owners: Ints) -> dict[int, list[str]]:
    """Owner position -> its addresses on tenant domains, sorted, for the given owners."""
    on_tenant = emails[emails["on_tenant"].to_numpy(bool) & emails["idx"].isin(owners).to_numpy()]
    on_tenant = on_tenant.sort_values(["idx", "address"])
    found: dict[int, list[str]] = {}
    for owner, address in zip(on_tenant["idx"].tolist(), on_tenant["address"].tolist(), strict=True):
        found.setdefault(owner, []).append(address)
    return found


def _tenant_domain_evidence(data: _Prepared, contacts: Ints, where: Flags) -> pd.DataFrame:
    """kind, points, contact_address (the first on a tenant domain), indexed by pair position,
    where the contact has an address on a tenant domain."""
    emails = data.contact_emails
    wanted = emails["on_tenant"].to_numpy(bool) & emails["idx"].isin(contacts[where]).to_numpy()
    first_address = emails[wanted].groupby("idx")["address"].min()
    addresses = first_address.reindex(contacts[where]).to_numpy(object)
    has = pd.notna(addresses)
    positions = np.flatnonzero(where)[has]
    return _found("tenant_domain", positions, list(addresses[has]), [None] * len(positions))


def _found(kind: str, positions: Ints, addresses: list[str], details: list[str | None]) -> pd.DataFrame:
    """Email evidence of one kind found pair by pair, indexed by pair position."""
    return pd.DataFrame({"kind": np.array([kind] * len(positions), dtype=object),
                         "points": np.full(len(positions), _EMAIL_POINTS[kind], np.int64),
                         "contact_address": np.array(addresses, dtype=object),
                         "detail": np.array(details, dtype=object)},
                        index=pd.Index(positions, dtype=np.int64))


def _phone_evidence(data: _Prepared) -> pd.DataFrame:
    joined = data.user_phones.merge(data.contact_phones, on="phone")
    pair = joined["idx_x"].to_numpy(np.int64) * data.n_contacts + joined["idx_y"].to_numpy(np.int64)
    return pd.DataFrame({"pair": pair, "phone": joined["phone"].to_numpy()}).drop_duplicates("pair")


# ---------------------------------------------------------------------------------------------
# Look-alikes: strings with the same Unicode TS #39 skeleton

@dataclass
class _Texts:
    """One side's strings, a row per owner and string: the parts joined by single spaces (an
    address; a first and a last name)."""
    owner: Ints
    parts: tuple[Texts, ...]

    def ascii_rows(self) -> Flags:
        if all(_all_ascii(part) for part in self.parts):  # the usual case
            return np.ones(len(self.owner), bool)
        plain: Flags = np.logical_and.reduce([np.fromiter((text.isascii() for text in part), np.bool_,
                                                          len(part)) for part in self.parts])
        return plain

    def rows(self, where: Flags) -> list[tuple[int, str]]:
        """(owner, text) of the rows where `where` is True."""
        if len(self.parts) == 1:  # an address, already without spaces around it
            texts: Iterable[str] = self.parts[0][where]
        else:
            texts = (" ".join(" ".join(values).split())
                     for values in zip(*(part[where] for part in self.parts), strict=True))
        return list(zip(self.owner[where].tolist(), texts, strict=True))


def _all_ascii(texts: Texts, chunk: int = 2048) -> bool:
    """str.isascii over the texts joined a few at a time: at C speed, and without the large
    temporary strings that leave the allocator holding memory."""
    return all("".join(texts[i:i + chunk]).isascii() for i in range(0, len(texts), chunk))


def _address_lookalikes(data: _Prepared) -> pd.DataFrame:
    """idx, c, kind, contact_address, detail ("UPN" or "email", a space, the user's address)."""
    found = _lookalikes(*(_Texts(table["idx"].to_numpy(np.int64),
                                 (table["address"].to_numpy(object),))
                          for table in (data.user_emails, data.contact_emails)))
    roles = ["UPN" if _address_text(data.user_upns.iat[user]) == address else "email"
             for user, address in zip(found["idx"], found["user_text"], strict=True)]
    return pd.DataFrame({"idx": found["idx"], "c": found["c"],
                         "kind": _objects(["lookalike"] * len(found)),
                         "contact_address": found["contact_text"],
                         "detail": _objects([f"{role} {address}" for role, address
                                             in zip(roles, found["user_text"], strict=True)])})


def _name_lookalikes(data: _Prepared) -> pd.DataFrame:
    """pair: user and contact whose full names look alike."""
    found = _lookalikes(_Texts(np.arange(len(data.user_ids), dtype=np.int64), data.user_names),
                        _Texts(np.arange(data.n_contacts, dtype=np.int64), data.contact_names))
    return pd.DataFrame({"pair": found["idx"].to_numpy(np.int64) * data.n_contacts
                         + found["c"].to_numpy(np.int64)})


def _lookalikes(users: _Texts, contacts: _Texts) -> pd.DataFrame:
    """idx, c, user_text, contact_text: strings that differ with case ignored but share a
    skeleton, at least one of the two not ASCII."""
    caseless: dict[str, str] = {}
    pairs = [(user, user_text, contact, contact_text)
             for user, user_text, contact, contact_text in _skeleton_pairs(users, contacts)
             if _cached(caseless, _caseless, user_text) != _cached(caseless, _caseless, contact_text)]
    idx, user_texts, c, contact_texts = zip(*pairs, strict=True) if pairs else ((), (), (), ())
    return pd.DataFrame({"idx": np.array(idx, np.int64), "c": np.array(c, np.int64),
                         "user_text": _objects(user_texts), "contact_text": _objects(contact_texts)})


# (owner, text, skeleton)
_Skeletoned: TypeAlias = list[tuple[int, str, str]]


def _skeleton_pairs(users: _Texts, contacts: _Texts) -> list[tuple[int, str, int, str]]:
    """(user, text, contact, text): a user's and a contact's texts with the same skeleton, at
    least one of them not ASCII; users in order, then contacts in order (non-ASCII ones first).
    Dictionaries, not DataFrame joins: one tenant's texts are few, and joins cost more to set up."""
    user_plain, contact_plain = users.ascii_rows(), contacts.ascii_rows()
    if user_plain.all() and contact_plain.all():
        return []
    skeletons: dict[str, str] = {}
    fancy_users, fancy_contacts = (_skeletoned(side.rows(~plain), skeletons)
                                   for side, plain in ((users, user_plain), (contacts, contact_plain)))
    # An ASCII text can only match a non-ASCII one, and only if that one's skeleton is made of
    # the characters ASCII skeletons are made of.
    plain_users = _skeletoned(users.rows(user_plain & _ascii_like(fancy_contacts)), skeletons)
    plain_contacts = _skeletoned(contacts.rows(contact_plain & _ascii_like(fancy_users)), skeletons)
    fancy_only, any_contact = _by_skeleton(fancy_contacts), _by_skeleton(fancy_contacts + plain_contacts)
    return [(user, user_text, contact, contact_text)
            for rows, candidates in ((fancy_users, any_contact), (plain_users, fancy_only))
            for user, user_text, skeleton in rows
            for contact, contact_text in candidates.get(skeleton, ())]


def _skeletoned(rows: list[tuple[int, str]], skeletons: dict[str, str]) -> _Skeletoned:
    """The rows with their texts' skeletons (each distinct text skeletoned once)."""
    return [(owner, text, _cached(skeletons, _skeleton, text)) for owner, text in rows]


def _by_skeleton(rows: _Skeletoned) -> dict[str, list[tuple[int, str]]]:
    """(owner, text) by skeleton, in order; an empty skeleton matches nothing."""
    found: dict[str, list[tuple[int, str]]] = {}
    for owner, text, skeleton in rows:
        if skeleton:
            found.setdefault(skeleton, []).append((owner, text))
    return found


def _cached(memo: dict[str, str], func: Callable[[str], str], text: str) -> str:
    if text not in memo:
        memo[text] = func(text)
    return memo[text]


def _ascii_like(rows: _Skeletoned) -> bool:
    """Whether any skeleton is made of the characters ASCII strings' skeletons are made of: only
    then can an ASCII string look like those texts."""
    chars = _ascii_skeleton_chars()
    return any(chars.issuperset(skeleton) for _, _, skeleton in rows)


@cache
def _ascii_skeletons() -> dict[int, str]:
    """ICU's skeleton of each ASCII character, as a str.translate table. TS #39 maps an NFD
    string code point by code point, so an ASCII string's skeleton is its characters' joined
    (the tests check this against ICU); contacts are mostly ASCII, and this is far faster."""
    return {code: spoof_checker().getSkeleton(0, chr(code)) for code in range(128)}


@cache
def _ascii_skeleton_chars() -> frozenset[str]:
    return frozenset("".join(_ascii_skeletons().values()))  # ASCII, and º and ₀ for %


def _skeleton(text: str) -> str:
    """The skeleton of the casefolded text (skeletons keep case)."""
    if text.isascii():
        return text.lower().translate(_ascii_skeletons())
    skeleton: str = spoof_checker().getSkeleton(0, text.casefold())
    return skeleton


def _caseless(text: str) -> str:
    return unicodedata.normalize("NFC", text.casefold())


# ---------------------------------------------------------------------------------------------
# Scoring

def _score(data: _Prepared, pairs: Ints, evidence: _Evidence) -> pd.DataFrame:
    """u, c, score, name level, email kind and details, phone for sorted unique pair codes."""
    users, contacts = np.divmod(pairs, data.n_contacts)
    facts = _name_facts(data, users, contacts, _flagged(evidence.lookalike_name, pairs))
    name_level = _name_levels(facts)
    name_points = _NAME_POINTS[name_level]

    email = _EmailColumns.of(_align(evidence.email, pairs))
    # A mailbox that fits the user's name is no evidence when the contact's own, different
    # name explains it: "lthomas@" is Lance Thomas's as much as Linda Thomas's.
    email.drop(facts.names_conflict() & np.isin(email.kind, _PATTERN_KINDS))
    email.put(_nickname_pattern_evidence(
        data, users, contacts, facts, facts.last_same & (email.points < _EMAIL_POINTS["nickname_pattern"])))
    email.put(_tenant_domain_evidence(data, contacts, (email.points == 0)
                                      & (name_level == _NAME_LEVEL_INDEX["same"])))
    phone = _align(evidence.phone, pairs)
    phone_points = np.where(phone["phone"].notna(), SAME_PHONE_POINTS, 0)
    score = np.minimum(name_points + email.points + phone_points, 100).astype(np.float64)
    return pd.DataFrame({"u": users, "c": contacts, "score": score, "name_level": name_level,
                         "email_kind": _objects(email.kind), "contact_address": _objects(email.contact_address),
                         "email_detail": _objects(email.detail), "phone": phone["phone"].to_numpy(np.float64)})


@dataclass
class _EmailColumns:
    """The best email evidence of each scored pair, as arrays (None and 0 where there is none)."""

    kind: Texts
    points: Ints
    contact_address: Texts
    detail: Texts

    @classmethod
    def of(cls, aligned: pd.DataFrame) -> _EmailColumns:
        def texts(column: str) -> Texts:
            values: Texts = aligned[column].to_numpy(object, copy=True)
            values[pd.isna(values)] = None
            return values
        return cls(texts("kind"), aligned["points"].fillna(0).to_numpy(np.int64, copy=True),
                   texts("contact_address"), texts("detail"))

    def drop(self, where: Flags) -> None:
        self.kind[where] = self.contact_address[where] = self.detail[where] = None
        self.points[where] = 0

    def put(self, found: pd.DataFrame) -> None:
        """found's rows (indexed by pair position) in place of what was there."""
        positions = found.index.to_numpy(np.int64)
        self.kind[positions] = found["kind"].to_numpy(object)
        self.points[positions] = found["points"].to_numpy(np.int64)
        self.contact_address[positions] = found["contact_address"].to_numpy(object)
        self.detail[positions] = found["detail"].to_numpy(object)


def _align(evidence: pd.DataFrame, pairs: Ints) -> pd.DataFrame:
    """Evidence rows reindexed to the sorted pair codes (missing: NaN)."""
    position, found = _positions(evidence, pairs)
    return evidence[found].set_index(position).reindex(np.arange(len(pairs)))


def _flagged(evidence: pd.DataFrame, pairs: Ints) -> Flags:
    """Whether each of the sorted pair codes has an evidence row."""
    flags = np.zeros(len(pairs), bool)
    flags[_positions(evidence, pairs)[0]] = True
    return flags


def _positions(evidence: pd.DataFrame, pairs: Ints) -> tuple[Ints, Flags]:
    """Positions in the sorted pair codes of the evidence rows found there, and which rows
    those are."""
    codes = evidence["pair"].to_numpy(np.int64)
    position = np.searchsorted(pairs, codes)
    found = position < len(pairs)
    found[found] = pairs[position[found]] == codes[found]
    return position[found], found


@dataclass
class _NameFacts:
    """What the name levels' conditions read, one value per pair."""

    first_same: Flags  # set on both sides and the same
    last_same: Flags
    first_jw: Similarities  # Jaro-Winkler similarity (0 where unset)
    last_jw: Similarities
    last_near: Flags  # last_jw >= JW_SAME
    first_typo: Flags  # different, one typo apart and alike (checked only where it can count)
    last_typo: Flags
    nickname: Flags  # first names of one nickname group (checked only where it can count)
    initial: Flags  # one first name an initial of the other (likewise)
    sound_alike: Flags  # last names sounding alike by one of names.sound_keys' schemes
    both_sound: Flags  # first and last names sounding alike by one and the same scheme
    swapped: Flags  # first and last names swapped, both set
    lookalike: Flags  # full names look alike
    middle_conflict: Flags  # middle names on both sides, neither the other or its initial
    first_known: Flags  # set on both sides
    last_known: Flags

    @property
    def respelled(self) -> Flags:
        """Both names respelled: sounding alike by one scheme (so the pair shares a blocking key)
        and alike by Jaro-Winkler."""
        return self.both_sound & (self.first_jw >= JW_RESPELLED) & (self.last_jw >= JW_RESPELLED)

    def names_conflict(self) -> Flags:
        """A first, middle or last name known on both sides disagrees (not the same, alike, a
        nickname or an initial; names not swapped or look-alikes)."""
        first = self.first_known & ~(self.first_same | (self.first_jw >= JW_CLOSE) | self.nickname
                                     | self.initial | self.respelled)
        last = self.last_known & ~(self.last_same | (self.last_jw >= JW_CLOSE) | self.sound_alike)
        return ((first | last) & ~self.swapped & ~self.lookalike) | self.middle_conflict


def _name_facts(data: _Prepared, users: Ints, contacts: Ints,
                lookalike: Flags) -> _NameFacts:
    vocab, spelled = data.vocab, data.spelled
    uf, ul = data.user_first[users], data.user_last[users]
    cf, cl = data.contact_first[contacts], data.contact_last[contacts]
    first_same = _same_in_a_spelling(uf, spelled.user_first[users], cf, spelled.contact_first[contacts])
    last_same = _same_in_a_spelling(ul, spelled.user_last[users], cl, spelled.contact_last[contacts])
    first_jw, last_jw = _jaro_winkler(vocab, uf, cf), _jaro_winkler(vocab, ul, cl)
    # The per-name checks below run in Python, so only where they can change the outcome.
    last_near = last_jw >= JW_SAME
    first_open = ~first_same & (last_near | (cl < 0))
    return _NameFacts(
        first_same=first_same, last_same=last_same, first_jw=first_jw, last_jw=last_jw,
        last_near=last_near,
        first_typo=_by_distinct_pair(vocab, uf, cf, _typo_apart,
                                     ~first_same & (first_jw >= JW_CLOSE)),
        last_typo=_by_distinct_pair(vocab, ul, cl, _typo_apart,
                                    ~last_same & (last_jw >= JW_CLOSE)),
        nickname=_by_distinct_pair(vocab, uf, cf, _nickname_pair, first_open),
        initial=_by_distinct_pair(vocab, uf, cf, _initial_pair, first_open),
        sound_alike=_sound_alike(data.sounds, ul, cl),
        both_sound=_both_sound_alike(data.sounds, uf, ul, cf, cl),
        swapped=(uf == cl) & (ul == cf) & (uf >= 0) & (ul >= 0),
        lookalike=lookalike,
        middle_conflict=_middles_conflict(data.user_middle[users], data.contact_middle[contacts]),
        first_known=(uf >= 0) & (cf >= 0), last_known=(ul >= 0) & (cl >= 0))


def _same_in_a_spelling(a: Ints, a_spelled: Ints, b: Ints, b_spelled: Ints) -> Flags:
    """Set and equal in either spelling: "Müller" is "Muller" and "Mueller"."""
    same: Flags = (a >= 0) & ((a == b) | (a_spelled == b) | (a == b_spelled) | (a_spelled == b_spelled))
    return same


def _middles_conflict(user_middle: Texts, contact_middle: Texts) -> Flags:
    """Both middle names known and neither the other or its initial ("A." and "Anne" agree)."""
    both = (user_middle != "") & (contact_middle != "")
    result = np.zeros(len(user_middle), bool)
    result[both] = [not (u.startswith(c) if len(c) == 1 else c.startswith(u) if len(u) == 1 else u == c)
                    for u, c in zip(user_middle[both], contact_middle[both], strict=True)]
    return result


def _name_levels(facts: _NameFacts) -> Ints:
    """Index into NAME_LEVELS for each pair."""
    ruled = [(i, level.condition) for i, level in enumerate(NAME_LEVELS) if level.condition]
    levels: Ints = np.select([condition(facts) for _, condition in ruled], [i for i, _ in ruled],
                             len(NAME_LEVELS) - 1)
    return levels


def _by_distinct_pair(vocab: Texts, a: Ints, b: Ints, func: Callable[[Texts, Texts], npt.NDArray[Value]],
                      where: Flags | None = None) -> npt.NDArray[Value]:
    """func(left names, right names) -> array, computed once per distinct pair of vocabulary
    codes (names repeat a lot) and spread back; False or 0 where a code is unset (-1) or
    `where` is False."""
    ok = (a >= 0) & (b >= 0) if where is None else (a >= 0) & (b >= 0) & where
    inverse, distinct = pd.factorize(a[ok] * (1 << 32) + b[ok])
    values = np.asarray(func(vocab[distinct >> 32], vocab[distinct & ((1 << 32) - 1)]))
    result = np.zeros(len(a), dtype=values.dtype if len(values) else bool)
    result[ok] = values[inverse] if len(values) else result[ok]
    return result


def _jaro_winkler(vocab: Texts, a: Ints, b: Ints) -> Similarities:
    return _by_distinct_pair(vocab, a, b, _jw)


def _jw(left: Texts, right: Texts) -> Similarities:
    if not len(left):
        return np.empty(0, np.float32)
    return process.cpdist(left, right, scorer=JaroWinkler.normalized_similarity,
                          dtype=np.float32, workers=-1)


def _typo_apart(left: Texts, right: Texts) -> Flags:
    """Different names one edit apart (Damerau, adjacent transpositions) and alike by
    Jaro-Winkler: the blocking deletions find all of these."""
    if not len(left):
        return np.empty(0, bool)
    edits = process.cpdist(left, right, scorer=OSA.distance, dtype=np.int32, workers=-1)
    longest = np.fromiter((max(len(x), len(y)) for x, y in zip(left, right, strict=True)), np.int64, len(left))
    apart: Flags = (edits == 1) & (longest >= MIN_TYPO_LENGTH) & (_jw(left, right) >= JW_CLOSE)
    return apart


def _nickname_pair(left: Texts, right: Texts) -> Flags:
    return np.fromiter((x != y and bool(canonical_first_names(x) & canonical_first_names(y))
                        for x, y in zip(left, right, strict=True)), bool, len(left))


def _sound_alike(sounds: tuple[Ints, ...], a: Ints, b: Ints) -> Flags:
    """Both codes set and the names' sound-alike keys equal by one of the schemes."""
    ok = (a >= 0) & (b >= 0)
    result = np.zeros(len(a), bool)
    for sound in sounds:
        result[ok] |= (sound[a[ok]] == sound[b[ok]]) & (sound[a[ok]] >= 0)
    return result


def _both_sound_alike(sounds: tuple[Ints, ...], user_first: Ints, user_last: Ints,
                      contact_first: Ints, contact_last: Ints) -> Flags:
    """Both names set and sounding alike by one and the same scheme."""
    ok = (user_first >= 0) & (user_last >= 0) & (contact_first >= 0) & (contact_last >= 0)
    result = np.zeros(len(user_first), bool)
    uf, ul, cf, cl = user_first[ok], user_last[ok], contact_first[ok], contact_last[ok]
    for sound in sounds:
        result[ok] |= ((sound[uf] == sound[cf]) & (sound[uf] >= 0) & (sound[ul] == sound[cl]) & (sound[ul] >= 0))
    return result


def _initial_pair(left: Texts, right: Texts) -> Flags:
    """One first name is a single letter, the other starts with it."""
    return np.fromiter(((len(x) == 1 or len(y) == 1) and x[0] == y[0]
                        for x, y in zip(left, right, strict=True)), bool, len(left))


# ---------------------------------------------------------------------------------------------
# Output

def _order(data: _Prepared, scored: pd.DataFrame) -> pd.DataFrame:
    """Users in input order, then score descending, then contact id ascending."""
    contacts = scored["c"].to_numpy(np.int64)
    if data.contact_ids.is_monotonic_increasing:
        contact_rank = contacts
    else:
        contact_rank = np.argsort(np.argsort(data.contact_ids.to_numpy(), kind="stable"),
                                  kind="stable")[contacts]
    order = np.lexsort((contact_rank, -scored["score"].to_numpy(), scored["u"].to_numpy()))
    return scored.iloc[order].reset_index(drop=True)


def _best_per_user(data: _Prepared, scored: pd.DataFrame, limit: int) -> pd.DataFrame:
    ordered = _order(data, scored)
    return ordered[ordered.groupby("u").cumcount() < limit].reset_index(drop=True)


def _risk_frame(data: _Prepared, scored: pd.DataFrame) -> pd.DataFrame:
    users, contacts = scored["u"].to_numpy(np.int64), scored["c"].to_numpy(np.int64)
    score = scored["score"].to_numpy(np.float64)
    level = np.select([score >= HIGH_RISK, score >= MEDIUM_RISK], ["high", "medium"], "low")
    return pd.DataFrame({
        "user_id": data.user_ids.take(users).reset_index(drop=True),
        "contact_id": data.contact_ids.take(contacts).reset_index(drop=True),
        "score": score,
        "level": pd.array(level, dtype="str"),
        "reasons": pd.array(_reasons(data, scored), dtype="str"),
    }, columns=RISK_COLUMNS)


def _reasons(data: _Prepared, scored: pd.DataFrame) -> list[str]:
    users, contacts = scored["u"].to_numpy(np.int64), scored["c"].to_numpy(np.int64)
    (user_first, user_last), (contact_first, contact_last) = data.user_names, data.contact_names
    rows = zip(user_first[users], user_last[users], contact_first[contacts],
               contact_last[contacts], data.user_middle[users], data.contact_middle[contacts],
               scored["name_level"].to_numpy(),
               scored["email_kind"].to_numpy(object), scored["contact_address"].to_numpy(object),
               scored["email_detail"].to_numpy(object), scored["phone"].to_numpy(), strict=True)
    reasons = []
    for uf, ul, cf, cl, um, cm, name_level, email_kind, contact_address, detail, phone in rows:
        parts = [NAME_LEVELS[name_level].reason.format(p=_NamePair(uf, ul, cf, cl, um, cm))]
        if isinstance(email_kind, str):
            parts.append(_EMAIL_LEVELS[email_kind].reason.format(
                p=_EmailPair(contact_address, detail, f"{uf} {ul}".strip())))
        if phone == phone:  # not NaN
            parts.append(f"same phone number (ending {int(phone) % 10_000:04d})")
        reasons.append("; ".join(part for part in parts if part))
    return reasons


class _NamePair(NamedTuple):
    """The names a name reason speaks of (as given or derived)."""

    user_first: str
    user_last: str
    contact_first: str
    contact_last: str
    user_middle: str  # keys of the first middle names ('' when none)
    contact_middle: str

    @property
    def user(self) -> str:
        return f"{self.user_first} {self.user_last}".strip()

    @property
    def contact(self) -> str:
        return f"{self.contact_first} {self.contact_last}".strip()

    @property
    def user_middle_name(self) -> str:
        return self.user_middle.title()

    @property
    def contact_middle_name(self) -> str:
        return self.contact_middle.title()

    @property
    def contact_given(self) -> str:
        given = self.contact_first.split()[:1]
        return " ".join([*given, self.contact_last]).strip()

    @property
    def same_name(self) -> str:
        if person_key(self.user) == person_key(self.contact):
            return f"same name ({self.contact})"
        return f"same name, written differently ({self.user} vs {self.contact})"

    @property
    def user_first_or_unknown(self) -> str:
        return self.user_first or "?"

    @property
    def contact_first_or_unknown(self) -> str:
        return self.contact_first or "?"

    @property
    def looks_like(self) -> str:
        return _lookalike_reason("name", " ".join(self.user.split()), "contact name",
                                 " ".join(self.contact.split()))


class _EmailPair(NamedTuple):
    """What an email reason speaks of."""

    contact_address: str
    detail: str  # the user's address, the name pattern, or for a look-alike "UPN|email ADDRESS"
    user_name: str

    @property
    def local(self) -> str:
        return self.contact_address.partition("@")[0]

    @property
    def domain(self) -> str:
        return self.contact_address.partition("@")[2]

    @property
    def looks_like(self) -> str:
        role, _, address = self.detail.partition(" ")
        return _lookalike_reason(role, address, "contact email", self.contact_address)


def _lookalike_reason(user_label: str, user_text: str, contact_label: str,
                      contact_text: str) -> str:
    reason = f"{user_label} {user_text} looks like {contact_label} {contact_text}"
    characters = _lookalike_characters(user_text, contact_text)
    return f"{reason} (look-alike characters: {characters})" if characters else reason


def _lookalike_characters(text: str, other: str) -> str:
    """"'а' CYRILLIC SMALL LETTER A for 'a'" for each place where the texts differ, case
    ignored."""  # noqa: RUF002 - look-alike characters are the subject
    text, other = unicodedata.normalize("NFC", text), unicodedata.normalize("NFC", other)
    matcher = SequenceMatcher(None, [ch.casefold() for ch in text],
                              [ch.casefold() for ch in other], autojunk=False)
    pieces: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 - i1 == j2 - j1:  # character for character
            pieces += [(a, b) for a, b in zip(text[i1:i2], other[j1:j2], strict=True)
                       if a.casefold() != b.casefold()]
        else:
            pieces.append((text[i1:i2], other[j1:j2]))
    return ", ".join(f"{_named(a)} for {_named(b)}" for a, b in pieces)


def _named(chars: str) -> str:
    """The characters quoted, followed by the names of those that are not ASCII."""
    names = " + ".join(unicodedata.name(ch, f"U+{ord(ch):04X}") for ch in chars
                       if not ch.isascii())
    return f"'{chars}' {names}" if names else f"'{chars}'"
