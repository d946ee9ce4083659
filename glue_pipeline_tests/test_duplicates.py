"""Person-name normalisation and the duplicate risk of new users against existing contacts."""

from __future__ import annotations

import icu
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glue_pipeline.columns import RISK_COLUMNS
from glue_pipeline.matching.duplicates import (
    HIGH_RISK,
    MEDIUM_RISK,
    _skeleton,
    candidate_pairs,
    duplicate_risk,
    score_pairs,
)
from glue_pipeline.matching.names import (
    canonical_first_names,
    email_local_patterns,
    is_nickname_pair,
    nickname_relatives,
    person_key,
    phonetic_key,
    sound_keys,
    spelled_out_key,
    whole_name_in_local,
)

TENANT = ["contoso.com", "contoso.co.uk", "contoso.onmicrosoft.com"]


def _user(first: str | None, last: str | None, email: str = "someone@contoso.com", *,
          user_id: str = "u1", display: str | None = None, others: list[str] | None = None,
          phones: list[str] | None = None) -> dict:
    return {"user_id": user_id, "first_name": first, "last_name": last,
            "display_name": display if display is not None else f"{first or ''} {last or ''}",
            "email": email, "other_emails": others or [], "phones": phones or []}


def _contact(contact_id: int, first: str | None, last: str | None, emails: list[str] | None = None,
             phones: list[str] | None = None) -> dict:
    return {"contact_id": contact_id, "first_name": first, "last_name": last,
            "emails": emails or [], "phones": phones or []}


def _risk(users: list[dict], contacts: list[dict], **kwargs) -> pd.DataFrame:
    return duplicate_risk(pd.DataFrame(users), pd.DataFrame(contacts), TENANT, **kwargs)


def _one(user: dict, *contacts: dict) -> pd.Series | None:
    result = _risk([user], list(contacts))
    return result.iloc[0] if len(result) else None


# --- person names --------------------------------------------------------------------------

def test_person_key_folds_accents_punctuation_and_emoji() -> None:
    assert person_key("José-María") == "josemaria"
    assert person_key("O'Brien") == "obrien"
    assert person_key("Zoë 🚀") == "zoe"
    assert person_key("Łukasz") == "lukasz"
    assert person_key(None) == ""


def test_nicknames_are_groups_of_the_nickname_dataset() -> None:
    assert "robert" in canonical_first_names("Bob")
    assert "robert" in canonical_first_names("Robert")
    assert {"christopher", "christine"} <= canonical_first_names("Chris")
    assert canonical_first_names("Xavier") == {"xavier"}
    assert is_nickname_pair("Ted", "Edward") and is_nickname_pair("Ted", "Theodore")
    assert is_nickname_pair("Kate", "Katherine") and is_nickname_pair("Liz", "Elizabeth")
    assert not is_nickname_pair("Christine", "Christopher")
    assert not is_nickname_pair("John", "Jane")
    assert {"liz", "beth", "betty"} <= nickname_relatives("Elizabeth")
    assert "elizabeth" in nickname_relatives("Liz") and "tony" in nickname_relatives("Anthony")
    assert nickname_relatives("Zxq") == set()


@pytest.mark.parametrize(("local", "found"), [
    ("liz.jones", ("first.last", "liz")), ("lizjones", ("firstlast", "liz")),
    ("jones.liz", ("last.first", "liz")), ("liz_jones", ("first_last", "liz")),
    ("liz-jones", ("first-last", "liz")),
    ("ljones", None),  # an initial stands for too many names
    ("jones", None), ("liz.smith", None), ("l1z.jones", None)])
def test_a_whole_first_name_is_read_from_a_mailbox_with_the_last_name(local: str, found: tuple | None) -> None:
    assert whole_name_in_local(local, "Jones") == found


