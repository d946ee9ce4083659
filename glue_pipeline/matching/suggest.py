"""Organization suggestions for tenants: which existing organizations a tenant probably is.

Name evidence: an exact join on the normalised core name first (names.company_key: case,
accents, "&", punctuation and legal forms do not count); for the tenants without one, fuzzy
matching of the distinctive words (generic ones like "group" left out, sorted so word order does
not count) with rapidfuzz's cdist over chunks of tenants, so memory stays bounded. Distinctive
names of 4 characters or fewer must be equal ("ABC" is not "ABD").

  name score = ratio of the distinctive words (100 when equal)
               - 6 per generic word added, dropped or replaced ("Group" for "Consultants"
                 counts once), at most 18
               - 10 when both legal forms are known and differ ("inc" vs "gmbh"; "pty ltd" and
                 "ltd" agree)
  domain score = 70 + 5 per contact of the organization on a verified domain of the tenant,
                 at most 90 (onmicrosoft.com and free-mail domains are no evidence)
  score = 100 * (1 - (1 - name/100) * (1 - domain/100))
          - 15 when the name is the only evidence although both sides have domains: the tenant
            verifies distinctive domains and the organization's contacts use others, none of
            them the tenant's ("Acme" at acme-foods.io against "Acme Consultants", whose
            contacts write from acmeconsultants.com)
  Below 60 not suggested.
"""

from __future__ import annotations

from typing import NamedTuple, TypeAlias, TypedDict, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from rapidfuzz import fuzz, process

from glue_pipeline import frames
from glue_pipeline.columns import SUGGESTION_COLUMNS
from glue_pipeline.matching import Ints, Texts
from glue_pipeline.matching.names import (
    company_key,
    core_without_generic,
    generic_words,
    legal_forms_compatible,
    map_unique,
)

# A suggestion at or above this is strong: callers refuse to create a duplicate organization.
strong_suggestion_threshold = 90

LEGAL_FORM_PENALTY = 10  # same name, both legal forms known and different: 90
GENERIC_WORD_PENALTY = 6  # per generic word on one side only ("group", "the", ...)
MAX_GENERIC_PENALTY = 18
FUZZY_CUTOFF = 70  # ratio of the distinctive words below which a name is not a candidate
SHORT_NAME_LENGTH = 4  # distinctive names this short must be equal: "abc" vs "abd" is 67-86
FUZZY_SHORTLIST_EXTRA = 10  # fuzzy candidates kept per tenant beyond k, before penalties
MIN_SUGGESTION_SCORE = 60
DOMAIN_BASE_SCORE = 70
DOMAIN_SCORE_PER_CONTACT = 5
DOMAIN_MAX_SCORE = 90  # four contacts on a tenant's domain make a strong suggestion on their own
DOMAIN_CONFLICT_PENALTY = 15  # a strong name (94) falls below the strong threshold (90)
DOMAINS_IN_REASONS = 3
DEFAULT_CHUNK_CELLS = 1 << 25  # cdist cells per chunk: 32 MiB as uint8
DENSE_ROW_CELLS = 256  # a row with more candidates than this is ranked with argpartition
DENSE_BATCH_ROWS = 64

FREE_MAIL_DOMAINS: frozenset[str] = frozenset([
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com",
    "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "aol.com", "icloud.com", "me.com",
    "mac.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
    "yandex.com", "yandex.ru", "zoho.com", "fastmail.com", "t-online.de", "orange.fr", "free.fr",
    "btinternet.com", "qq.com", "163.com",
])
TENANT_DEFAULT_DOMAIN_SUFFIX = ".onmicrosoft.com"

# cdist's scores of a chunk of tenants (rows) against the organizations (columns).
Block: TypeAlias = npt.NDArray[np.uint8]


def organization_table(organizations: pd.DataFrame) -> pd.DataFrame:
    """The organizations' name features, as suggest_organizations compares them; a batch of
    tenants computes it once and passes it as `prepared`."""
    return _company_table(organizations["name"]).assign(
        organization_id=organizations["id"].reset_index(drop=True),
        organization_name=organizations["name"].reset_index(drop=True),
    ).sort_values("organization_id", kind="stable").reset_index(drop=True)


