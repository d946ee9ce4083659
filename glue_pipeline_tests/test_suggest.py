"""Company-name normalisation and organization suggestions."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glue_pipeline.columns import SUGGESTION_COLUMNS
from glue_pipeline.matching.names import company_key, core_without_generic
from glue_pipeline.matching.suggest import (
    strong_suggestion_threshold,
    suggest_organizations,
    weigh_organizations,
)


def _tenants(*rows: tuple[str, str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["tenant_id", "tenant_name", "domains"])


def _orgs(*names: str, ids: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"id": ids or list(range(1, len(names) + 1)), "name": list(names)})


NO_DOMAINS = pd.DataFrame({"organization_id": pd.Series([], dtype="int64"),
                           "domain": pd.Series([], dtype="str")})


def _suggest(tenant_name: str, *org_names: str, **kwargs) -> pd.DataFrame:
    return suggest_organizations(_tenants(("t", tenant_name, [])), _orgs(*org_names), NO_DOMAINS,
                                 **kwargs)


# --- company_key ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "core", "form"), [
    ("Contoso Ltd", "contoso", "ltd"),
    ("Contoso Limited", "contoso", "ltd"),
    ("CONTOSO LTD.", "contoso", "ltd"),
    ("Contoso (UK) Ltd", "contoso uk", "ltd"),
    ("Société Générale S.A.", "societe generale", "sa"),
    ("Societe Generale", "societe generale", None),
    ("Contoso Pty. Ltd.", "contoso", "pty ltd"),
    ("Contoso Co., Ltd.", "contoso", "co ltd"),
    ("Müller GmbH & Co. KG", "muller", "gmbh co kg"),
    ("Contoso S. à r.l.", "contoso", "sarl"),
    ("Fabrikam, Inc.", "fabrikam", "inc"),
    ("Fabrikam Incorporated", "fabrikam", "inc"),
    ("Ørsted A/S", "orsted", "as"),
    ("A.B.C. Ltd", "abc", "ltd"),
    ("McDonald's Corporation", "mcdonalds", "corp"),
    ("Smith & Co", "smith", "co"),
    ("Limited", "limited", None),  # never strips the whole name
    ("", "", None),
])
def test_company_key(name: str, core: str, form: str | None) -> None:
    assert company_key(name) == (core, form)


def test_ampersand_and_legal_suffix_do_not_count() -> None:
    assert company_key("Smith & Sons")[0] == "smith and sons"
    assert company_key("Smith and Sons Ltd")[0] == "smith and sons"
    assert company_key("Contoso+Partners")[0] == "contoso and partners"


def test_generic_words_are_set_aside() -> None:
    assert core_without_generic("the contoso group holdings") == "contoso"
    assert core_without_generic("global services") == "global services"  # nothing else left


# --- name evidence -------------------------------------------------------------------------

def test_same_core_name_is_a_full_match() -> None:
    result = _suggest("Contoso Ltd", "Contoso Limited")
    assert result["score"].tolist() == [100.0]
    assert "same name after normalisation" in result["reasons"][0]


def test_accents_and_legal_form_missing_on_one_side() -> None:
    result = _suggest("Societe Generale", "Société Générale S.A.")
    assert result["score"].tolist() == [100.0]


def test_different_legal_forms_lower_the_score_and_say_so() -> None:
    result = _suggest("Fabrikam Inc", "Fabrikam GmbH")
    assert result["score"].tolist() == [90.0]
    assert "legal forms differ (inc vs gmbh)" in result["reasons"][0]
    assert result["score"][0] >= strong_suggestion_threshold


def test_compatible_legal_forms_are_not_a_difference() -> None:
    assert _suggest("Contoso Ltd", "Contoso Pty Ltd")["score"].tolist() == [100.0]


def test_a_typo_is_a_strong_suggestion() -> None:
    result = _suggest("Tailspin Toyz Ltd", "Tailspin Toys Limited", "Northwind Traders")
    assert result["organization_id"].tolist() == [1]
    assert result["score"][0] >= strong_suggestion_threshold
    assert "similar name" in result["reasons"][0]


def test_word_order_does_not_count() -> None:
    assert _suggest("Generale Societe", "Societe Generale")["score"].tolist() == [100.0]


def test_a_replaced_generic_word_counts_once_and_two_added_fall_below_strong() -> None:
    replaced = _suggest("Contoso Group", "Contoso Services")
    assert replaced["score"].tolist() == [94.0]
    assert "same name apart from generic words ('contoso group' vs 'contoso services')" in replaced["reasons"][0]
    added = _suggest("Contoso", "Contoso Group Services")
    assert len(added) == 1 and added["score"][0] < strong_suggestion_threshold


def test_abbreviated_words_read_as_the_word() -> None:
    for tenant, organization in (("Contoso Intl", "Contoso International"),
                                 ("Contoso Int'l Tech", "Contoso International Technologies"),
                                 ("Contoso Mfg", "Contoso Manufacturing")):
        result = _suggest(tenant, organization)
        assert result["score"].tolist() == [100.0], (tenant, result["reasons"].tolist())
        assert "same name after normalisation" in result["reasons"][0]


def test_a_lookalike_letter_in_a_tenant_name_reads_as_the_latin_letter() -> None:
    result = _suggest("Kono Textiles In\u0441", "Kono Textiles Inc")  # a Cyrillic es for the c
    assert result["score"].tolist() == [100.0]


def test_subset_name_is_not_strong() -> None:
    # token_set_ratio would give 100 here.
    result = _suggest("Contoso", "Contoso Pharmaceuticals Ltd")
    assert (result["score"] < strong_suggestion_threshold).all()


def test_shared_legal_suffix_alone_is_not_a_match() -> None:
    # WRatio gives 85.5 to this pair.
    assert _suggest("Acme Ltd", "Northwind Ltd").empty


def test_short_names_must_be_equal() -> None:
    assert _suggest("ABC Ltd", "ABD Ltd").empty
    assert _suggest("ABC Ltd", "A.B.C. Limited")["score"].tolist() == [100.0]


def test_exact_matches_skip_fuzzy_candidates() -> None:
    result = _suggest("Contoso Ltd", "Contoso Limited", "Contosso Ltd")
    assert result["organization_id"].tolist() == [1]


# --- domain evidence -----------------------------------------------------------------------

def test_domain_evidence_suggests_an_organization_with_another_name() -> None:
    tenants = _tenants(("t", "Wingtip Toys", ["wingtip.com", "wingtip.onmicrosoft.com"]))
    orgs = _orgs("WT Holdings Ltd", "Other Ltd")
    domains = pd.DataFrame({"organization_id": [1, 1, 2], "domain": ["wingtip.com", "Wingtip.com",
                                                                     "other.com"]})
    result = suggest_organizations(tenants, orgs, domains)
    assert result["organization_id"].tolist() == [1]
    assert result["reasons"][0] == "2 contacts use domain wingtip.com"
    assert 60 <= result["score"][0] < strong_suggestion_threshold


def test_domain_counts_can_be_given_and_make_a_strong_suggestion() -> None:
    tenants = _tenants(("t", "Wingtip Toys", ["wingtip.com"]))
    domains = pd.DataFrame({"organization_id": [1], "domain": ["wingtip.com"], "contacts": [7]})
    result = suggest_organizations(tenants, _orgs("WT Holdings Ltd"), domains)
    assert result["score"][0] >= strong_suggestion_threshold
    assert result["reasons"][0] == "7 contacts use domain wingtip.com"


def test_free_mail_and_default_tenant_domains_are_no_evidence() -> None:
    tenants = _tenants(("t", "Wingtip Toys", ["gmail.com", "wingtip.onmicrosoft.com"]))
    domains = pd.DataFrame({"organization_id": [1, 1], "domain": ["gmail.com",
                                                                  "wingtip.onmicrosoft.com"]})
    assert suggest_organizations(tenants, _orgs("Other Ltd"), domains).empty


def test_name_and_domain_evidence_combine() -> None:
    tenants = _tenants(("t", "Contoso Group", ["contoso.com"]))
    domains = pd.DataFrame({"organization_id": [1], "domain": ["contoso.com"]})
    result = suggest_organizations(tenants, _orgs("Contoso Services"), domains)
    name_only = _suggest("Contoso Group", "Contoso Services")
    assert result["score"][0] > name_only["score"][0]
    assert result["score"][0] >= strong_suggestion_threshold
    reasons = result["reasons"][0]
    assert "generic words" in reasons and "1 contact uses domain contoso.com" in reasons


def test_conflicting_domains_take_a_name_only_suggestion_below_strong() -> None:
    tenants = _tenants(("t", "Acme", ["acme.onmicrosoft.com", "acme-foods.io"]))
    domains = pd.DataFrame({"organization_id": [1, 1, 1], "domain": ["acmeconsultants.com"] * 2
                            + ["gmail.com"]})
    result = suggest_organizations(tenants, _orgs("Acme Consultants"), domains)
    assert _suggest("Acme", "Acme Consultants")["score"].tolist() == [94.0]  # the name alone
    assert result["score"].tolist() == [79.0]
    assert result["reasons"][0] == (
        "same name apart from generic words ('acme' vs 'acme consultants'); domains conflict: no "
        "contact of the organization uses a verified domain of the tenant (acme-foods.io); its "
        "contacts use acmeconsultants.com")


def test_weighed_organizations_are_those_a_conflict_could_keep_out_or_let_in() -> None:
    """A name weak enough that a conflict takes it below 60 is weighed though not suggested: the
    organization's contact domains decide; an organization without name or domain evidence is
    not weighed (its contacts cannot change the tenant's suggestions)."""
    tenants = _tenants(("t", "Acme Consultants GmbH", ["acme.de"]))
    orgs = _orgs("The Acme Consultants Group Holdings Inc", "Northwind Traders", "Acme Consulting")
    conflicting = pd.DataFrame({"organization_id": [1, 2], "domain": ["acmegroup.com", "northwind.com"]})
    weighing = weigh_organizations(tenants, orgs, conflicting)
    assert weighing.suggestions["organization_id"].tolist() == [3]
    assert sorted(weighing.weighed["organization_id"]) == [1, 3]
    assert set(weighing.weighed["tenant_id"]) == {"t"}
    without = weigh_organizations(tenants, orgs, NO_DOMAINS)
    assert without.suggestions["organization_id"].tolist() == [3, 1]  # 94, then 72 without the conflict
    assert sorted(without.weighed["organization_id"]) == [1, 3]


@pytest.mark.parametrize(("tenant_domains", "contact_domains"), [
    (["acme.onmicrosoft.com"], ["acmeconsultants.com"]),  # the tenant verifies no domain of its own
    (["acme-foods.io"], ["gmail.com", "outlook.com"]),  # the contacts write from free mail only
    (["acme-foods.io"], []),  # the organization has no contacts
])
def test_no_conflict_without_distinctive_domains_on_both_sides(tenant_domains: list[str],
                                                               contact_domains: list[str]) -> None:
    domains = pd.DataFrame({"organization_id": [1] * len(contact_domains), "domain": contact_domains})
    result = suggest_organizations(_tenants(("t", "Acme", tenant_domains)), _orgs("Acme Consultants"),
                                   domains.astype({"organization_id": "int64", "domain": "str"}))
    assert result["score"].tolist() == [94.0] and "conflict" not in result["reasons"][0]


def test_one_shared_domain_is_evidence_not_conflict() -> None:
    tenants = _tenants(("t", "Acme", ["acme-foods.io", "acmeconsultants.com"]))
    domains = pd.DataFrame({"organization_id": [1, 1], "domain": ["acmeconsultants.com", "other.org"]})
    result = suggest_organizations(tenants, _orgs("Acme Consultants"), domains)
    assert result["score"][0] > 94.0 and "conflict" not in result["reasons"][0]
    assert "1 contact uses domain acmeconsultants.com" in result["reasons"][0]


def test_many_conflicting_domains_are_listed_briefly() -> None:
    tenants = _tenants(("t", "Acme", ["acme-foods.io"]))
    domains = pd.DataFrame({"organization_id": [1] * 5, "domain": [f"d{i}.com" for i in range(5)]})
    reasons = suggest_organizations(tenants, _orgs("Acme Consultants"), domains)["reasons"][0]
    assert reasons.endswith("its contacts use d0.com, d1.com, d2.com and 2 more")


# --- ranking and shape ---------------------------------------------------------------------

def test_top_k_ordering_by_score_then_organization_id() -> None:
    orgs = _orgs("Northwind Traders Inc", "Northwind Trader", "Northwind Traders GmbH",
                 "Northwind Traders AG", "Unrelated", ids=[40, 30, 20, 10, 5])
    result = suggest_organizations(_tenants(("t", "Northwind Traders Inc", [])), orgs,
                                   NO_DOMAINS, k=3)
    # 100 for the same form, then the 90s (forms differ) by id; with exact matches found,
    # the merely similar name is not a candidate.
    assert result["organization_id"].tolist() == [40, 10, 20]
    assert result["rank"].tolist() == [1, 2, 3]
    assert result["score"].tolist() == [100.0, 90.0, 90.0]
    assert len(suggest_organizations(_tenants(("t", "Northwind Traders Inc", [])), orgs,
                                     NO_DOMAINS, k=1)) == 1


def test_rows_follow_tenant_order_and_columns() -> None:
    tenants = _tenants(("b", "Fabrikam", []), ("a", "Contoso", []), ("c", "Nothing Alike", []))
    result = suggest_organizations(tenants, _orgs("Contoso Ltd", "Fabrikam Inc"), NO_DOMAINS)
    assert list(result.columns) == SUGGESTION_COLUMNS
    assert result["tenant_id"].tolist() == ["b", "a"]
    assert result["organization_name"].tolist() == ["Fabrikam Inc", "Contoso Ltd"]


def test_empty_inputs_give_an_empty_typed_frame() -> None:
    empty = suggest_organizations(_tenants(), _orgs(), NO_DOMAINS)
    assert list(empty.columns) == SUGGESTION_COLUMNS and empty.empty
    assert empty["score"].dtype == "float64" and empty["rank"].dtype == "int64"
    assert suggest_organizations(_tenants(("t", "Contoso", [])), _orgs(), NO_DOMAINS).empty


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError):
        _suggest("Contoso", "Contoso", k=0)