def test_spelled_out_keys_write_umlauts_out() -> None:
    assert spelled_out_key("Jürgen") == "juergen" and person_key("Jürgen") == "jurgen"
    assert spelled_out_key("Søren") == "soeren" and spelled_out_key("Weiß") == "weiss"
    assert spelled_out_key("Åberg") == "aaberg" and spelled_out_key("Smith") == "smith"


def test_sound_keys_hear_respellings_by_one_scheme_or_another() -> None:
    def alike(a: str, b: str) -> bool:
        return any(x == y != "" for x, y in zip(sound_keys(a), sound_keys(b), strict=True))

    for a, b in (("jon", "john"), ("geoffrey", "jeffrey"), ("smyth", "smith"), ("brian", "bryan"),
                 ("meier", "meyer"), ("teresa", "theresa"), ("fisher", "fischer")):
        assert alike(a, b), (a, b)
    assert not alike("smith", "jones")
    assert sound_keys("") == ("", "", "") and sound_keys("ромашка") == ("", "", "")


def test_email_local_patterns() -> None:
    assert email_local_patterns("John", "Smith") == {
        "john.smith", "johnsmith", "jsmith", "j.smith", "johns", "john", "smith", "smith.john",
        "john_smith", "john-smith", "smithj"}
    assert "mariaoconnor" in email_local_patterns("María", "O'Connor")
    assert email_local_patterns("", "Smith") == {"smith"}


def test_phonetic_key_hears_spelling_variants() -> None:
    assert phonetic_key("Smith") == phonetic_key("Smyth") == phonetic_key("Schmidt")
    assert phonetic_key("Catherine") == phonetic_key("Katherine")
    assert phonetic_key("Smith") != phonetic_key("Jones")


# --- evidence ------------------------------------------------------------------------------

def test_flast_mailbox_on_the_tenant_domain_and_same_name_is_high() -> None:
    row = _one(_user("John", "Smith", "john.smith@contoso.com"),
               _contact(10, "John", "Smith", ["jsmith@contoso.com"]))
    assert row["level"] == "high" and row["contact_id"] == 10
    assert "jsmith@contoso.com matches the flast pattern of John Smith" in row["reasons"]
    assert "same name (John Smith)" in row["reasons"]


def test_pattern_mailbox_alone_is_medium() -> None:
    row = _one(_user("John", "Smith", "john.smith@contoso.com"),
               _contact(10, None, None, ["jsmith@contoso.com"]))
    assert row["level"] == "medium"


def test_a_mailbox_the_contacts_own_name_explains_is_no_evidence() -> None:
    result = _risk([_user("Linda", "Thomas", "linda.thomas@contoso.com")],
                   [_contact(10, "Lance", "Thomas", ["lthomas@contoso.com"])])
    assert result.empty or ("pattern" not in result["reasons"][0]
                            and result["score"][0] < MEDIUM_RISK)


def test_same_name_alone_is_medium() -> None:
    row = _one(_user("John", "Smith"), _contact(10, "John", "Smith", ["js@elsewhere.org"]))
    assert row["level"] == "medium" and row["reasons"] == "same name (John Smith)"


def test_nickname_is_medium_or_high_with_its_reason() -> None:
    row = _one(_user("Bob", "Jones"), _contact(11, "Robert", "Jones"))
    assert row["level"] in ("medium", "high")
    assert "nickname: Bob vs Robert" in row["reasons"]


def test_swapped_names() -> None:
    row = _one(_user("Lee", "Anna"), _contact(12, "Anna", "Lee"))
    assert row["level"] == "medium" and "swapped" in row["reasons"]


def test_one_typo_in_either_name() -> None:
    for first, last in (("Jon", "Smith"), ("John", "Smtih"), ("Micheal", "Brown")):
        contact_first = "Michael" if first == "Micheal" else "John"
        contact_last = "Brown" if first == "Micheal" else "Smith"
        row = _one(_user(first, last), _contact(13, contact_first, contact_last))
        assert row is not None and row["level"] == "medium", (first, last)
        assert "similar names" in row["reasons"]