def suggest_organizations(tenants: pd.DataFrame, organizations: pd.DataFrame,
                          organization_domains: pd.DataFrame, k: int = 3, *,
                          chunk_cells: int = DEFAULT_CHUNK_CELLS,
                          prepared: pd.DataFrame | None = None) -> pd.DataFrame:
    """Up to k organizations per tenant, best first.

    tenants: tenant_id, tenant_name, domains (list of verified domains).
    organizations: id, name.
    organization_domains: organization_id, domain: one row per contact email (so repeated
        rows count contacts), or with a `contacts` column holding the count.
    Returns tenant_id, rank (1..k), organization_id, organization_name, score (0-100),
    reasons; tenants in input order, then score descending and organization id ascending.
    """
    return weigh_organizations(tenants, organizations, organization_domains, k, chunk_cells=chunk_cells,
                               prepared=prepared).suggestions


class Weighing(NamedTuple):
    """suggest_organizations' suggestions, and the organizations it weighed for them: the pairs
    whose evidence reaches MIN_SUGGESTION_SCORE before a domain conflict's penalty. Every
    suggestion is among them, so beyond the organizations' names and the evidence the tenant's
    own domains meet, only whether these organizations' contacts use distinctive domains
    (organizations_with_contact_domains) can change a tenant's suggestions and their scores."""

    suggestions: pd.DataFrame  # SUGGESTION_COLUMNS
    weighed: pd.DataFrame  # tenant_id, organization_id


def weigh_organizations(tenants: pd.DataFrame, organizations: pd.DataFrame,
                        organization_domains: pd.DataFrame, k: int = 3, *,
                        chunk_cells: int = DEFAULT_CHUNK_CELLS,
                        prepared: pd.DataFrame | None = None) -> Weighing:
    """suggest_organizations, with the organizations weighed."""
    if k < 1:
        raise ValueError("k must be at least 1")
    orgs = organization_table(organizations) if prepared is None else prepared
    tens = _company_table(tenants["tenant_name"])
    names = _name_evidence(tens, orgs, k + FUZZY_SHORTLIST_EXTRA, chunk_cells)
    verified, used = _distinctive_domains(tenants, organization_domains, orgs)
    pairs = _combine(names, _domain_evidence(verified, used), verified, used)
    weighed = pairs[pairs["evidence"] >= MIN_SUGGESTION_SCORE]
    top = _top_k(pairs[pairs["score"] >= MIN_SUGGESTION_SCORE], k)
    t, o = weighed["t"].to_numpy(int), weighed["o"].to_numpy(int)
    return Weighing(_suggestion_frame(top, tenants, tens, orgs),
                    pd.DataFrame({"tenant_id": _take(tenants["tenant_id"], t),
                                  "organization_id": _take(orgs["organization_id"], o)}))


# ---------------------------------------------------------------------------------------------
# Name evidence

def _company_table(names: pd.Series) -> pd.DataFrame:
    """core, form, distinct (distinctive words, sorted so word order does not count), generic."""
    keys = map_unique(_name_features, names.to_numpy())
    core, form, distinct, generic = zip(*keys, strict=True) if len(keys) else ((), (), (), ())
    return pd.DataFrame({"core": list(core), "form": list(form), "distinct": list(distinct),
                         "generic": list(generic)}, dtype=object)


def _name_features(name: object) -> tuple[str, str | None, str, frozenset[str]]:
    core, form = company_key(name if isinstance(name, str) else None)
    distinct = " ".join(sorted(core_without_generic(core).split()))
    return core, form, distinct, generic_words(core)


def _name_evidence(tens: pd.DataFrame, orgs: pd.DataFrame, shortlist: int,
                   chunk_cells: int) -> pd.DataFrame:
    """t, o (positions) and similarity of the distinctive names, then scored."""
    exact = _join_on(tens, orgs, "core")
    rest = np.setdiff1d(np.flatnonzero(tens["distinct"].to_numpy() != ""), exact["t"].to_numpy())
    short_t = rest[tens["distinct"].str.len().to_numpy()[rest] <= SHORT_NAME_LENGTH]
    long_t = np.setdiff1d(rest, short_t)
    long_o = np.flatnonzero(orgs["distinct"].str.len().to_numpy() > SHORT_NAME_LENGTH)
    short = _join_on(tens.iloc[short_t], orgs, "distinct")
    queries, choices = _fuzzy_candidates(tens["distinct"].to_numpy()[long_t],
                                         orgs["distinct"].to_numpy()[long_o], shortlist, chunk_cells)
    fuzzy = pd.DataFrame({"t": long_t[queries], "o": long_o[choices]})
    pairs = pd.concat([exact, short, fuzzy], ignore_index=True)
    return _score_names(pairs, tens, orgs)


