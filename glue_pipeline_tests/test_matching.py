"""The matching rules as pure functions over DataFrames."""

from __future__ import annotations

import pandas as pd

from glue_pipeline.matching.contacts import match_contacts, skip_reason
from glue_pipeline.matching.organizations import match_organization, normalize_name
from glue_pipeline.options import UserSelection

ORGS = pd.DataFrame({"id": [1, 2, 3, 4], "name": ["Contoso Ltd", "  fabrikam   INC ", "Twin", "twin"]})
LICENSED = ["sku-1"]


def _users(*rows: dict) -> pd.DataFrame:
    base = {"display_name": "x", "user_type": "Member", "sku_ids": LICENSED}
    return pd.DataFrame([{**base, **r} for r in rows])


def _no_links() -> pd.DataFrame:
    return pd.DataFrame(columns=["contact_id", "user_id", "in_organization"])


def test_normalize_ignores_case_and_spaces() -> None:
    assert normalize_name("  Fabrikam   Inc ") == normalize_name("fabrikam inc")
    assert normalize_name("Contoso Ltd") != normalize_name("Contoso Limited")


def test_exact_match_ignores_case_and_spacing() -> None:
    match = match_organization("t1", "Fabrikam Inc", ORGS, None)
    assert (match.status, match.organization_id, match.method) == ("matched", 2, "exact")


def test_two_organizations_with_the_name_are_not_guessed() -> None:
    match = match_organization("t1", "TWIN", ORGS, None)
    assert match.status == "unmatched" and match.organization_id is None
    assert "2 organizations" in match.reason


def test_no_match_says_why() -> None:
    match = match_organization("t1", "Northwind", ORGS, None)
    assert match.status == "unmatched" and "no organization is named 'Northwind'" in match.reason


def test_recorded_match_is_kept_by_tenant_id_after_a_rename() -> None:
    recorded = {"status": "matched", "organization_id": 1, "method": "exact"}
    match = match_organization("t1", "Contoso Group (renamed)", ORGS, recorded)
    assert (match.status, match.organization_id) == ("matched", 1)


def test_ignored_tenant_stays_ignored() -> None:
    match = match_organization("t1", "Contoso Ltd", ORGS, {"status": "ignored", "organization_id": None})
    assert match.status == "ignored" and match.organization_id is None


def test_recorded_match_to_a_deleted_organization_falls_back_to_the_rule() -> None:
    recorded = {"status": "matched", "organization_id": 99, "method": "manual"}
    match = match_organization("t1", "Contoso Ltd", ORGS, recorded)
    assert (match.organization_id, match.method) == (1, "exact")


def test_contacts_match_on_upn_case_insensitively_and_create_the_rest() -> None:
    users = _users({"id": "u1", "user_principal_name": "Ann.Lee@Contoso.com"},
                   {"id": "u2", "user_principal_name": "bob@contoso.com"})
    emails = pd.DataFrame({"contact_id": [10], "value": ["ann.lee@contoso.COM"]})
    table = match_contacts(users, emails, _no_links()).set_index("user_id")
    assert table.loc["u1", "action"] == "match" and table.loc["u1", "contact_id"] == 10
    assert table.loc["u1", "matched_on"] == "upn"
    assert table.loc["u2", "action"] == "create" and pd.isna(table.loc["u2", "contact_id"])


def test_linked_user_id_wins_over_email() -> None:
    users = _users({"id": "u1", "user_principal_name": "renamed@contoso.com"})
    emails = pd.DataFrame({"contact_id": [10, 11], "value": ["old@contoso.com", "renamed@contoso.com"]})
    linked = pd.DataFrame({"contact_id": [10], "user_id": ["u1"], "in_organization": [True]})
    row = match_contacts(users, emails, linked).iloc[0]
    assert (row["action"], row["contact_id"], row["matched_on"]) == ("match", 10, "user_id")


def test_one_user_on_two_contacts_is_ambiguous() -> None:
    users = _users({"id": "u1", "user_principal_name": "ann@contoso.com"})
    emails = pd.DataFrame({"contact_id": [10, 11], "value": ["ann@contoso.com", "ANN@contoso.com"]})
    row = match_contacts(users, emails, _no_links()).iloc[0]
    assert row["action"] == "ambiguous" and pd.isna(row["contact_id"])


def test_two_users_on_one_contact_are_both_ambiguous() -> None:
    users = _users({"id": "u1", "user_principal_name": "ann@contoso.com"},
                   {"id": "u2", "user_principal_name": "ann.lee@contoso.com"})
    emails = pd.DataFrame({"contact_id": [10, 10], "value": ["ann@contoso.com", "ann.lee@contoso.com"]})
    table = match_contacts(users, emails, _no_links())
    assert list(table["action"]) == ["ambiguous", "ambiguous"]


