"""Device matching as pure functions over DataFrames (matching/devices.py): serials, MACs and names
as evidence, configuration types, skips, the match rules, duplicate risk and its holds."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glue_pipeline.columns import (
    CONFIGURATION_COLUMNS,
    DEVICE_COLUMNS,
    DEVICE_DECISION_COLUMNS,
    DEVICE_MATCH_COLUMNS,
    DEVICE_RISK_COLUMNS,
    FOREIGN_DEVICE_COLUMNS,
    LINKED_DEVICE_COLUMNS,
)
from glue_pipeline.matching.devices import (
    MAX_BLOCK_CONFIGURATIONS,
    PLACEHOLDER_SERIALS,
    configuration_type,
    device_duplicate_risk,
    device_skip_reason,
    match_devices,
    normalized_device_name,
    normalized_mac,
    normalized_serial,
)
from glue_pipeline.matching.holds import mark_likely_duplicates

DEVICE_1 = "11111111-1111-1111-1111-111111111111"
DEVICE_2 = "22222222-2222-2222-2222-222222222222"
DEVICE_3 = "33333333-3333-3333-3333-333333333333"
OTHER_TENANT = "99999999-9999-9999-9999-999999999999"


def _devices(*rows: dict) -> pd.DataFrame:
    base = dict.fromkeys(DEVICE_COLUMNS)
    return pd.DataFrame([{**base, **row} for row in rows], columns=list(DEVICE_COLUMNS))


# The configurations' model: read by duplicate risk when the frame has it.
CONFIGURATION_FRAME = list(dict.fromkeys([*CONFIGURATION_COLUMNS, "model"]))


def _configurations(*rows: dict) -> pd.DataFrame:
    base = {**dict.fromkeys(CONFIGURATION_FRAME), "mac_addresses": [], "created_by": "store"}
    return pd.DataFrame([{**base, **row} for row in rows], columns=CONFIGURATION_FRAME)


def _linked(*rows: tuple[int, str, bool]) -> pd.DataFrame:
    """Links to configurations documented by hand (created_by store)."""
    return pd.DataFrame([(*row, "store") for row in rows], columns=LINKED_DEVICE_COLUMNS)


def _hold_likely_duplicates(matches: pd.DataFrame, risk: pd.DataFrame, hold: bool) -> None:
    mark_likely_duplicates(matches, risk, hold, key="device_id", record="configuration_id", subject="device")


def _decisions(*rows: tuple[str, str, int | None]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=DEVICE_DECISION_COLUMNS)


def _match(devices: pd.DataFrame, configurations: pd.DataFrame, linked: pd.DataFrame | None = None,
           decisions: pd.DataFrame | None = None, foreign: pd.DataFrame | None = None,
           skips: list[str | None] | None = None) -> pd.DataFrame:
    table = match_devices(devices, configurations, linked if linked is not None else _linked(),
                          pd.Series(skips or [None] * len(devices), index=devices.index, dtype=object),
                          decisions if decisions is not None else _decisions(), foreign)
    assert list(table.columns) == DEVICE_MATCH_COLUMNS and len(table) == len(devices)
    return table.set_index("device_id", drop=False)


def _outcome(table: pd.DataFrame, device_id: str) -> tuple[str, object, object]:
    row = table.loc[device_id]
    configuration = None if pd.isna(row["configuration_id"]) else int(row["configuration_id"])
    matched_on = None if pd.isna(row["matched_on"]) else row["matched_on"]
    return row["action"], configuration, matched_on


# ---------------------------------------------------------------------------------------------
# Serials, MACs and names

PLACEHOLDERS = [
    "To be filled by O.E.M.", "To Be Filled By O.E.M.", "System Serial Number", "Default string", "Default Serial",
    "None", "N/A", "n/a", "NA", "NULL", "null", "0", "-1", "123456789", "0123456789", "1234567890", "987654321",
    "Chassis Serial Number", "Not Applicable", "INVALID", "Serial Number", "SerialNumber", "OEM", "XXXXXXXX",
    "xxxxxxxx", "000000000000", "0000-0000-0000", "AAAAAAAAAA", "unknown", "Not Specified", "Not Available",
    "Not Present", "No Asset Tag", "<BAD INDEX>", "<OUT OF SPEC>", "System Product Name", "ABCDEFGH", "", "   ",
    " - . - ",
]


@pytest.mark.parametrize("serial", PLACEHOLDERS)
def test_placeholder_serials_normalise_to_nothing(serial: str) -> None:
    assert normalized_serial(serial) is None


def test_every_listed_placeholder_is_one_and_none_is_a_real_serial_shape() -> None:
    assert all(normalized_serial(p) is None for p in PLACEHOLDER_SERIALS)
    assert {"TOBEFILLEDBYOEM", "SYSTEMSERIALNUMBER", "DEFAULTSTRING", "0123456789"} <= PLACEHOLDER_SERIALS


@pytest.mark.parametrize("serial", PLACEHOLDERS)
def test_placeholder_serials_never_match(serial: str) -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "DESKTOP-7H2K9QA", "serial_number": serial})
    configurations = _configurations({"configuration_id": 1, "name": "FRONT-DESK", "serial_number": serial})
    assert _outcome(_match(devices, configurations), DEVICE_1) == ("create", None, None)
    assert device_duplicate_risk(devices, configurations).empty


@pytest.mark.parametrize("written", ["5cg-1234 xyz", "5CG1234XYZ", "5cg.1234.xyz", " 5Cg1234Xyz\n",
                                     "５ＣＧ１２３４ＸＹＺ"])
def test_serials_compare_without_case_spaces_dashes_or_dots(written: str) -> None:
    assert normalized_serial(written) == "5CG1234XYZ"
    devices = _devices({"id": DEVICE_1, "device_name": "X", "serial_number": written})
    configurations = _configurations({"configuration_id": 12, "name": "Y", "serial_number": "5CG 1234-XYZ"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("match", 12, "serial")
    assert table.loc[DEVICE_1, "reason"] == "serial 5CG1234XYZ equals configuration 12's"


def test_real_serials_are_kept() -> None:
    assert normalized_serial("C02XK1ABJG5J") == "C02XK1ABJG5J"
    assert normalized_serial("7BQ1EX3") == "7BQ1EX3"
    assert normalized_serial(40917) == "40917"
    assert normalized_serial(None) is None and normalized_serial(float("nan")) is None
    assert normalized_serial(["5CG1234XYZ"]) is None


@pytest.mark.parametrize("written", ["3C22FB0A1B2C", "3c:22:fb:0a:1b:2c", "3C-22-FB-0A-1B-2C", "3c22.fb0a.1b2c",
                                     " 3C:22:FB:0A:1B:2C "])
def test_mac_formats(written: str) -> None:
    assert normalized_mac(written) == "3c22fb0a1b2c"


@pytest.mark.parametrize("written", [None, "", "000000000000", "00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF",
                                     "02:00:00:00:00:00", "3C22FB0A1B2", "3C22FB0A1B2C3D", "3C:22-FB:0A:1B:2C",
                                     "3g22fb0a1b2c", "not a mac", "3C22FB0A1B2C" * 1000, 42])
def test_not_a_mac(written: object) -> None:
    assert normalized_mac(written) is None


@pytest.mark.parametrize("name", ["iPhone", "iPad", "localhost", "localhost.localdomain", "Android", "Windows",
                                  "MacBook Pro", "MacBook-Pro-2", "iPhone 13 Pro Max", "Galaxy S21 Ultra", "iPad (2)",
                                  "LAPTOP", "", "  ", "---", None])
def test_generic_names_are_no_evidence(name: str | None) -> None:
    assert normalized_device_name(name) is None


@pytest.mark.parametrize(("name", "normalised"), [
    ("Jane's iPhone", "jane's iphone"), ("DESKTOP-1A2B3C4", "desktop-1a2b3c4"), ("  PC-01  ", "pc-01"),
    ("Front   Desk\tPC", "front desk pc"), ("LAPTOP-ANN", "laptop-ann"), ("Straße-PC", "strasse-pc")])
def test_device_names_fold_case_and_spaces(name: str, normalised: str) -> None:
    assert normalized_device_name(name) == normalised


# ---------------------------------------------------------------------------------------------
# Configuration types

@pytest.mark.parametrize(("operating_system", "model", "manufacturer", "expected"), [
    ("iOS", "iPhone 14", "Apple", "Mobile phone"),
    ("iOS", "iPad Pro (11-inch)", "Apple", "Tablet"),
    ("iPadOS", "iPad Air", "Apple", "Tablet"),
    ("Android", "SM-G991B", "samsung", "Mobile phone"),
    ("Android", "Pixel 7", "Google", "Mobile phone"),
    ("Android", "SM-T510", "samsung", "Tablet"),
    ("Android", "SM-X700", "samsung", "Tablet"),
    ("Android", "Galaxy Tab S7", "samsung", "Tablet"),
    ("Android", "Lenovo Tab M10", "LENOVO", "Tablet"),
    ("Android", "Pixel Tablet", "Google", "Tablet"),
    ("macOS", "MacBook Pro (14-inch, 2021)", "Apple", "Laptop"),
    ("macOS", "MacBookAir10,1", "Apple", "Laptop"),
    ("macOS", "iMac21,1", "Apple", "Desktop"),
    ("macOS", "Mac mini", "Apple", "Desktop"),
    ("macOS", "Macmini9,1", "Apple", "Desktop"),
    ("macOS", "Mac Studio", "Apple", "Desktop"),
    ("macOS", "Mac Pro", "Apple", "Desktop"),
    ("macOS", "Mac14,2", "Apple", "Other"),
    ("Windows", "Latitude 5440", "Dell Inc.", "Laptop"),
    ("Windows", "ThinkPad X1 Carbon Gen 9", "LENOVO", "Laptop"),
    ("Windows", "HP EliteBook 840 G8 Notebook PC", "HP", "Laptop"),
    ("Windows", "HP ProBook 450 G9", "HP", "Laptop"),
    ("Windows", "HP ZBook Fury 15 G7 Mobile Workstation", "HP", "Laptop"),
    ("Windows", "Surface Laptop 5", "Microsoft Corporation", "Laptop"),
    ("Windows", "Surface Pro 9", "Microsoft Corporation", "Laptop"),
    ("Windows", "Surface Go 3", "Microsoft Corporation", "Laptop"),
    ("Windows", "Surface Book 3", "Microsoft Corporation", "Laptop"),
    ("Windows", "XPS 13 9310", "Dell Inc.", "Laptop"),
    ("Windows", "Yoga Slim 7", "LENOVO", "Laptop"),
    ("Windows", "Inspiron 15 3511", "Dell Inc.", "Laptop"),
    ("Windows", "OptiPlex 7090", "Dell Inc.", "Desktop"),
    ("Windows", "ThinkCentre M70q", "LENOVO", "Desktop"),
    ("Windows", "HP EliteDesk 800 G6 Desktop Mini PC", "HP", "Desktop"),
    ("Windows", "HP ProDesk 400 G7", "HP", "Desktop"),
    ("Windows", "Precision 3650 Tower", "Dell Inc.", "Desktop"),
    ("Windows", "Virtual Machine", "Microsoft Corporation", "Virtual machine"),
    ("Windows", "VMware7,1", "VMware, Inc.", "Virtual machine"),
    ("Windows", "VirtualBox", "innotek GmbH", "Virtual machine"),
    ("Windows", "Cloud PC Enterprise 2vCPU/8GB/128GB", "Microsoft Corporation", "Virtual machine"),
    ("Windows Server 2022", "PowerEdge R650", "Dell Inc.", "Server"),
    ("Windows Server 2019", "Virtual Machine", "Microsoft Corporation", "Server"),
    ("Linux", "PowerEdge R650", "Dell Inc.", "Server"),
    ("Windows", "20XW0026GE", "LENOVO", "Other"),
    ("Windows", None, None, "Other"),
    (None, None, None, "Other"),
    ("Windows\u202e", "\x1b[31mOptiPlex" + "x" * 10_000, "Dell", "Desktop"),
])
def test_configuration_type(operating_system: str | None, model: str | None, manufacturer: str | None,
                            expected: str) -> None:
    assert configuration_type(operating_system, model, manufacturer) == expected


# ---------------------------------------------------------------------------------------------
# Skips

def test_skip_reasons() -> None:
    personal = {"managed_device_owner_type": "personal", "operating_system": "iOS"}
    company_ios = {"managed_device_owner_type": "company", "operating_system": "iOS"}
    ipad = {"managed_device_owner_type": "company", "operating_system": "iPadOS"}
    windows = {"managed_device_owner_type": "unknown", "operating_system": "Windows"}
    assert device_skip_reason(personal, False, []) == "personally owned device"
    assert device_skip_reason(personal, True, []) is None
    assert device_skip_reason(company_ios, False, []) is None
    assert device_skip_reason(company_ios, False, ["ios"]) is None
    reason = device_skip_reason(ipad, False, ["iOS", "Windows"])
    assert reason == "operating system 'iPadOS', not among the selected ('iOS', 'Windows')"
    assert device_skip_reason(windows, False, ["windows"]) is None
    assert device_skip_reason({"operating_system": None}, False, ["Windows"]) == (
        "no operating system reported, not among the selected ('Windows')")
    assert device_skip_reason({"operating_system": "Linux"}, False, ["", "  "]) is None


def test_skipped_devices_stay_in_the_table_with_the_reason_but_keep_their_link() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"},
                       {"id": DEVICE_2, "device_name": "B", "serial_number": "5CG9999XYZ"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "5CG1234XYZ"},
                                     {"configuration_id": 13, "serial_number": "5CG9999XYZ"})
    table = _match(devices, configurations, _linked((13, DEVICE_2, True)),
                   skips=["personally owned device", "personally owned device"])
    assert _outcome(table, DEVICE_1) == ("skipped", None, None)
    assert table.loc[DEVICE_1, "reason"] == "personally owned device"
    assert _outcome(table, DEVICE_2) == ("match", 13, "device_id")


# ---------------------------------------------------------------------------------------------
# The match rules

def test_the_linked_device_id_wins_over_a_serial() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "5CG1234XYZ"},
                                     {"configuration_id": 20, "serial_number": "REPLACED99"})
    table = _match(devices, configurations, _linked((20, DEVICE_1, True)))
    assert _outcome(table, DEVICE_1) == ("match", 20, "device_id")


def test_a_link_into_another_organization_is_held() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"})
    table = _match(devices, _configurations(), _linked((77, DEVICE_1, False)))
    assert _outcome(table, DEVICE_1) == ("held", 77, "device_id")
    assert "another organization" in table.loc[DEVICE_1, "reason"]


def test_a_re_enrolled_device_takes_over_the_link_by_serial() -> None:
    old = "44444444-4444-4444-4444-444444444444"
    devices = _devices({"id": DEVICE_2, "device_name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ"})
    table = _match(devices, configurations, _linked((12, old, True)))
    assert _outcome(table, DEVICE_2) == ("match", 12, "serial")
    assert f"linked to device {old}, no longer listed: the link moves to this device" in table.loc[DEVICE_2, "reason"]


def test_the_stale_and_the_new_record_both_listed_hold_the_new_one() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ"},
                       {"id": DEVICE_2, "device_name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ"})
    table = _match(devices, configurations, _linked((12, DEVICE_1, True)))
    assert _outcome(table, DEVICE_1) == ("match", 12, "device_id")
    assert _outcome(table, DEVICE_2) == ("held", 12, "serial")
    assert table.loc[DEVICE_2, "reason"] == (
        f"serial 5CG1234XYZ equals configuration 12's, which is linked to device 'LAPTOP-ANN' ({DEVICE_1}): "
        "probably the same machine enrolled twice; link it or approve a create")


def test_two_configurations_with_one_serial_are_ambiguous() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 13, "serial_number": "5cg1234xyz"},
                                     {"configuration_id": 12, "serial_number": "5CG-1234-XYZ"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("ambiguous", None, "serial")
    assert "2 configurations (12, 13)" in table.loc[DEVICE_1, "reason"]


def test_two_devices_on_one_configuration_at_the_same_level_are_both_ambiguous() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "FRONT-DESK"}, {"id": DEVICE_2, "device_name": "front desk"},
                       {"id": DEVICE_3, "device_name": "Front-Desk"})
    configurations = _configurations({"configuration_id": 12, "name": "front-desk"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("ambiguous", None, "name")
    assert _outcome(table, DEVICE_3) == ("ambiguous", None, "name")
    assert _outcome(table, DEVICE_2) == ("create", None, None)  # "front desk" is another name
    assert "2 devices match configuration 12 by name" in table.loc[DEVICE_1, "reason"]


def test_the_stronger_evidence_keeps_a_configuration_two_devices_match() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "FRONT-DESK"},
                       {"id": DEVICE_2, "device_name": "X", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "name": "FRONT-DESK", "serial_number": "5CG1234XYZ"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_2) == ("match", 12, "serial")
    assert _outcome(table, DEVICE_1) == ("held", 12, "name")
    assert "matches it by serial" in table.loc[DEVICE_1, "reason"]


def test_a_foreign_configuration_is_never_matched_and_names_its_tenant() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "5CG1234XYZ"})
    foreign = pd.DataFrame([(12, OTHER_TENANT, "Fabrikam")], columns=FOREIGN_DEVICE_COLUMNS)
    table = _match(devices, configurations, foreign=foreign)
    assert _outcome(table, DEVICE_1) == ("held", 12, "serial")
    reason = table.loc[DEVICE_1, "reason"]
    assert f"another tenant, 'Fabrikam' ({OTHER_TENANT})" in reason and "never moves a configuration" in reason
    decided = _match(devices, configurations, decisions=_decisions((DEVICE_1, "link", 12)), foreign=foreign)
    assert _outcome(decided, DEVICE_1) == ("match", 12, "decision")


def test_the_name_matches_when_a_serial_is_missing() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "LAPTOP-ANN", "serial_number": "System Serial Number"},
                       {"id": DEVICE_2, "device_name": "PC-01", "serial_number": "5CG1234XYZ"})
    configurations = _configurations({"configuration_id": 12, "name": "laptop-ann", "serial_number": "5CG0000ABC"},
                                     {"configuration_id": 13, "name": "pc-01"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("match", 12, "name")
    assert table.loc[DEVICE_1, "reason"] == "name 'laptop-ann' equals configuration 12's"
    assert _outcome(table, DEVICE_2) == ("match", 13, "name")


def test_a_generic_name_or_a_name_that_is_the_model_never_matches() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "iPhone"},
                       {"id": DEVICE_2, "device_name": "SM-G991B", "model": "SM-G991B"})
    configurations = _configurations({"configuration_id": 12, "name": "iPhone"}, {"configuration_id": 13,
                                                                                  "name": "SM-G991B"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("create", None, None)
    assert _outcome(table, DEVICE_2) == ("create", None, None)


def test_the_same_name_with_another_serial_is_a_create_at_medium_risk() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "LAPTOP-ANN", "serial_number": "5CG1234XYZ",
                        "model": "Latitude 5440"})
    configurations = _configurations({"configuration_id": 12, "name": "LAPTOP-ANN", "serial_number": "PF3ABCDE",
                                      "model": "Latitude 5440"})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("create", None, None)
    risk = device_duplicate_risk(devices, configurations)
    assert list(risk.columns) == DEVICE_RISK_COLUMNS
    row = risk.iloc[0]
    assert (row["device_id"], row["configuration_id"], row["level"], row["score"]) == (DEVICE_1, 12, "medium", 75)
    assert row["reasons"] == ("same name 'LAPTOP-ANN' but another serial (5CG1234XYZ vs PF3ABCDE): a replaced "
                              "machine that kept its name?; same model 'latitude 5440'")


def test_a_mac_matches_unless_several_devices_share_it() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "wi_fi_mac_address": "3C22FB0A1B2C"},
                       {"id": DEVICE_2, "device_name": "B", "ethernet_mac_address": "00-E0-4C-68-00-01"},
                       {"id": DEVICE_3, "device_name": "C", "ethernet_mac_address": "00:e0:4c:68:00:01"})
    configurations = _configurations({"configuration_id": 12, "mac_addresses": ["3c:22:fb:0a:1b:2c"]},
                                     {"configuration_id": 13, "mac_addresses": ["00e04c680001"]})
    table = _match(devices, configurations)
    assert _outcome(table, DEVICE_1) == ("match", 12, "mac")
    assert table.loc[DEVICE_1, "reason"] == "MAC address 3c:22:fb:0a:1b:2c equals configuration 12's"
    assert _outcome(table, DEVICE_2) == ("create", None, None)
    assert _outcome(table, DEVICE_3) == ("create", None, None)


def test_a_shared_mac_is_no_duplicate_risk_either() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "ethernet_mac_address": "00E04C680001"},
                       {"id": DEVICE_2, "device_name": "B", "ethernet_mac_address": "00:E0:4C:68:00:01"})
    configurations = _configurations({"configuration_id": 13, "mac_addresses": ["00e04c680001"]})
    assert device_duplicate_risk(devices, configurations).empty
    alone = devices.head(1)  # the other device of the read matched: the MAC is still shared in the read
    assert device_duplicate_risk(alone, configurations)["level"].tolist() == ["high"]
    assert device_duplicate_risk(alone, configurations, read=devices).empty


def test_a_mac_is_no_evidence_against_two_different_serials() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ",
                        "wi_fi_mac_address": "3C22FB0A1B2C"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "PF3ABCDE",
                                      "mac_addresses": ["3c22fb0a1b2c"]})
    assert _outcome(_match(devices, configurations), DEVICE_1) == ("create", None, None)
    risk = device_duplicate_risk(devices, configurations)
    assert risk["level"].tolist() == ["medium"] and "same MAC address 3c:22:fb:0a:1b:2c" in risk["reasons"].iloc[0]


def test_decisions_win() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A", "serial_number": "5CG1234XYZ"},
                       {"id": DEVICE_2, "device_name": "B", "serial_number": "PF3ABCDE"},
                       {"id": DEVICE_3, "device_name": "C", "serial_number": "PF3ZZZZZ"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "5CG1234XYZ"},
                                     {"configuration_id": 13, "serial_number": "PF3ZZZZZ"})
    decisions = _decisions((DEVICE_2, "link", 12), (DEVICE_3, "create", None))
    table = _match(devices, configurations, _linked(), decisions)
    assert _outcome(table, DEVICE_2) == ("match", 12, "decision")
    # The device whose serial finds the decided configuration is held, naming the decided device.
    assert _outcome(table, DEVICE_1) == ("held", 12, "serial")
    assert "an analyst's decision links to device 'B'" in table.loc[DEVICE_1, "reason"]
    assert _outcome(table, DEVICE_3) == ("create", None, "decision")


def test_a_decision_moves_a_linked_configuration_and_holds_its_device() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A"}, {"id": DEVICE_2, "device_name": "B"})
    configurations = _configurations({"configuration_id": 12})
    table = _match(devices, configurations, _linked((12, DEVICE_1, True)), _decisions((DEVICE_2, "link", 12)))
    assert _outcome(table, DEVICE_2) == ("match", 12, "decision")
    assert _outcome(table, DEVICE_1) == ("held", 12, "device_id")
    assert "links configuration 12, linked to this device until now, to device 'B'" in table.loc[DEVICE_1, "reason"]


def test_a_decision_for_a_configuration_outside_the_organization_is_held() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "A"})
    table = _match(devices, _configurations({"configuration_id": 12}), decisions=_decisions((DEVICE_1, "link", 99)))
    assert _outcome(table, DEVICE_1) == ("held", 99, "decision")


def test_nothing_found_is_a_create() -> None:
    devices = _devices({"id": DEVICE_1, "device_name": "NEW-PC", "serial_number": "5CG1234XYZ"})
    table = _match(devices, _configurations({"configuration_id": 12, "name": "OLD-PC", "serial_number": "PF3ABCDE"}))
    assert _outcome(table, DEVICE_1) == ("create", None, None)
    assert table["configuration_id"].dtype == "Int64"


# ---------------------------------------------------------------------------------------------
# Duplicate risk and its holds

def test_duplicate_risk_levels() -> None:
    creating = _devices(
        {"id": DEVICE_1, "device_name": "NEW-1", "serial_number": "5CG1234XYZ"},
        {"id": DEVICE_2, "device_name": "NEW-2", "serial_number": "5CG12O4XYZ"},
        {"id": DEVICE_3, "device_name": "NEW-3", "serial_number": "PF3ABCDE", "model": "Latitude 5440",
         "user_id": "user-3"})
    configurations = _configurations(
        {"configuration_id": 12, "name": "OLD-1", "serial_number": "5CG1234XYZ"},
        {"configuration_id": 13, "name": "OLD-2", "serial_number": "5CG1204XYZ"},
        {"configuration_id": 14, "name": "OLD-3", "serial_number": "PF3ABCDF"},
        {"configuration_id": 15, "name": "OLD-4", "model": "latitude  5440", "primary_contact_id": 7})
    risk = device_duplicate_risk(creating, configurations, {"user-3": 7})
    found = {(r.device_id, r.configuration_id): (r.score, r.level) for r in risk.itertuples()}
    assert found[(DEVICE_1, 12)] == (90, "high")
    assert found[(DEVICE_2, 13)] == (70, "medium")  # 5CG12O4XYZ reads 5CG1204XYZ
    assert found[(DEVICE_1, 13)] == (60, "medium")  # one character apart
    assert found[(DEVICE_3, 14)] == (60, "medium")
    assert found[(DEVICE_3, 15)] == (40, "low")
    assert risk["device_id"].tolist()[:1] == [DEVICE_1]
    assert risk[risk["device_id"] == DEVICE_1]["score"].tolist() == [90, 60]
    same = risk[(risk["device_id"] == DEVICE_1) & (risk["configuration_id"] == 12)]["reasons"].iloc[0]
    assert same == "same serial 5CG1234XYZ (configuration named 'OLD-1')"
    assert "same primary contact (contact 7) and model 'latitude 5440'" in \
        risk[risk["configuration_id"] == 15]["reasons"].iloc[0]
    assert device_duplicate_risk(creating, configurations)["configuration_id"].tolist().count(15) == 0


def test_a_serial_one_character_off_with_the_same_name_is_a_likely_duplicate() -> None:
    creating = _devices({"id": DEVICE_1, "device_name": "LAPTOP-ANN", "serial_number": "5CG12O4XYZ"})
    configurations = _configurations({"configuration_id": 12, "name": "laptop-ann", "serial_number": "5CG1234XYZ"})
    assert _outcome(_match(creating, configurations), DEVICE_1) == ("create", None, None)  # two real serials
    row = device_duplicate_risk(creating, configurations).iloc[0]
    assert (row["score"], row["level"]) == (100, "high")
    assert row["reasons"] == "serial 5CG12O4XYZ is one character from 5CG1234XYZ; same name 'LAPTOP-ANN'"


def test_duplicate_risk_scores_only_blocked_pairs_and_drops_common_keys() -> None:
    creating = _devices({"id": DEVICE_1, "device_name": "FRONT-DESK"})
    many = _configurations(*({"configuration_id": i, "name": "front-desk", "serial_number": f"SN{i:06d}X"}
                             for i in range(MAX_BLOCK_CONFIGURATIONS + 1)))
    assert device_duplicate_risk(creating, many).empty  # the name key is on too many configurations
    few = many.head(5)
    risk = device_duplicate_risk(creating, few)
    assert risk["configuration_id"].tolist() == [0, 1, 2]  # max_candidates, by id on equal scores
    assert device_duplicate_risk(creating, few, max_candidates=5)["level"].tolist() == ["low"] * 5
    unrelated = _configurations({"configuration_id": 1, "name": "OTHER", "serial_number": "ZZZ99999"})
    assert device_duplicate_risk(creating, unrelated).empty
    with pytest.raises(ValueError):
        device_duplicate_risk(creating, few, max_candidates=0)


def test_no_creating_devices_or_no_configurations_give_an_empty_frame() -> None:
    risk = device_duplicate_risk(_devices(), _configurations())
    assert list(risk.columns) == DEVICE_RISK_COLUMNS and risk.empty


def _risky() -> tuple[pd.DataFrame, pd.DataFrame]:
    devices = _devices({"id": DEVICE_1, "device_name": "NEW-1", "serial_number": "5CG1234XYZ"},
                       {"id": DEVICE_2, "device_name": "NEW-2", "wi_fi_mac_address": "3C22FB0A1B2C"})
    configurations = _configurations({"configuration_id": 12, "serial_number": "5CG1234XYZ"},
                                      {"configuration_id": 13, "mac_addresses": ["3c22fb0a1b2c"]})
    return devices, configurations


def test_a_likely_duplicate_is_held_or_created_by_the_policy_but_a_decided_create_never_held() -> None:
    devices, configurations = _risky()
    matches = pd.DataFrame({
        "device_id": [DEVICE_1, DEVICE_2], "device_name": ["NEW-1", "NEW-2"], "serial_number": ["5CG1234XYZ", None],
        "action": ["create", "create"], "configuration_id": pd.array([pd.NA, pd.NA], dtype="Int64"),
        "matched_on": [None, "decision"], "reason": ["no configuration", "creation approved by an analyst"]},
        columns=DEVICE_MATCH_COLUMNS)
    risk = device_duplicate_risk(devices, configurations)
    assert risk["level"].tolist() == ["high", "high"]
    held = matches.copy()
    _hold_likely_duplicates(held, risk, hold=True)
    assert (held.at[0, "action"], held.at[0, "configuration_id"], held.at[0, "matched_on"]) == (
        "held", 12, "duplicate_risk")
    assert held.at[0, "reason"].startswith("likely duplicate of configuration 12 (score 90: same serial 5CG1234XYZ")
    assert held.at[0, "reason"].endswith("link the device to it or approve the create")
    assert held.at[1, "action"] == "create" and held.at[1, "reason"] == "creation approved by an analyst"
    created = matches.copy()
    _hold_likely_duplicates(created, risk, hold=False)
    assert created.at[0, "action"] == "create" and pd.isna(created.at[0, "configuration_id"])
    assert "although at high risk of duplicating configuration 12" in created.at[0, "reason"]


# ---------------------------------------------------------------------------------------------
# Hostile values

HOSTILE = ["\u202eevil\u202c-PC", "LAPTOP\r\nINJECTED: yes", "\x1b]0;title\x07PC", "[link](http://x) | <b>",
           "A" * 10_000, "\x00\x01\x02", "名前-PC", "PC\u200b-01"]


def test_hostile_values_never_fail_matching_and_reasons_stay_one_clean_line() -> None:
    devices = _devices(*({"id": f"{i:08d}-0000-0000-0000-000000000000", "device_name": name, "serial_number": name,
                          "wi_fi_mac_address": name, "model": name} for i, name in enumerate(HOSTILE)),
                       {"id": "\u202e\n<script>", "device_name": HOSTILE[0], "serial_number": "\x1b[2J" + "9" * 5000})
    configurations = _configurations(*({"configuration_id": i, "name": name, "serial_number": name, "model": name,
                                        "mac_addresses": [name, None, 3]} for i, name in enumerate(HOSTILE)))
    foreign = pd.DataFrame([(0, OTHER_TENANT, "Evil\r\n\u202eCorp" + "x" * 10_000)], columns=FOREIGN_DEVICE_COLUMNS)
    table = _match(devices, configurations, foreign=foreign)
    risk = device_duplicate_risk(devices, configurations)
    reasons = table["reason"].tolist() + risk["reasons"].tolist()
    for reason in reasons:
        assert reason.isprintable() and "\u202e" not in reason and "\u200b" not in reason
        assert len(reason) < 1000
    assert _outcome(table, "00000000-0000-0000-0000-000000000000")[0] == "held"  # the foreign configuration
    assert "'Evil Corp" in table.loc["00000000-0000-0000-0000-000000000000", "reason"]


# ---------------------------------------------------------------------------------------------
# Row order does not count

SERIALS = ["5CG1234XYZ", "5CG1234XYZ", "5CG12O4XYZ", "PF3ABCDE", "To be filled by O.E.M.", None]
NAMES = ["LAPTOP-ANN", "laptop-ann", "FRONT-DESK", "iPhone", None]
MACS = ["3C22FB0A1B2C", "3c:22:fb:0a:1b:2d", None]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, list]:
    n_devices = draw(st.integers(1, 6))
    n_configurations = draw(st.integers(0, 6))
    device_ids = [f"{i:08d}-1111-1111-1111-111111111111" for i in range(n_devices)]
    devices = _devices(*({"id": d, "device_name": draw(st.sampled_from(NAMES)),
                          "serial_number": draw(st.sampled_from(SERIALS)),
                          "wi_fi_mac_address": draw(st.sampled_from(MACS))} for d in device_ids))
    configurations = _configurations(*({"configuration_id": c, "name": draw(st.sampled_from(NAMES)),
                                        "serial_number": draw(st.sampled_from(SERIALS)),
                                        "mac_addresses": [m for m in [draw(st.sampled_from(MACS))] if m]}
                                       for c in range(n_configurations)))
    configuration_ids = [*range(n_configurations), 50]  # 50: linked somewhere, not in the organization
    linked_devices = draw(st.lists(st.sampled_from([*device_ids, "gone-device"]), unique=True, max_size=3))
    linked = _linked(*((draw(st.sampled_from(configuration_ids)), d, draw(st.booleans())) for d in linked_devices))
    decided = draw(st.lists(st.sampled_from(device_ids), unique=True, max_size=2))
    decisions = _decisions(*((d, draw(st.sampled_from(["link", "create"])), draw(st.sampled_from(configuration_ids)))
                             for d in decided))
    owned = draw(st.lists(st.sampled_from(configuration_ids), unique=True, max_size=2))
    foreign = pd.DataFrame([(c, OTHER_TENANT, "Fabrikam") for c in owned], columns=FOREIGN_DEVICE_COLUMNS)
    skips = [draw(st.sampled_from([None, None, "personally owned device"])) for _ in device_ids]
    return devices, configurations, linked, decisions, foreign, skips


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    order = list(range(len(frame)))
    random.Random(seed).shuffle(order)
    return frame.iloc[order]


@settings(derandomize=True, database=None, deadline=None, max_examples=50)
@given(case=_cases(), seed=st.integers(0, 2**16))
def test_row_order_does_not_count(case: tuple, seed: int) -> None:
    devices, configurations, linked, decisions, foreign, skips = case
    skip_series = pd.Series(skips, index=devices.index, dtype=object)
    first = match_devices(devices, configurations, linked, skip_series, decisions, foreign)
    shuffled_devices = _shuffled(devices, seed)
    second = match_devices(shuffled_devices, _shuffled(configurations, seed + 1), _shuffled(linked, seed + 2),
                           skip_series, _shuffled(decisions, seed + 3), _shuffled(foreign, seed + 4))
    assert second["device_id"].tolist() == shuffled_devices["id"].tolist()  # in the devices' order
    pd.testing.assert_frame_equal(first.sort_values("device_id").reset_index(drop=True),
                                  second.sort_values("device_id").reset_index(drop=True))
    creating = devices[devices["id"].isin(first.loc[first["action"] == "create", "device_id"])]
    risk = device_duplicate_risk(creating, configurations)
    other = device_duplicate_risk(_shuffled(creating, seed), _shuffled(configurations, seed + 5))
    key = ["device_id", "configuration_id"]
    pd.testing.assert_frame_equal(risk.sort_values(key).reset_index(drop=True),
                                  other.sort_values(key).reset_index(drop=True))
