"""Would-be new records at high risk of duplicating an existing one, for users (contacts) and
devices (configurations) alike: held for an analyst under duplicate_policy hold, or created with
the candidate in their reason."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd


def not_created_for(records: pd.DataFrame, linked: pd.DataFrame, read_ids: pd.Series, *, key: str,
                    record: str) -> pd.DataFrame:
    """The records (contacts, configurations; their id in `record`) a would-be new one is compared
    with: all but those the sync created for another item of this read (`linked`: the tenant's
    links, `key` the item's id: user_id, device_id, with the record's created_by). New items are
    not compared with each other, so an item is judged the same whether a look-alike's record was
    created in an earlier sync or is created in this one. A documented record linked to another
    item stays a candidate, as it was before its link."""
    created = linked.loc[linked[key].isin(read_ids) & (linked["created_by"] == "microsoft"), record]
    return records[~records[record].isin(created)]


def by_likelihood(risk: pd.DataFrame, record: str) -> pd.DataFrame:
    """Risk rows likeliest first: score descending, then the candidate's id (`record`), whatever
    their order before."""
    return risk.sort_values(["score", record], ascending=[False, True], kind="stable")


def mark_likely_duplicates(matches: pd.DataFrame, risk: pd.DataFrame, hold: bool, *, key: str, record: str,
                           subject: str) -> None:
    """A create in `matches` (rows keyed by `key`: user_id, device_id) with a high-risk candidate in
    `risk` (the candidate's id in `record`: contact_id, configuration_id) waits for an analyst
    (`hold`: action 'held', matched_on 'duplicate_risk', the likeliest candidate and a reason naming
    it and the fix), or is created with that candidate in its reason. Decided creates are never held.
    `subject` names what is held in the reason (user, device)."""
    noun = record.removesuffix("_id")
    best = by_likelihood(risk[risk["level"] == "high"], record).drop_duplicates(key).set_index(key)
    mask = (matches["action"] == "create") & (matches["matched_on"] != "decision") & matches[key].isin(best.index)
    for i in matches.index[mask]:
        top = cast("pd.Series[Any]", best.loc[cast(str, matches.at[i, key])])  # one row: best has each key once
        candidate = int(top[record])
        evidence = f"(score {top['score']:.0f}: {top['reasons']})"
        if not hold:
            matches.at[i, "reason"] = (f"created by duplicate_policy create, although at high risk of "
                                       f"duplicating {noun} {candidate} {evidence}")
            continue
        matches.at[i, "action"] = "held"
        matches.at[i, record] = candidate
        matches.at[i, "matched_on"] = "duplicate_risk"
        matches.at[i, "reason"] = (f"likely duplicate of {noun} {candidate} {evidence}: link the {subject} "
                                   "to it or approve the create")