def test_same_mailbox_on_an_alias_domain_is_high() -> None:
    row = _one(_user("Anna", "Lee", "anna.lee@contoso.com"),
               _contact(14, None, None, ["Anna.Lee@Contoso.co.uk"]))
    assert row["level"] == "high"
    assert ("anna.lee@contoso.co.uk is anna.lee@contoso.com on an alias domain of the tenant"
            in row["reasons"])


def test_proxy_addresses_count() -> None:
    row = _one(_user("Anna", "Lee", "alee@contoso.onmicrosoft.com",
                     others=["SMTP:a.lee@contoso.com", "smtp:anna@contoso.co.uk", "X500:/o=x"]),
               _contact(14, None, None, ["a.lee@contoso.com"]))
    assert row["level"] == "high" and "same email address a.lee@contoso.com" in row["reasons"]


def test_same_phone_adds_to_the_name() -> None:
    user = _user("Dana", "Park", phones=["+44 20 7946 0018"])
    row = _one(user, _contact(15, "Dana", "Park", phones=["020 7946 0018"]))
    assert row["level"] == "high" and "same phone number (ending 0018)" in row["reasons"]
    phone_only = _one(user, _contact(15, "Someone", "Else", phones=["020-7946-0018"]))
    assert phone_only["level"] == "low"


def test_a_switchboard_number_is_no_evidence() -> None:
    switchboard = "+1 800 555 0100"
    contacts = [_contact(i, f"Person{i}", f"Other{i}", phones=[switchboard]) for i in range(1, 8)]
    assert _risk([_user("Dana", "Park", phones=[switchboard])], contacts).empty


def test_same_surname_different_first_name_is_low_or_absent() -> None:
    result = _risk([_user("John", "Smith", "john.smith@contoso.com")],
                   [_contact(16, "Jane", "Smith", ["jane.smith@fabrikam.com"]),
                    _contact(17, "Peter", "Smith")])
    assert (result["score"] < MEDIUM_RISK).all()


def test_missing_names_come_from_the_display_name_or_the_upn() -> None:
    contact = _contact(18, "John", "Smith")
    assert _one(_user(None, None, display="Smith, John"), contact)["level"] == "medium"
    assert _one(_user("", None, display="John Smith 🚀"), contact)["level"] == "medium"
    from_upn = _one(_user(None, None, "john.smith@contoso.com", display=""), contact)
    assert from_upn["level"] == "medium"


def test_accents_do_not_count() -> None:
    row = _one(_user("Zoë", "Müller"), _contact(19, "Zoe", "Muller"))
    assert row["reasons"] == "same name (Zoe Muller)"


def test_non_latin_names() -> None:
    row = _one(_user("小龙", "李"), _contact(20, "小龙", "李"))
    assert row["level"] == "medium"


# --- look-alikes (Unicode TS #39 skeletons) -----------------------------------------------

CYRILLIC_A = "\u0430"  # а
CYRILLIC_CAPITAL_A = "\u0410"  # А


def test_a_cyrillic_a_in_the_upn_looks_like_the_contacts_email() -> None:
    upn = f"j{CYRILLIC_A}ne.doe@contoso.com"
    contact = _contact(30, "Someone", "Else", ["jane.doe@contoso.com"])
    row = _one(_user("Jane", "Doe", upn), contact)
    assert row["level"] == "high" and row["score"] >= HIGH_RISK
    assert (f"UPN {upn} looks like contact email jane.doe@contoso.com (look-alike characters: "
            f"'{CYRILLIC_A}' CYRILLIC SMALL LETTER A for 'a')") in row["reasons"]
    assert _one(_user("Jane", "Doe", "jone.doe@contoso.com"), contact) is None  # no look-alike


def test_a_look_alike_in_the_contacts_email_is_named_too() -> None:
    row = _one(_user("Jane", "Doe", "jane.doe@contoso.com"),
               _contact(30, None, None, [f"j{CYRILLIC_A}ne.doe@contoso.com"]))
    assert row["level"] == "high"
    assert f"(look-alike characters: 'a' for '{CYRILLIC_A}' CYRILLIC SMALL LETTER A)" in (
        row["reasons"])