def _skips(users: pd.DataFrame, selection: UserSelection, shared: set[str] = frozenset()) -> pd.Series:
    parts = {"sku-1": "SPB", "sku-2": "FLOW_FREE"}
    return pd.Series([skip_reason(u, selection, parts, set(shared)) for u in users.to_dict("records")],
                     dtype=object)


def test_guests_and_unlicensed_users_are_skipped_with_a_reason() -> None:
    users = _users({"id": "g", "user_principal_name": "jo_gmail.com#EXT#@contoso.onmicrosoft.com",
                    "user_type": "Guest", "sku_ids": []},
                   {"id": "n", "user_principal_name": "nolicense@contoso.com", "sku_ids": []})
    table = match_contacts(users, pd.DataFrame(columns=["contact_id", "value"]), _no_links(),
                           _skips(users, UserSelection()))
    assert list(table["action"]) == ["skipped", "skipped"]
    assert list(table["reason"]) == ["guest account", "no license assigned"]


def test_selection_switches_and_subscriptions() -> None:
    users = _users({"id": "g", "user_principal_name": "jo#EXT#@x.onmicrosoft.com", "user_type": "Guest"},
                   {"id": "d", "user_principal_name": "off@x.com", "account_enabled": False},
                   {"id": "f", "user_principal_name": "free@x.com",
                    "sku_ids": ["sku-2"]},
                   {"id": "s", "user_principal_name": "info@x.com"})
    default = _skips(users, UserSelection(), shared={"info@x.com"})
    assert list(default) == ["guest account", None, None, "shared or resource mailbox"]
    strict = _skips(users, UserSelection(include_guests=True, include_disabled=False, subscriptions=["SPB"],
                                         include_shared_mailboxes=True), shared={"info@x.com"})
    assert strict[0] is None and strict[1] == "account disabled" and strict[3] is None
    assert strict[2] == "none of the selected subscriptions (SPB)"


def test_mail_and_proxy_addresses_match_in_order() -> None:
    users = _users({"id": "u1", "user_principal_name": "u1@contoso.onmicrosoft.com", "mail": "Ann@Contoso.com"},
                   {"id": "u2", "user_principal_name": "u2@contoso.onmicrosoft.com", "mail": None,
                    "proxy_addresses": ["SMTP:u2@contoso.onmicrosoft.com", "smtp:bob@contoso.co.uk"]})
    emails = pd.DataFrame({"contact_id": [10, 11], "value": ["ann@contoso.com", "BOB@contoso.co.uk"]})
    table = match_contacts(users, emails, _no_links()).set_index("user_id")
    assert (table.loc["u1", "contact_id"], table.loc["u1", "matched_on"]) == (10, "mail")
    assert (table.loc["u2", "contact_id"], table.loc["u2", "matched_on"]) == (11, "proxy")


def test_link_decision_wins_and_create_decision_is_kept() -> None:
    users = _users({"id": "u1", "user_principal_name": "ann@contoso.com"},
                   {"id": "u2", "user_principal_name": "new@contoso.com"})
    emails = pd.DataFrame({"contact_id": [10, 12], "value": ["ann@contoso.com", None]})
    decisions = pd.DataFrame({"user_id": ["u1", "u2"], "action": ["link", "create"], "contact_id": [12, None]})
    table = match_contacts(users, emails, _no_links(), decisions=decisions).set_index("user_id")
    assert (table.loc["u1", "action"], table.loc["u1", "contact_id"]) == ("match", 12)
    assert (table.loc["u2", "action"], table.loc["u2", "matched_on"]) == ("create", "decision")


def test_link_decision_to_a_contact_outside_the_organization_is_held() -> None:
    users = _users({"id": "u1", "user_principal_name": "ann@contoso.com"})
    decisions = pd.DataFrame({"user_id": ["u1"], "action": ["link"], "contact_id": [99]})
    row = match_contacts(users, pd.DataFrame({"contact_id": [10], "value": ["x@y.z"]}), _no_links(),
                         decisions=decisions).iloc[0]
    assert row["action"] == "held" and "not in the tenant's organization" in row["reason"]


def test_link_to_a_contact_in_another_organization_is_held() -> None:
    users = _users({"id": "u1", "user_principal_name": "ann@contoso.com"})
    linked = pd.DataFrame({"contact_id": [10], "user_id": ["u1"], "in_organization": [False]})
    row = match_contacts(users, pd.DataFrame(columns=["contact_id", "value"]), linked).iloc[0]
    assert row["action"] == "held" and "another organization" in row["reason"]
