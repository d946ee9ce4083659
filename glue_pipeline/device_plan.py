"""What the sync will do with one tenant's Intune devices, decided from the extract and a
snapshot of the store: each device's configuration match, the duplicate risk of the devices
that would become new configurations, and the configuration writes. Pure: no I/O.

A device's primary user becomes the configuration's primary contact when the user is synced
(matched to or created as a contact in the same sync); a device whose user is not synced (left
out by the user selection, held, or gone from the tenant) is still written, without one, and its
match says so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import pandas as pd

from glue_pipeline import frames
from glue_pipeline.columns import DEVICE_MATCH_COLUMNS, DEVICE_RISK_COLUMNS
from glue_pipeline.mapping import ConfigurationFields, Overlay, configuration_fields, device_overlay
from glue_pipeline.matching.devices import (
    configuration_type,
    device_duplicate_risk,
    device_skip_reason,
    match_devices,
)
from glue_pipeline.matching.holds import by_likelihood, mark_likely_duplicates, not_created_for
from glue_pipeline.matching.organizations import OrgMatch
from glue_pipeline.options import SyncOptions
from glue_pipeline.snapshot import TenantSnapshot


@dataclass(frozen=True)
class ConfigurationWrite:
    """What the sync wants a configuration to be: mapped fields plus the Microsoft overlay."""

    device_id: str
    configuration_id: int | None  # None: create
    fields: ConfigurationFields  # the mapped fields and the configuration type
    overlay: Overlay
    user_id: str | None  # the primary user: its contact becomes the primary contact
    decided: bool = False  # linked by an analyst's decision: may take the configuration from another device


@dataclass
class DevicePlan:
    matches: pd.DataFrame  # DEVICE_MATCH_COLUMNS
    risk: pd.DataFrame  # DEVICE_RISK_COLUMNS
    writes: list[ConfigurationWrite] = field(default_factory=list)
    # The organization's configurations' names by id, as the store had them.
    configuration_names: dict[int, str] = field(default_factory=dict)


def no_device_plan() -> DevicePlan:
    """The plan of a tenant whose devices were not read or not planned: empty tables."""
    return DevicePlan(pd.DataFrame(columns=DEVICE_MATCH_COLUMNS).astype({"configuration_id": "Int64"}),
                      pd.DataFrame(columns=DEVICE_RISK_COLUMNS))


def device_skips(snapshot: TenantSnapshot, options: SyncOptions) -> pd.Series:
    """Per device: why the device options leave it out (None: synced)."""
    selection = options.devices
    return pd.Series([device_skip_reason(d, selection.include_personal, selection.operating_systems)
                      for d in frames.records(snapshot.devices)], index=snapshot.devices.index, dtype=object)


def held_device_plan(devices: pd.DataFrame, skips: pd.Series, match: OrgMatch) -> DevicePlan:
    """A tenant without an organization: every selected device is held back with the reason."""
    reason = f"tenant {match.status}: {match.reason}"
    matches = pd.DataFrame({
        "device_id": devices["id"], "device_name": devices["device_name"], "serial_number": devices["serial_number"],
        "action": ["skipped" if s else "held" for s in skips],
        "configuration_id": pd.array([pd.NA] * len(devices), dtype="Int64"), "matched_on": None,
        "reason": [s or reason for s in skips]}, columns=DEVICE_MATCH_COLUMNS)
    return DevicePlan(matches.reset_index(drop=True), pd.DataFrame(columns=DEVICE_RISK_COLUMNS))


def plan_devices(snapshot: TenantSnapshot, options: SyncOptions, skips: pd.Series, configurations: pd.DataFrame,
                 linked: pd.DataFrame, decisions: pd.DataFrame, foreign: pd.DataFrame,
                 synced_users: dict[str, str], user_contacts: Mapping[str, int]) -> DevicePlan:
    """Match devices to the organization's configurations, score would-be new configurations for
    duplicate risk (held under duplicate_policy hold, as for users) and build the writes.
    `synced_users`: user id -> UPN of the users this sync writes as contacts; `user_contacts`:
    user id -> contact id of those already linked to one (a device's primary user is compared with
    a configuration's primary contact)."""
    devices = snapshot.devices
    matches = match_devices(devices, configurations, linked, skips, decisions, foreign)
    creating = matches[(matches["action"] == "create") & (matches["matched_on"] != "decision")]
    candidates = not_created_for(configurations, linked, devices["id"], key="device_id", record="configuration_id")
    risk = device_duplicate_risk(devices[devices["id"].isin(creating["device_id"])], candidates,
                                 user_contacts, read=devices)
    mark_likely_duplicates(matches, risk, options.duplicate_policy == "hold", key="device_id",
                           record="configuration_id", subject="device")
    _say_unsynced_users(matches, devices, synced_users)
    names = {int(c): str(n) for c, n in zip(configurations["configuration_id"], configurations["name"], strict=True)
             if isinstance(n, str) and n}
    return DevicePlan(matches, risk, _writes(snapshot, options, matches, synced_users), names)


def _say_unsynced_users(matches: pd.DataFrame, devices: pd.DataFrame, synced_users: dict[str, str]) -> None:
    """A written device whose primary user is not synced gets no primary contact: its reason says so."""
    users: dict[str, object] = dict(zip(devices["id"], devices["user_id"], strict=True))
    upns: dict[str, object] = dict(zip(devices["id"], devices["user_principal_name"], strict=True))
    written = matches["action"].isin(["match", "create"])
    for i in matches.index[written]:
        device_id = str(matches.at[i, "device_id"])
        user_id = users.get(device_id)
        if isinstance(user_id, str) and user_id not in synced_users:
            who = str(upns.get(device_id) or user_id)
            reason = str(matches.at[i, "reason"])
            matches.at[i, "reason"] = f"{reason}; its primary user {who} is not synced, so it has no primary contact"


def _writes(snapshot: TenantSnapshot, options: SyncOptions, matches: pd.DataFrame,
            synced_users: dict[str, str]) -> list[ConfigurationWrite]:
    devices = {d["id"]: d for d in frames.records(snapshot.devices)}
    initial_domain = snapshot.organization.initial_domain
    writes = []
    for row in frames.records(matches[matches["action"].isin(["match", "create"])]):
        device = devices[row["device_id"]]
        fields = configuration_fields(device, options.devices.mapping)
        fields["configuration_type"] = configuration_type(device.get("operating_system"), device.get("model"),
                                                          device.get("manufacturer"))
        user_id = device.get("user_id")
        writes.append(ConfigurationWrite(
            device_id=str(row["device_id"]),
            configuration_id=None if row["action"] == "create" else int(row["configuration_id"]),
            fields=fields, overlay=device_overlay(device, snapshot.tenant_id, initial_domain),
            user_id=user_id if isinstance(user_id, str) and user_id in synced_users else None,
            decided=row["matched_on"] == "decision"))
    return writes


def held_device_rows(plan: DevicePlan) -> list[dict[str, str | None]]:
    """The held_devices rows: every device matched to no configuration for a reason an analyst must see."""
    held = plan.matches[plan.matches["action"].isin(["ambiguous", "held"])]
    risk = by_likelihood(plan.risk, "configuration_id")
    rows = []
    for row in frames.records(held):
        candidates = risk.loc[risk["device_id"] == row["device_id"], "configuration_id"]
        rows.append({"device_id": str(row["device_id"]), "device_name": _text(row["device_name"]),
                     "serial_number": _text(row["serial_number"]), "reason": str(row["reason"]),
                     "candidate_configuration_ids": ", ".join(str(int(c)) for c in candidates) or None})
    return rows


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def contacts_moved(device_users: Collection[str], previous: pd.DataFrame, matches: pd.DataFrame,
                   replaced: Collection[str]) -> bool:
    """Whether a device's primary user (`device_users`) among `replaced` (users planned again, or
    removed) is written to another contact by `matches` than by the last plan (`previous`), or
    written by one of them only: its configuration's primary contact moves, so the devices are
    planned again."""
    owners = set(device_users) & set(replaced)
    if not owners:
        return False

    def contacts(table: pd.DataFrame) -> dict[str, int]:
        written = table[table["user_id"].isin(owners) & table["action"].isin(["match", "create"])]
        return {str(u): int(c) for u, c in zip(written["user_id"], written["contact_id"], strict=True)}

    return contacts(previous) != contacts(matches)