@pytest.mark.parametrize(("user", "contact", "named"), [
    (("J\u03bfhn", "Smith"), ("John", "Smith"), "'\u03bf' GREEK SMALL LETTER OMICRON for 'o'"),
    (("Anna", "K\u0435ller"), ("Anna", "Keller"), "'\u0435' CYRILLIC SMALL LETTER IE for 'e'"),
    (("J\u043en", "Sm\u0456th"), ("Jon", "Smith"),
     "'\u043e' CYRILLIC SMALL LETTER O for 'o', "
     "'\u0456' CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I for 'i'"),
    (("Z\u043e\u00eb", "M\u00fcller"), ("Zo\u00eb", "M\u00fcller"),  # both not ASCII
     "'\u043e' CYRILLIC SMALL LETTER O for 'o'"),
])
def test_a_name_in_look_alike_letters_is_high(user: tuple[str, str], contact: tuple[str, str],
                                              named: str) -> None:
    row = _one(_user(*user), _contact(31, *contact, ["x@fabrikam.com"]))
    assert row["level"] == "high", row["reasons"]
    assert row["reasons"] == (f"name {' '.join(user)} looks like contact name "
                              f"{' '.join(contact)} (look-alike characters: {named})")


def test_look_alikes_ignore_case() -> None:
    upn = f"J{CYRILLIC_CAPITAL_A}NE.Doe@Contoso.com"
    row = _one(_user(None, None, upn, display=""),
               _contact(32, None, None, ["Jane.Doe@contoso.com"]))
    assert row["level"] == "high"
    assert (f"UPN j{CYRILLIC_A}ne.doe@contoso.com looks like contact email jane.doe@contoso.com "
            f"(look-alike characters: '{CYRILLIC_A}' CYRILLIC SMALL LETTER A for 'a')"
            in row["reasons"])
    name = _one(_user("J\u041eHN", "SMITH"), _contact(33, "john", "smith"))
    assert name["level"] == "high"
    assert "'\u041e' CYRILLIC CAPITAL LETTER O for 'o'" in name["reasons"]
    # The same name in another case is the same name, not a look-alike.
    same = _one(_user("\u00c9LISE", "DUPONT"), _contact(34, "\u00e9lise", "Dupont"))
    assert same["level"] == "medium" and "looks like" not in same["reasons"]


def test_a_look_alike_smtp_proxy_address_counts() -> None:
    proxy = f"smtp:j{CYRILLIC_A}ne.doe@contoso.co.uk"
    row = _one(_user("A", "B", "ab@contoso.com", others=["SIP:x@contoso.com", proxy]),
               _contact(35, None, None, ["jane.doe@contoso.co.uk"]))
    assert row["level"] == "high"
    assert (f"email j{CYRILLIC_A}ne.doe@contoso.co.uk looks like contact email "
            "jane.doe@contoso.co.uk") in row["reasons"]


def test_pure_ascii_pairs_are_left_to_the_name_rules() -> None:
    checker = icu.SpoofChecker()
    assert checker.getSkeleton(0, "kirn lee") == checker.getSkeleton(0, "kim lee")
    assert checker.getSkeleton(0, "rnarc@fabrikam.com") == checker.getSkeleton(
        0, "marc@fabrikam.com")
    for user, contact in ((_user("Kirn", "Lee"), _contact(36, "Kim", "Lee")),
                          (_user("Clara", "Lee"), _contact(37, "Dara", "Lee"))):
        row = _one(user, contact)  # at most the name rules' same last name
        assert row is None or (row["score"] < MEDIUM_RISK and "looks like" not in row["reasons"])
    assert _one(_user("Ann", "Ray", "rnarc@fabrikam.com"),
                _contact(38, "Bo", "Wu", ["marc@fabrikam.com"])) is None