def _join_on(tens: pd.DataFrame, orgs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Pairs equal on a non-empty column, as positions (tens keeps its index as positions)."""
    left = pd.DataFrame({"t": tens.index.to_numpy(), "key": tens[column].to_numpy()})
    right = pd.DataFrame({"o": np.arange(len(orgs)), "key": orgs[column].to_numpy()})
    joined = left[left["key"] != ""].merge(right, on="key")
    return joined[["t", "o"]]


def _fuzzy_candidates(queries: Texts, choices: Texts, shortlist: int,
                      chunk_cells: int) -> tuple[Ints, Ints]:
    """(query index, choice index) of each query's best `shortlist` choices above the cutoff,
    ties going to the lower choice index; cdist runs over chunks of queries."""
    if len(queries) == 0 or len(choices) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows_per_chunk = max(1, chunk_cells // len(choices))
    found_q: list[Ints] = []
    found_c: list[Ints] = []
    for start in range(0, len(queries), rows_per_chunk):
        block: Block = process.cdist(queries[start:start + rows_per_chunk], choices, scorer=fuzz.ratio,
                              score_cutoff=FUZZY_CUTOFF, dtype=np.uint8, workers=-1)
        rows, cols = _top_cells(block, shortlist)
        found_q.append(rows + start)
        found_c.append(cols)
    return np.concatenate(found_q), np.concatenate(found_c)


def _top_cells(block: Block, limit: int) -> tuple[Ints, Ints]:
    """Row and column of each row's best `limit` non-zero cells (score descending, then column
    ascending). Rows are independent of each other, so chunking does not change the result."""
    dense = np.flatnonzero(np.count_nonzero(block, axis=1) > DENSE_ROW_CELLS)
    dense_rows, dense_cols = _top_cells_of_dense_rows(block, dense, limit)
    block[dense] = 0
    rows, cols = _nonzero_cells(block)
    keep = _best_per_row(rows, cols, block[rows, cols], limit)
    return np.r_[rows[keep], dense_rows], np.r_[cols[keep], dense_cols]


def _top_cells_of_dense_rows(block: Block, rows: Ints, limit: int) -> tuple[Ints, Ints]:
    """Rows with many candidates (many similar names): argpartition on score and column packed
    into one int64, a few rows at a time to bound the memory."""
    width = block.shape[1]
    take = min(limit, width)
    found_rows: list[Ints] = [np.empty(0, np.int64)]
    found_cols: list[Ints] = [np.empty(0, np.int64)]
    for start in range(0, len(rows), DENSE_BATCH_ROWS):
        batch = rows[start:start + DENSE_BATCH_ROWS]
        scores = block[batch]
        packed = scores.astype(np.int64) * width + (width - 1 - np.arange(width))
        cols = np.argpartition(packed, -take, axis=1)[:, -take:]
        keep = np.take_along_axis(scores, cols, axis=1) > 0
        found_rows.append(np.broadcast_to(batch[:, None], cols.shape)[keep])
        found_cols.append(cols[keep])
    return np.concatenate(found_rows), np.concatenate(found_cols)


def _nonzero_cells(block: Block) -> tuple[Ints, Ints]:
    """Row and column of the non-zero cells of a uint8 matrix. The cutoff leaves it very sparse,
    so it is scanned eight cells at a time (as uint64 words): ten times faster than np.nonzero."""
    flat = block.reshape(-1)
    whole = flat.size - flat.size % 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    cells = (words[:, None] * 8 + np.arange(8)).reshape(-1)
    cells = np.concatenate([cells, np.arange(whole, flat.size)])
    cells = cells[flat[cells] > 0]
    rows, cols = np.divmod(cells, block.shape[1])
    return rows, cols


def _best_per_row(rows: Ints, cols: Ints, scores: npt.NDArray[np.uint8], limit: int) -> Ints:
    """Indices of the best `limit` cells per row: score descending, then column ascending."""
    order: Ints = np.lexsort((cols, -scores.astype(np.int16), rows))
    sorted_rows = rows[order]
    group_start = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    rank: Ints = np.arange(len(order)) - np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    return order[rank < limit]


def _score_names(pairs: pd.DataFrame, tens: pd.DataFrame, orgs: pd.DataFrame) -> pd.DataFrame:
    """Similarity of the distinctive words, less penalties for generic words on one side only
    and for two different legal forms."""
    pairs = pairs.drop_duplicates(["t", "o"]).reset_index(drop=True)
    t, o = pairs["t"].to_numpy(), pairs["o"].to_numpy()
    similarity = process.cpdist(tens["distinct"].to_numpy()[t], orgs["distinct"].to_numpy()[o],
                                scorer=fuzz.ratio, workers=-1) if len(pairs) else np.empty(0)
    t_generic, o_generic = tens["generic"].to_numpy()[t], orgs["generic"].to_numpy()[o]
    generic_diff = np.fromiter((max(len(a - b), len(b - a)) for a, b in zip(t_generic, o_generic, strict=True)),
                               np.int64, len(pairs))
    forms_ok = np.fromiter((legal_forms_compatible(a, b) for a, b in
                            zip(tens["form"].to_numpy()[t], orgs["form"].to_numpy()[o], strict=True)), np.bool_,
                           len(pairs))
    penalty = (np.minimum(generic_diff * GENERIC_WORD_PENALTY, MAX_GENERIC_PENALTY)
               + np.where(forms_ok, 0, LEGAL_FORM_PENALTY))
    return pairs.assign(similarity=similarity, generic_diff=generic_diff, forms_ok=forms_ok,
                        name_score=np.clip(similarity - penalty, 0, 100))


# ---------------------------------------------------------------------------------------------
# Domain evidence

def _distinctive_domains(tenants: pd.DataFrame, organization_domains: pd.DataFrame,
                         orgs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(t, domain): the tenants' verified domains; (o, domain, contacts): the domains the
    organizations' contacts use; both without onmicrosoft.com and free-mail domains."""
    verified = pd.DataFrame({"t": np.arange(len(tenants)), "domain": tenants["domains"].to_numpy()})
    verified = verified.explode("domain").dropna(subset=["domain"])
    verified["domain"] = _clean_domains(verified["domain"])
    verified = verified[_is_distinctive_domain(verified["domain"])].drop_duplicates()

    used = pd.DataFrame({"organization_id": organization_domains["organization_id"].to_numpy(),
                         "domain": _clean_domains(organization_domains["domain"]).to_numpy(),
                         "contacts": (organization_domains["contacts"].to_numpy()
                                      if "contacts" in organization_domains else 1)})
    used = used[_is_distinctive_domain(used["domain"])]
    used = used.groupby(["organization_id", "domain"], as_index=False)[["contacts"]].sum()
    positions = pd.DataFrame({"organization_id": orgs["organization_id"].to_numpy(),
                              "o": np.arange(len(orgs))})
    return verified, used.merge(positions, on="organization_id")[["o", "domain", "contacts"]]


