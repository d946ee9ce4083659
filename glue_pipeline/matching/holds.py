"""Would-be new records at high risk of duplicating an existing one, for users (contacts) and
devices (configurations) alike: held for an analyst under duplicate_policy hold, or created with
the candidate in their reason."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd


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