def test_the_same_address_stays_the_same_address() -> None:
    contact = _contact(39, None, None, ["jane.doe@contoso.com"])
    same = _one(_user("Jane", "Doe", "Jane.Doe@contoso.com",
                      others=[f"smtp:j{CYRILLIC_A}ne.doe@contoso.com"]), contact)
    assert same["score"] == 90 and same["reasons"] == "same email address jane.doe@contoso.com"
    accented = _one(_user("Zoe", "Muller", "zo\u00eb@contoso.com"),
                    _contact(40, None, None, ["zo\u00eb@contoso.com"]))
    assert accented["reasons"] == "same email address zo\u00eb@contoso.com"


def test_ascii_skeletons_are_icus() -> None:
    checker = icu.SpoofChecker()

    @settings(max_examples=300, deadline=None)
    @given(st.text(st.characters(max_codepoint=127), max_size=12))
    def check(text: str) -> None:
        assert _skeleton(text) == checker.getSkeleton(0, text.lower())

    check()
    assert _skeleton("Rn%|0m") == checker.getSkeleton(0, "rn%|0m")  # % has a non-ASCII one


def test_blocking_finds_look_alike_pairs() -> None:
    users = pd.DataFrame([
        _user("Jane", "Doe", f"j{CYRILLIC_A}ne.doe@contoso.com", user_id="cyrillic-upn"),
        _user("J\u03bfhn", "Smith", "js@contoso.com", user_id="greek-name"),
        _user("Ann", "Ray", "ann@contoso.com", others=[f"smtp:m{CYRILLIC_A}ry@contoso.co.uk"],
              user_id="proxy"),
        _user("Kirn", "Lee", "kirn@contoso.com", user_id="ascii")])
    contacts = pd.DataFrame([
        _contact(1, "Someone", "Else", ["jane.doe@contoso.com"]),
        _contact(2, "John", "Smith", ["john@fabrikam.com"]),
        _contact(3, "Mary", "Jones", ["mary@contoso.co.uk"]),
        _contact(4, "Kim", "Lee", ["kim@contoso.com"]),
        *(_contact(i, f"Person{i}", "Other", [f"p{i}@fabrikam.com"]) for i in range(5, 30))])
    found = _agrees_with_all_pairs(users, contacts, HIGH_RISK)
    key = ["user_id", "contact_id"]
    assert set(zip(found["user_id"], found["contact_id"])) == {
        ("cyrillic-upn", 1), ("greek-name", 2), ("proxy", 3)}
    assert found["reasons"].str.contains("looks like").all()
    blocked = set(zip(*candidate_pairs(users, contacts, TENANT)[key].T.to_numpy()))
    assert {("cyrillic-upn", 1), ("greek-name", 2), ("proxy", 3)} <= blocked
    assert len(blocked) < len(users) * len(contacts) // 10


# --- shape ---------------------------------------------------------------------------------

def test_at_most_max_candidates_per_user_sorted() -> None:
    users = [_user("John", "Smith", "john.smith@contoso.com", user_id="b"),
             _user("Ann", "Lee", user_id="a")]
    contacts = [_contact(i, "John", "Smith") for i in (5, 3, 9, 7)]
    contacts.append(_contact(1, "John", "Smith", ["john.smith@contoso.co.uk"]))
    contacts.append(_contact(2, "Ann", "Lee"))
    result = _risk(users, contacts, max_candidates=3)
    assert list(result.columns) == RISK_COLUMNS
    assert result["user_id"].tolist() == ["b", "b", "b", "a"]  # input order
    assert result["contact_id"].tolist() == [1, 3, 5, 2]  # score, then contact id
    assert result["score"].tolist() == [100.0, 70.0, 70.0, 70.0]