def _domain_evidence(verified: pd.DataFrame, used: pd.DataFrame) -> pd.DataFrame:
    """t, o, contacts (count), domain_score, domains: [(domain, contacts)] for the reasons."""
    hits = verified.merge(used, on="domain").sort_values(["t", "o", "contacts", "domain"],
                                                         ascending=[True, True, False, True])
    if hits.empty:
        return pd.DataFrame({"t": np.empty(0, np.int64), "o": np.empty(0, np.int64),
                             "contacts": np.empty(0, np.int64), "domains": np.empty(0, object),
                             "domain_score": np.empty(0, np.int64)})
    hits["pair"] = list(zip(hits["domain"], hits["contacts"], strict=True))
    grouped = hits.groupby(["t", "o"], as_index=False).agg(contacts=("contacts", "sum"),
                                                          domains=("pair", list))
    grouped["domain_score"] = np.minimum(
        DOMAIN_BASE_SCORE + DOMAIN_SCORE_PER_CONTACT * grouped["contacts"], DOMAIN_MAX_SCORE)
    return grouped


def _clean_domains(domains: pd.Series) -> pd.Series:
    return domains.astype(str).str.strip().str.lower().str.rstrip(".")


def domain_evidence_index(organization_domains: pd.DataFrame) -> dict[str, list[list[int]]]:
    """Cleaned domain -> [[organization_id, contacts], ...] (sorted): all the domain evidence a
    tenant with that verified domain can meet, for telling whether it changed."""
    frame = pd.DataFrame({"domain": _clean_domains(organization_domains["domain"]),
                          "organization_id": organization_domains["organization_id"].astype(int),
                          "contacts": (organization_domains["contacts"].astype(int)
                                       if "contacts" in organization_domains else 1)})
    frame = frame.groupby(["domain", "organization_id"], as_index=False)[["contacts"]].sum()
    index: dict[str, list[list[int]]] = {}
    for domain, organization_id, contacts in frame.itertuples(index=False):
        index.setdefault(domain, []).append([int(organization_id), int(contacts)])
    return index


