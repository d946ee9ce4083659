"""A re-sync that plans only the users a delta changed: the last plan's other rows as a plan
would make them now, and the devices planned again only when a primary user's contact moves."""

from __future__ import annotations

import pandas as pd

from glue_pipeline.columns import MATCH_COLUMNS
from glue_pipeline.device_plan import contacts_moved
from glue_pipeline.plan import carried_matches, merged_matches


def _matches(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=MATCH_COLUMNS)
    frame["contact_id"] = frame["contact_id"].astype("Int64")
    return frame


def test_carried_rows_read_as_a_plan_of_linked_users_and_keep_the_users_order() -> None:
    previous = _matches([
        ("u1", "a@x", "A", "match", 1, "upn", "contact email equals the user's UPN"),
        ("u2", "b@x", "B", "create", 2, None, "no contact has any of the user's addresses"),
        ("u3", "c@x", "C", "match", 3, "decision", "linked by an analyst's decision"),
        ("u4", "d@x", "D", "skipped", None, None, "account disabled"),
        ("u5", "e@x", "E", "held", 9, "duplicate_risk", "likely duplicate of contact 9"),
    ])
    carried = carried_matches(previous, {"u5"})
    assert list(carried["user_id"]) == ["u1", "u2", "u3", "u4"]
    assert list(carried["action"]) == ["match", "match", "match", "skipped"]
    assert list(carried["matched_on"].iloc[:3]) == ["user_id", "user_id", "decision"]
    assert pd.isna(carried["matched_on"].iloc[3])
    assert carried.loc[carried["user_id"] == "u2", "contact_id"].item() == 2
    planned = _matches([("u5", "e@x", "E", "create", None, None, "no contact has any of the user's addresses")])
    users = pd.DataFrame({"id": ["u5", "u1", "u2", "u3", "u4"]})
    merged = merged_matches(users, carried, planned)
    assert list(merged["user_id"]) == ["u5", "u1", "u2", "u3", "u4"]
    assert str(merged["contact_id"].dtype) == "Int64"


def test_devices_are_planned_again_only_when_a_primary_users_contact_moves() -> None:
    devices = {"u1"}  # d1's primary user; d2 has none
    before = pd.DataFrame({"user_id": ["u1", "u2"], "action": ["match", "held"],
                           "contact_id": pd.array([7, pd.NA], dtype="Int64")})
    same = before.assign(reason="changed title")
    moved = before.assign(contact_id=pd.array([8, pd.NA], dtype="Int64"))
    unwritten = before.assign(action=["held", "held"])
    assert not contacts_moved(devices, before, same, frozenset({"u1"}))
    assert not contacts_moved(devices, before, moved, frozenset({"u2"})), "u1 is not planned again"
    assert contacts_moved(devices, before, moved, frozenset({"u1"}))
    assert contacts_moved(devices, before, unwritten, frozenset({"u1"}))
    assert contacts_moved(devices, before, before[before["user_id"] != "u1"], frozenset({"u1"})), "u1 removed"