def test_empty_frames_have_columns_and_dtypes() -> None:
    users = pd.DataFrame({c: pd.Series([], dtype=object) for c in
                          ["user_id", "first_name", "last_name", "display_name", "email",
                           "other_emails", "phones"]})
    contacts = pd.DataFrame({"contact_id": pd.Series([], dtype="int64"),
                             **{c: pd.Series([], dtype=object) for c in
                                ["first_name", "last_name", "emails", "phones"]}})
    for result in (duplicate_risk(users, contacts, TENANT),
                   duplicate_risk(pd.DataFrame([_user("John", "Smith")]), contacts, TENANT),
                   duplicate_risk(users, pd.DataFrame([_contact(1, "John", "Smith")]), TENANT)):
        assert list(result.columns) == RISK_COLUMNS and result.empty
        assert result["score"].dtype == "float64"
        assert result["contact_id"].dtype == "int64"


def test_levels_follow_the_score() -> None:
    result = _risk([_user("John", "Smith", "john.smith@contoso.com", phones=["0123456789"])],
                   [_contact(1, "John", "Smith", ["jsmith@contoso.com"]),
                    _contact(2, "Jon", "Smith"), _contact(3, None, None, phones=["0123456789"])])
    for score, level in zip(result["score"], result["level"]):
        assert level == ("high" if score >= HIGH_RISK else "medium" if score >= MEDIUM_RISK
                         else "low")
    assert set(result["level"]) == {"high", "medium", "low"}


# --- blocking against all pairs ------------------------------------------------------------

FIRST = ["John", "Jon", "Robert", "Bob", "Katherine", "Catherine", "Kate", "Michael", "Mike",
         "Anna", "Lee", "Zoë", "Zoe", "Dana", "Peter", "J\u043ehn", "\u0410nna",  # Cyrillic о, А
         "Geoffrey", "Jeffrey", "Elizabeth", "Liz", "John A.", "John B.", "Søren", "Soeren"]
LAST = ["Smith", "Smyth", "Smiht", "Jones", "Lee", "Anna", "Müller", "Muller", "Mueller", "Park",
        "Brown", "Browne", "Schmidt", "Johnson", "Sm\u0456th", "Meier", "Meyer", "Weiß", "Weiss"]  # Cyrillic і
LOCALS = ["jsmith", "john.smith", "rjones", "bob", "anna.lee", "lee", "kate", "dpark", "x1",
          "j\u043ehn.smith", "\u0430nna.lee", "liz.jones", "elizabeth.smith", "jeffrey.meyer",
          "soeren.weiss", "jmueller", "jsmith4"]
DOMAINS = ["contoso.com", "contoso.co.uk", "fabrikam.com", "gmail.com"]
PHONES = ["0123456789", "0987654321", "555 0100"]

emails = st.lists(st.builds("{}@{}".format, st.sampled_from(LOCALS), st.sampled_from(DOMAINS)),
                  max_size=2)
people = st.tuples(st.sampled_from([*FIRST, None]), st.sampled_from(LAST), emails,
                   st.lists(st.sampled_from(PHONES), max_size=1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(people, min_size=1, max_size=8), st.lists(people, min_size=1, max_size=25))
def test_blocking_finds_every_pair_that_all_pairs_scoring_rates_medium_or_high(
        user_rows: list, contact_rows: list) -> None:
    users = pd.DataFrame([_user(first, last, (mail or ["nobody@contoso.com"])[0],
                                user_id=f"u{i}", others=mail[1:], phones=phones)
                          for i, (first, last, mail, phones) in enumerate(user_rows)])
    contacts = pd.DataFrame([_contact(i, first, last, mail, phones)
                             for i, (first, last, mail, phones) in enumerate(contact_rows)])
    reference = _agrees_with_all_pairs(users, contacts, MEDIUM_RISK)
    key = ["user_id", "contact_id"]
    blocked = set(zip(*candidate_pairs(users, contacts, TENANT)[key].T.to_numpy()))
    assert set(zip(reference["user_id"], reference["contact_id"])) <= blocked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)),
                          st.lists(st.text(max_size=40), max_size=2)), min_size=1, max_size=6),
       st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)),
                          st.lists(st.text(max_size=40), max_size=2)), min_size=1, max_size=6))