def domain_evidence_of(index: dict[str, list[list[int]]],
                       domains: list[str]) -> list[list[str | list[list[int]]]]:
    """The evidence the tenant's verified domains meet, in a stable order."""
    cleaned = sorted(set(_clean_domains(pd.Series(domains, dtype=object))))
    return [[domain, index.get(domain, [])] for domain in cleaned]


def organizations_with_contact_domains(organization_domains: pd.DataFrame) -> list[int]:
    """The ids of the organizations whose contacts use a distinctive domain (sorted): what a
    domain conflict's penalty reads of an organization beside the domains a tenant meets."""
    domains = _clean_domains(organization_domains["domain"])
    ids = organization_domains["organization_id"][_is_distinctive_domain(domains).to_numpy()]
    return sorted({int(i) for i in ids})


def _is_distinctive_domain(domains: pd.Series) -> pd.Series:
    """Not a tenant's default *.onmicrosoft.com domain, not a free-mail provider."""
    return ~(domains.str.endswith(TENANT_DEFAULT_DOMAIN_SUFFIX)
             | domains.isin(FREE_MAIL_DOMAINS) | (domains == ""))


# ---------------------------------------------------------------------------------------------
# Combination and output

def _combine(names: pd.DataFrame, domains: pd.DataFrame, verified: pd.DataFrame,
             used: pd.DataFrame) -> pd.DataFrame:
    """One row per (t, o); independent evidence combined as 1 - (1 - name)(1 - domain)
    (`evidence`), less DOMAIN_CONFLICT_PENALTY where the domains conflict (`score`; conflict: the
    tenant's and the organization's domains for the reasons, else NaN)."""
    pairs = names.merge(domains, on=["t", "o"], how="outer")
    name = pairs["name_score"].fillna(0).to_numpy(float) / 100
    domain = pairs["domain_score"].fillna(0).to_numpy(float) / 100
    pairs["conflict"] = _domain_conflicts(pairs, verified, used)
    penalty = np.where(pairs["conflict"].notna(), DOMAIN_CONFLICT_PENALTY, 0)
    evidence = 100 * (1 - (1 - name) * (1 - domain))
    pairs["evidence"] = np.round(evidence, 1)
    pairs["score"] = np.round(np.maximum(evidence - penalty, 0), 1)
    return pairs


def _domain_conflicts(pairs: pd.DataFrame, verified: pd.DataFrame, used: pd.DataFrame) -> pd.Series:
    """([tenant domains], [organization domains]) for the name-only pairs whose tenant verifies
    distinctive domains and whose organization's contacts use distinctive domains (none of
    them the tenant's, or the pair would have domain evidence); NaN for the others."""
    tenant_domains = verified.groupby("t")["domain"].agg(sorted)
    org_domains = used.sort_values(["o", "contacts", "domain"], ascending=[True, False, True]) \
        .groupby("o")["domain"].agg(list)
    name_only = pairs["domain_score"].isna().to_numpy()
    theirs = tenant_domains.reindex(pairs["t"]).to_numpy(object)
    ours = org_domains.reindex(pairs["o"]).to_numpy(object)
    conflict = name_only & pd.notna(theirs) & pd.notna(ours)
    return pd.Series([(t, o) if c else np.nan for t, o, c in zip(theirs, ours, conflict, strict=True)],
                     index=pairs.index, dtype=object)