# --- chunking ------------------------------------------------------------------------------

WORDS = ["contoso", "fabrikam", "northwind", "tailspin", "wingtip", "adventure", "litware",
         "proseware", "woodgrove", "lucerne", "alpine", "margie", "trey", "humongous"]
SUFFIXES = ["", " Ltd", " Limited", " Inc", " GmbH", " Group", " Services Ltd", " & Sons"]


def _company_name(words: list[str], suffix: str, typo: bool) -> str:
    name = " ".join(words).title() + suffix
    return name.replace("o", "u") if typo else name


company_names = st.builds(_company_name, st.lists(st.sampled_from(WORDS), min_size=1, max_size=2),
                          st.sampled_from(SUFFIXES), st.booleans())


@settings(max_examples=40, deadline=None)
@given(st.lists(company_names, min_size=1, max_size=12), st.lists(company_names, min_size=1,
                                                                 max_size=30))
def test_chunking_gives_the_same_result_as_one_chunk(tenant_names: list[str],
                                                     org_names: list[str]) -> None:
    tenants = _tenants(*((f"t{i}", name, []) for i, name in enumerate(tenant_names)))
    orgs = _orgs(*org_names)
    whole = suggest_organizations(tenants, orgs, NO_DOMAINS, k=3)
    chunked = suggest_organizations(tenants, orgs, NO_DOMAINS, k=3, chunk_cells=1)
    pd.testing.assert_frame_equal(whole, chunked)


def test_many_similar_names_rank_by_score_then_id() -> None:
    # 400 near-identical names put every cell above the cutoff: the dense ranking path.
    names = [f"Northwind Traders {n:03d} Ltd" for n in range(400)]
    orgs = _orgs(*names, ids=list(range(1000, 600, -1)))  # ids descend: positions are no help
    tenants = _tenants(("t", "Northwind Tradrs 150", []))
    result = suggest_organizations(tenants, orgs, NO_DOMAINS, k=4)
    assert result["organization_name"][0] == "Northwind Traders 150 Ltd"
    everything = suggest_organizations(tenants, orgs, NO_DOMAINS, k=400)
    assert len(everything) == 400
    expected = everything.sort_values(["score", "organization_id"], ascending=[False, True])
    assert result["organization_id"].tolist() == expected["organization_id"].tolist()[:4]
    chunked = suggest_organizations(tenants, orgs, NO_DOMAINS, k=4, chunk_cells=1)
    pd.testing.assert_frame_equal(result, chunked)