def test_hostile_names_and_addresses_never_fail_and_score_within_bounds(user_rows: list, contact_rows: list) -> None:
    users = pd.DataFrame([_user(first, last, (mail or [""])[0], user_id=f"u{i}", others=mail[1:],
                                display=f"{first} X {last}")
                          for i, (first, last, mail) in enumerate(user_rows)])
    contacts = pd.DataFrame([_contact(i, first, last, mail) for i, (first, last, mail) in enumerate(contact_rows)])
    result = duplicate_risk(users, contacts, TENANT, max_candidates=len(contacts), min_score=0)
    assert result["score"].between(0, 100).all()
    assert set(result["level"]) <= {"high", "medium", "low"}
    assert all(isinstance(reason, str) for reason in result["reasons"])


def _agrees_with_all_pairs(users: pd.DataFrame, contacts: pd.DataFrame, min_score: float) -> pd.DataFrame:
    """duplicate_risk's rows at or above min_score, asserted equal to scoring all pairs."""
    all_pairs = pd.MultiIndex.from_product([users["user_id"], contacts["contact_id"]],
                                           names=["user_id", "contact_id"]).to_frame(index=False)
    reference = score_pairs(users, contacts, TENANT, all_pairs, min_score=min_score)
    found = duplicate_risk(users, contacts, TENANT, max_candidates=len(contacts), min_score=min_score)
    key = ["user_id", "contact_id"]
    pd.testing.assert_frame_equal(found.sort_values(key).reset_index(drop=True),
                                  reference.sort_values(key).reset_index(drop=True))
    return found


# --- both names respelled, nicknames in mailboxes, spellings, middle names, tenant domains ----

def test_both_names_respelled_are_a_candidate_and_medium() -> None:
    user = _user("Jon", "Smyth", "jon.smyth@contoso.com")
    contact = _contact(30, "John", "Smith", ["john.smith@contoso.com"])
    assert candidate_pairs(pd.DataFrame([user]), pd.DataFrame([contact]), TENANT).shape[0] == 1
    row = _one(user, contact)
    assert row is not None and row["level"] == "medium"
    assert row["reasons"] == "both names spelt differently (Jon Smyth vs John Smith)"
    geoffrey = _one(_user("Geoffrey", "Meier", "gm@contoso.com"), _contact(31, "Jeffrey", "Meyer"))
    assert geoffrey is not None and geoffrey["level"] == "medium"


def test_both_names_respelled_are_high_with_a_phone_or_a_pattern_of_the_users_name() -> None:
    by_phone = _one(_user("Jon", "Smyth", "jon.smyth@contoso.com", phones=["+44 7700 900123"]),
                    _contact(30, "John", "Smith", ["john.smith@contoso.com"], ["07700 900123"]))
    assert by_phone is not None and by_phone["level"] == "high"
    assert "same phone number (ending 0123)" in by_phone["reasons"]
    by_pattern = _one(_user("John", "Smith", "john.smith@contoso.com"),
                      _contact(30, "Jon", "Smyth", ["jsmith@contoso.co.uk"]))
    assert by_pattern is not None and by_pattern["level"] == "high"
    assert "jsmith@contoso.co.uk matches the flast pattern of John Smith" in by_pattern["reasons"]


def test_names_that_only_sound_alike_are_not_respelled() -> None:
    # "John" and "Jane" share sound keys but are not alike; "Smith"/"Smyth" alone is not enough.
    row = _one(_user("John", "Smith", "john.smith@contoso.com"), _contact(30, "Jane", "Smyth"))
    assert row is None or row["score"] < MEDIUM_RISK