def _top_k(pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each tenant's k best, by score descending then organization id (o follows the id)."""
    ordered = pairs.sort_values(["t", "score", "o"], ascending=[True, False, True], kind="stable")
    ordered["rank"] = ordered.groupby("t").cumcount() + 1
    return ordered[ordered["rank"] <= k].reset_index(drop=True)


def _suggestion_frame(top: pd.DataFrame, tenants: pd.DataFrame, tens: pd.DataFrame,
                      orgs: pd.DataFrame) -> pd.DataFrame:
    t, o = top["t"].to_numpy(int), top["o"].to_numpy(int)
    reasons = [_reasons(row, tenant, org) for row, tenant, org in
               zip(frames.rows(top, _Ranked), _features(tens.iloc[t]), _features(orgs.iloc[o]), strict=True)]
    return pd.DataFrame({
        "tenant_id": _take(tenants["tenant_id"], t),
        "rank": top["rank"].to_numpy(np.int64),
        "organization_id": _take(orgs["organization_id"], o),
        "organization_name": _take(orgs["organization_name"], o),
        "score": top["score"].to_numpy(np.float64),
        "reasons": pd.array(reasons, dtype="str"),
    }, columns=SUGGESTION_COLUMNS)


def _take(column: pd.Series, positions: Ints) -> pd.Series:
    """Values at positions, keeping the column's dtype (also when there are none)."""
    return column.take(positions).reset_index(drop=True)


class _Ranked(NamedTuple):
    """What the reasons read of a row of _top_k's table."""

    name_score: float  # NaN without name evidence
    similarity: float
    domains: object  # [(domain, contacts)], NaN without domain evidence
    conflict: object  # ([tenant domains], [organization domains]), NaN without a conflict


class _Features(TypedDict):
    """A row of _company_table (organization_table's has more columns)."""

    core: str
    form: str | None
    distinct: str
    generic: frozenset[str]


def _features(table: pd.DataFrame) -> list[_Features]:
    return cast("list[_Features]", table.to_dict("records"))


def _reasons(row: _Ranked, tenant: _Features, org: _Features) -> str:
    parts = []
    if not pd.isna(row.name_score):
        parts += _name_reasons(row.similarity, tenant, org)
    if isinstance(row.domains, list):
        parts.append(", ".join(_domain_reason(domain, contacts)
                               for domain, contacts in row.domains))
    if isinstance(row.conflict, tuple):
        theirs, ours = row.conflict
        parts.append(f"domains conflict: no contact of the organization uses a verified domain of "
                     f"the tenant ({_listed(theirs)}); its contacts use {_listed(ours)}")
    return "; ".join(parts)


def _listed(domains: list[str]) -> str:
    shown = ", ".join(domains[:DOMAINS_IN_REASONS])
    return f"{shown} and {len(domains) - DOMAINS_IN_REASONS} more" if len(domains) > DOMAINS_IN_REASONS else shown


def _name_reasons(similarity: float, tenant: _Features, org: _Features) -> list[str]:
    if tenant["core"] == org["core"]:
        parts = [f"same name after normalisation ('{org['core']}')"]
    elif similarity >= 100:
        parts = [f"same name apart from generic words ('{tenant['core']}' vs '{org['core']}')"]
    else:
        parts = [f"similar name ('{tenant['core']}' vs '{org['core']}', {similarity:.0f}% alike)"]
        if tenant["generic"] ^ org["generic"]:
            parts.append(f"generic words differ ({_versus(tenant['generic'], org['generic'])})")
    if not legal_forms_compatible(tenant["form"], org["form"]):
        parts.append(f"legal forms differ ({tenant['form']} vs {org['form']})")
    return parts


def _versus(left: frozenset[str], right: frozenset[str]) -> str:
    only_left = " ".join(sorted(left - right)) or "none"
    only_right = " ".join(sorted(right - left)) or "none"
    return f"{only_left} vs {only_right}"


def _domain_reason(domain: str, contacts: int) -> str:
    if contacts == 1:
        return f"1 contact uses domain {domain}"
    return f"{contacts} contacts use domain {domain}"