@pytest.mark.parametrize(("user", "contact", "reason"), [
    # The user goes by the nickname; the contact's mailbox is the formal name's.
    (_user("Liz", "Jones", "liz.jones@contoso.com"),
     _contact(40, "Elizabeth", "Jones", ["elizabeth.jones@contoso.com"]),
     "elizabeth.jones@contoso.com fits Liz Jones by the nickname elizabeth (first.last)"),
    # The user is formal; the contact's mailbox is the nickname's.
    (_user("Elizabeth", "Jones", "ejones@contoso.co.uk"), _contact(40, "Elizabeth", "Jones", ["liz.jones@contoso.com"]),
     "liz.jones@contoso.com fits Elizabeth Jones by the nickname liz (first.last)"),
    # The user's own mailbox fits the contact's name (documented under the nickname).
    (_user("Anthony", "Ross", "tony.ross@contoso.com"), _contact(40, "Tony", "Ross"),
     "the user's mailbox tony.ross@contoso.com fits the contact's name Tony Ross by the name tony (first.last)"),
])
def test_nickname_mailboxes_are_high_in_both_directions(user: dict, contact: dict, reason: str) -> None:
    row = _one(user, contact)
    assert row is not None and row["level"] == "high" and row["contact_id"] == 40
    assert reason in row["reasons"]


def test_a_nickname_mailbox_elsewhere_or_of_another_last_name_is_no_evidence() -> None:
    elsewhere = _one(_user("Liz", "Jones", "liz.jones@contoso.com"),
                     _contact(40, "Elizabeth", "Jones", ["elizabeth.jones@fabrikam.com"]))
    assert elsewhere is not None and elsewhere["level"] == "medium" and "fits" not in elsewhere["reasons"]
    other_last = _risk([_user("Liz", "Jones", "liz.jones@contoso.com")],
                       [_contact(41, "Elizabeth", "Brown", ["elizabeth.jones@contoso.com"])])
    assert other_last.empty or "nickname" not in other_last["reasons"][0]


def test_same_name_with_an_address_on_a_tenant_domain_is_high() -> None:
    john = _user("John", "Smith", "john.smith@contoso.com")
    row = _one(john, _contact(50, "John", "Smith", ["jsmith4@contoso.co.uk"]))
    assert row is not None and row["level"] == "high" and row["score"] == 85
    assert row["reasons"] == ("same name (John Smith); the contact's address jsmith4@contoso.co.uk is on a "
                              "tenant domain")
    elsewhere = _one(john, _contact(50, "John", "Smith", ["js@fabrikam.com"]))
    assert elsewhere is not None and elsewhere["level"] == "medium"
    similar = _one(_user("Jon", "Smith", "jon.smith@contoso.com"), _contact(50, "John", "Smith", ["js4@contoso.com"]))
    assert similar is not None and similar["level"] == "medium", "the domain counts with the same name only"


def test_umlauts_written_out_are_the_same_name_and_give_the_same_mailboxes() -> None:
    medium = _one(_user("Jürgen", "Müller", "jm@contoso.com"), _contact(60, "Juergen", "Mueller"))
    assert medium is not None and medium["level"] == "medium"
    assert medium["reasons"] == "same name, written differently (Jürgen Müller vs Juergen Mueller)"
    high = _one(_user("Søren", "Weiß", "sw@contoso.com"), _contact(60, "Soeren", "Weiss", ["sweiss@contoso.com"]))
    assert high is not None and high["level"] == "high"
    assert "sweiss@contoso.com matches the flast pattern of Søren Weiß" in high["reasons"]


def test_different_middle_names_are_different_people() -> None:
    rows = _risk([_user("John", "Smith", "john.smith@contoso.com", display="John A. Smith")],
                 [_contact(70, "John B.", "Smith", ["jsmith@contoso.com"])], min_score=0)
    assert rows["score"].tolist() == [30.0], "and jsmith@ fits both: no evidence"
    assert rows["reasons"][0] == "same first and last name (John Smith) but different middle names (A vs B)"
    initial = _one(_user("John", "Smith", "john.smith@contoso.com", display="John A. Smith"),
                   _contact(70, "John Andrew", "Smith"))
    assert initial is not None and initial["level"] == "medium", "an initial agrees with its name"
