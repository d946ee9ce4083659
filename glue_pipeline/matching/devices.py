"""Intune managed device to configuration, within the organization matched to the device's tenant.

Order: an analyst's decision for the device (link: that configuration; create: a new one,
whatever the device's link or evidence matches); the Intune device id already linked to a configuration
(matched_on 'device_id'); the serial number ('serial'); a MAC address, Wi-Fi or Ethernet ('mac');
the device name ('name'). The first level that finds any candidate decides: one configuration is a
match, several are ambiguous (held for an analyst, the candidates named), never guessed. Devices
the options leave out stay in the table with the reason ('skipped').

What counts as evidence:
- a serial is compared normalised (normalized_serial: letters and digits, case ignored);
  placeholders (PLACEHOLDER_SERIALS and the patterns there) never match anything;
- a MAC is compared normalised (normalized_mac); a MAC that several devices of the read report
  (a USB or dock Ethernet adapter moved between machines, a shared virtual adapter) never matches;
- a name (normalized_device_name) that is only a model or a default name ("iPhone",
  "MacBook-Pro", "localhost") is no evidence, nor is a name equal to the machine's own model;
- a MAC or a name is evidence only when the two sides do not have two different real serials:
  two serials are two machines (a dock's MAC, or a replacement that kept the old one's name, is a
  create, which duplicate risk then explains).

Reservations: a configuration linked to another device of this read, or that an analyst's decision
links to another device of the read, is that device's. A device whose evidence finds it is held
(the same machine enrolled twice: its stale record and its new one are both listed) until an
analyst links it or approves a create. A configuration whose linked device is no longer listed
(re-enrolled under a new Intune id) is free: the device with its serial matches it, and the link
moves to that device. Several devices matching one configuration are all ambiguous when they
match at the same level; otherwise the strongest evidence keeps it and the others are held.

Decisions win: a configuration an analyst links to a device is matched by no other device's
evidence, and a device linked to it until then is held, or skipped when the options leave it out.

Isolation: a configuration linked to a device of another tenant is never matched by evidence. A
device that would match one is held with a reason naming that tenant; only an analyst's link
decision moves the configuration (or an approval creates a new one).

Duplicate risk (device_duplicate_risk) scores the devices that would become new configurations
against the organization's configurations, pairs found by blocking keys only (the serial, a MAC,
the name, the serial's one-deletion neighbourhood, the primary contact with the model), each kind
of evidence declared once as a RiskLevel with its points and reason.

Every value quoted in a reason (names, serials, tenant names, ids) comes from a customer's tenant
or the store: it is shown through render.terminal_text and cut (_shown), so a reason stays one line.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple, SupportsInt, TypedDict

import pandas as pd
from rapidfuzz.distance import OSA

from glue_pipeline import frames
from glue_pipeline.columns import (
    DEVICE_DECISION_COLUMNS,
    DEVICE_MATCH_COLUMNS,
    DEVICE_RISK_COLUMNS,
    FOREIGN_DEVICE_COLUMNS,
)
from glue_pipeline.matching.duplicates import HIGH_RISK, MEDIUM_RISK, MIN_RISK_SCORE
from glue_pipeline.render import terminal_text
from glue_pipeline.vocabulary import ContactAction, ContactDecisionAction, DeviceMatchedOn

# What a configuration is (configurations.configuration_type), from its device's OS and model.
ConfigurationType = Literal["Laptop", "Desktop", "Mobile phone", "Tablet", "Server", "Virtual machine", "Other"]
# What the sync does with a device: the same words as for a user.
DeviceAction = ContactAction

# ---------------------------------------------------------------------------------------------
# Serial numbers, MAC addresses and names as evidence

# Placeholders firmware and vendors write where a serial was never programmed, normalised
# (normalized_serial's form). Every unit of an affected model reports the same one, so none is
# evidence. Gathered from the lists asset tools keep: GLPI Agent's isInvalidBiosValue
# (glpi-project/glpi-agent, lib/GLPI/Agent/Tools/Generic.pm: N/A, None, Unknown, Not Specified,
# Not Present, Not Available, Default string, System Serial Number, Chassis Serial Number, No Asset
# Tag, <BAD INDEX>, <OUT OF SPEC>, To Be Filled By O.E.M. and the System/Chassis product, vendor and
# version echoes); Fleet's osquery ingestion (fleetdm/fleet, server/service/osquery_utils/queries.go:
# any serial containing "default", "serial" or "string", and "-1" when WMI cannot be read); the
# SMBIOS fillers EVE and Mondoo drop (lf-edge/eve#6381, mondoohq/mql#8466: counting runs such as
# 0123456789, "0", "None"); and ServiceNow Discovery's invalid serial rule (a serial of one
# repeated character). Beyond this set, normalized_serial also drops: fewer than MIN_SERIAL_LENGTH
# letters and digits ("0", "-1", "NA"); one character repeated (0000000000, XXXXXXXX); a counting
# run (123456789, 1234567890, 987654321, ABCDEFGH); and anything containing one of
# PLACEHOLDER_PARTS ("Default Serial", "SerialNumber#", "To be filled by O.E.M").
PLACEHOLDER_SERIALS: frozenset[str] = frozenset({
    "0", "NA", "NONE", "NULL", "NIL", "EMPTY", "UNKNOWN", "UNDEFINED", "INVALID", "TBD", "OEM", "SN",
    "NOTSPECIFIED", "NOTAPPLICABLE", "NOTAVAILABLE", "NOTPRESENT", "NOTSET", "NOSERIAL",
    "TOBEFILLEDBYOEM", "TOBEFILLEDBYOEMTOBEFILLEDBYOEM", "OEMOEM",
    "SYSTEMSERIALNUMBER", "CHASSISSERIALNUMBER", "SERIALNUMBER", "SERIAL", "DEFAULTSTRING", "DEFAULT",
    "SYSTEMPRODUCTNAME", "SYSTEMMANUFACTURER", "SYSTEMVERSION", "SYSTEMNAME",
    "CHASSISMANUFACTURER", "CHASSISMANUFACTURE", "CHASSISVERSION", "NOASSETTAG", "BADINDEX",
    "OUTOFSPEC", "OUTOFSPECOUTOFSPEC",
    "123456789", "0123456789", "1234567890", "12345678", "000000000000", "XXXXXXXX",
})
# Words no real serial contains (Fleet's rule, with the O.E.M. filler).
PLACEHOLDER_PARTS = ("DEFAULT", "SERIAL", "STRING", "TOBEFILLED")
MIN_SERIAL_LENGTH = 4  # fewer letters and digits identify no machine among thousands
_COUNTING = ("0123456789" * 4, "9876543210" * 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ZYXWVUTSRQPONMLKJIHGFEDCBA")
_NOT_SERIAL = re.compile(r"[^0-9A-Z]+")

# MACs: 3C22FB0A1B2C, 3c:22:fb:0a:1b:2c, 3C-22-FB-0A-1B-2C, 3c22.fb0a.1b2c.
_MAC = re.compile(r"[0-9a-f]{12}|[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}|"
                  r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}")
# Not a NIC's: all zeros, broadcast, and the fixed address iOS gives apps instead of the real one.
PLACEHOLDER_MACS = frozenset({"000000000000", "ffffffffffff", "020000000000"})

# Names that are no evidence: a name made only of these words (no digits: "PC-01" is a naming
# scheme), or one with a model family word and otherwise only model words and model numbers
# ("iPhone", "iPhone 13 Pro Max", "MacBook-Pro-2", "Galaxy S21 Ultra", "iPad (2)").
GENERIC_NAME_WORDS = frozenset({
    "localhost", "localdomain", "unknown", "none", "null", "default", "device", "computer", "desktop",
    "laptop", "notebook", "pc", "phone", "mobile", "tablet", "workstation", "android", "windows",
    "iphone", "ipad", "mac", "macbook", "my",
})
MODEL_FAMILY_WORDS = frozenset({
    "iphone", "ipad", "ipod", "galaxy", "pixel", "macbook", "macbookpro", "macbookair", "imac", "mac",
    "macmini", "surface", "chromebook", "android", "windows", "thinkpad", "nexus", "oneplus", "redmi",
    "xperia", "moto",
})
MODEL_WORDS = MODEL_FAMILY_WORDS | GENERIC_NAME_WORDS | frozenset({
    "touch", "tab", "pro", "max", "plus", "ultra", "air", "mini", "studio", "se", "lite", "fe", "note",
    "fold", "flip", "edge", "inch", "gen", "generation", "book", "go", "new", "apple", "samsung",
    "google", "microsoft", "lenovo", "dell", "hp", "huawei", "xiaomi", "motorola", "nokia", "sony",
    "x", "xr", "xs", "s", "e", "c", "a", "m", "z",
})
_MODEL_NUMBER = re.compile(r"[a-z]{0,2}\d{1,4}[a-z]{0,2}")  # 13, s21, a52, 5g, x1, 2nd
_NAME_TOKEN = re.compile(r"[^\W_]+")


def _text(value: object) -> str | None:
    """Text of a cell: str as is, whole numbers written out; None for anything else (None, NaN, NA,
    a list)."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    return None


def normalized_serial(value: object) -> str | None:
    """Upper-case alphanumerics only (spaces, dashes, dots dropped); None for empty or placeholder.

    Compatibility forms are folded first (NFKC: full-width digits are digits); what is not an ASCII
    letter or digit is dropped. Placeholders: PLACEHOLDER_SERIALS and the patterns named there."""
    text = _text(value)
    if text is None:
        return None
    serial = _NOT_SERIAL.sub("", unicodedata.normalize("NFKC", text).upper())
    if (len(serial) < MIN_SERIAL_LENGTH or serial in PLACEHOLDER_SERIALS or len(set(serial)) == 1
            or any(serial in run for run in _COUNTING) or any(part in serial for part in PLACEHOLDER_PARTS)):
        return None
    return serial


def normalized_mac(value: object) -> str | None:
    """12 lower-case hex digits from any of 3C22FB0A1B2C / 3c:22:fb:0a:1b:2c / 3C-22-FB-0A-1B-2C /
    3c22.fb0a.1b2c; None for empty, all-zero, broadcast ff..ff, 02:00:00:00:00:00 (what iOS
    reports instead of its address), or not a MAC."""
    text = _text(value)
    if text is None or len(text) > 64:
        return None
    text = text.strip().lower()
    if not _MAC.fullmatch(text):
        return None
    mac = re.sub(r"[:.-]", "", text)
    return None if mac in PLACEHOLDER_MACS else mac


def normalized_device_name(value: object) -> str | None:
    """Case-folded, trimmed, inner whitespace collapsed; None for empty or generic names.

    Control and invisible characters are dropped (render.terminal_text) and compatibility forms
    folded (NFKC). Generic: a name made only of GENERIC_NAME_WORDS ("localhost", "Windows",
    "Laptop"), or one with a MODEL_FAMILY_WORDS word and otherwise only MODEL_WORDS and model
    numbers ("iPhone", "iPhone 13 Pro Max", "MacBook-Pro-2", "Galaxy S21 Ultra"): a model name is
    no evidence. "Jane's iPhone", "DESKTOP-1A2B3C4" and "PC-01" are names."""
    text = _text(value)
    if text is None:
        return None
    name = " ".join(terminal_text(unicodedata.normalize("NFKC", text)).casefold().split())
    return None if not name or _generic(name) else name


def _generic(name: str) -> bool:
    tokens = _NAME_TOKEN.findall(name)
    if not tokens or all(token in GENERIC_NAME_WORDS for token in tokens):
        return True
    return any(token in MODEL_FAMILY_WORDS for token in tokens) and all(
        token in MODEL_WORDS or _MODEL_NUMBER.fullmatch(token) for token in tokens)


def _model_key(value: object) -> str | None:
    """A model as compared: case-folded, whitespace collapsed."""
    text = _text(value)
    model = " ".join(terminal_text(text).casefold().split()) if text is not None else ""
    return model or None


def _name_evidence(name: object, model: object) -> str | None:
    """The name as evidence: normalised, and not the machine's own model ("SM-G991B")."""
    normalized = normalized_device_name(name)
    if normalized is None:
        return None
    model_key = _model_key(model)
    return None if model_key is not None and normalized == model_key else normalized


def _conflicting(serial: str | None, other: str | None) -> bool:
    """Two real serials that differ: two machines."""
    return serial is not None and other is not None and serial != other


# ---------------------------------------------------------------------------------------------
# Configuration types

# Searched in the model and the manufacturer, case ignored, in this order after the OS rules.
_VIRTUAL = re.compile(r"virtual ?machine|vmware|virtualbox|innotek|cloud ?pc|\bkvm\b|qemu|parallels|hvm domu|"
                      r"\bxen\b|bochs|amazon ec2|google compute engine|openstack", re.IGNORECASE)
_SERVER_MODEL = re.compile(r"poweredge|proliant|thinksystem|primergy|\bserver\b", re.IGNORECASE)
_LAPTOP = re.compile(
    r"laptop|notebook|latitude|thinkpad|thinkbook|ideapad|elitebook|probook|zbook|surface ?(laptop|book|pro|go)|"
    r"\bxps ?1[3-7]\b|\bxps 9\d{3}\b|\byoga\b|inspiron ?1[1-8]\b|vostro ?1[3-6]\b|chromebook|macbook|spectre|"
    r"envy x360|dragonfly|galaxy ?book|matebook|zenbook|vivobook|travelmate|\bgram\b", re.IGNORECASE)
_DESKTOP = re.compile(
    r"optiplex|thinkcentre|thinkstation|ideacentre|elitedesk|prodesk|eliteone|proone|precision ?(\d+ )?tower|"
    r"\btower\b|desktop|all-in-one|\baio\b|imac|mac ?mini|\bmac ?pro\b|mac ?studio|surface ?studio|\bnuc\b|"
    r"\bz[1-8] g\d", re.IGNORECASE)
_ANDROID_TABLET = re.compile(r"\btab\b|tablet|\bpad\b|\bsm-[tpx]\d|\btb-?[a-z]?\d|ideatab|mediapad|matepad|"
                             r"nexus ?(7|9|10)\b|\bkf[a-z]{2,5}\b", re.IGNORECASE)


def configuration_type(operating_system: object, model: object, manufacturer: object) -> ConfigurationType:
    """Laptop | Desktop | Mobile phone | Tablet | Server | Virtual machine | Other, from the OS
    and the model.

    iPadOS: Tablet. iOS: Mobile phone, Tablet when the model says iPad. Android: Mobile phone,
    Tablet for a known tablet model (Galaxy Tab and Samsung's SM-T/P/X codes, Lenovo Tab and TB-
    codes, Pixel Tablet, Xiaomi/Redmi/OnePlus Pad, MediaPad/MatePad, Nexus 7/9/10, Amazon Fire KF
    codes). Any other OS: Server for a server OS (Windows Server: the role wins over the machine, a
    server VM is a Server); then, from the model and the manufacturer: Virtual machine (Hyper-V's
    'Virtual Machine', VMware, VirtualBox, Windows 365 'Cloud PC', KVM/QEMU, Parallels, Xen), Server
    (PowerEdge, ProLiant, ThinkSystem, PRIMERGY), Laptop (MacBook, Latitude, ThinkPad, EliteBook,
    ProBook, ZBook, Surface Laptop/Book/Pro/Go, XPS 13-17, Yoga, Inspiron 11-18, Chromebook, ...),
    Desktop (iMac, Mac mini/Pro/Studio, OptiPlex, ThinkCentre, EliteDesk, ProDesk, Precision Tower,
    NUC, ...). Without such evidence: Other (a Lenovo machine type such as 20XW0026GE says nothing)."""
    system = " ".join((_text(operating_system) or "").casefold().split())
    hardware = " ".join(filter(None, (_text(model), _text(manufacturer))))
    if system.startswith("ipados"):
        return "Tablet"
    if system.startswith("ios"):
        return "Tablet" if "ipad" in hardware.casefold() else "Mobile phone"
    if system.startswith("android"):
        return "Tablet" if _ANDROID_TABLET.search(hardware) else "Mobile phone"
    if "server" in system:
        return "Server"
    kinds: tuple[tuple[re.Pattern[str], ConfigurationType], ...] = (
        (_VIRTUAL, "Virtual machine"), (_SERVER_MODEL, "Server"), (_LAPTOP, "Laptop"), (_DESKTOP, "Desktop"))
    return next((kind for pattern, kind in kinds if pattern.search(hardware)), "Other")


# ---------------------------------------------------------------------------------------------
# Skips

def device_skip_reason(device: Mapping[str, object], include_personal: bool,
                       operating_systems: Sequence[str]) -> str | None:
    """Why the options leave the device out: personally owned (unless include_personal), an
    operating system not in the filter (case-insensitive prefix: 'Windows' covers 'Windows',
    'iOS' not 'iPadOS'); None when synced. Empty filter: every OS."""
    owner = _text(device.get("managed_device_owner_type"))
    if not include_personal and owner is not None and owner.strip().casefold() == "personal":
        return "personally owned device"
    wanted = [f.strip().casefold() for f in operating_systems if f and f.strip()]
    if wanted:
        system = _text(device.get("operating_system")) or ""
        if not system.strip().casefold().startswith(tuple(wanted)):
            shown = f"operating system {_shown(system)}" if system.strip() else "no operating system reported"
            return f"{shown}, not among the selected ({', '.join(_shown(f) for f in operating_systems if f)})"
    return None


# ---------------------------------------------------------------------------------------------
# Matching

class _Link(NamedTuple):
    """A row of match_devices' linked (LINKED_DEVICE_COLUMNS)."""

    configuration_id: SupportsInt
    device_id: str
    in_organization: bool
    created_by: str  # the configuration's: store or microsoft


class _Decision(NamedTuple):
    """A row of match_devices' decisions (DEVICE_DECISION_COLUMNS)."""

    device_id: str
    action: ContactDecisionAction
    configuration_id: SupportsInt  # read for a link only


class _Foreign(NamedTuple):
    """A row of match_devices' foreign (FOREIGN_DEVICE_COLUMNS)."""

    configuration_id: SupportsInt
    tenant_id: str
    tenant_name: str | None


@dataclass(frozen=True)
class _Machine:
    """A device or a configuration as evidence compares them."""

    key: str  # the device id, or the configuration id as text
    label: str  # how a reason names it: "device 'LAPTOP-1' (id)", "configuration 12"
    serial: str | None
    macs: frozenset[str]
    name: str | None  # normalised, None when generic


def _device_machine(device: Mapping[str, Any]) -> _Machine:
    macs = {normalized_mac(device.get(column)) for column in ("wi_fi_mac_address", "ethernet_mac_address")}
    return _Machine(str(device["id"]), _device_label(device.get("id"), device.get("device_name")),
                    normalized_serial(device.get("serial_number")), frozenset(m for m in macs if m),
                    _name_evidence(device.get("device_name"), device.get("model")))


def _configuration_machine(configuration: Mapping[str, Any]) -> _Machine:
    listed = configuration.get("mac_addresses")
    macs = {normalized_mac(m) for m in listed} if isinstance(listed, (list, tuple)) else set()
    configuration_id = int(configuration["configuration_id"])
    return _Machine(str(configuration_id), f"configuration {configuration_id}",
                    normalized_serial(configuration.get("serial_number")), frozenset(m for m in macs if m),
                    _name_evidence(configuration.get("name"), configuration.get("model")))


def _device_label(device_id: object, name: object) -> str:
    shown_name = _text(name)
    return f"device {_shown(shown_name)} ({_plain(device_id)})" if shown_name else f"device {_plain(device_id)}"


EvidenceLevel = Literal["serial", "mac", "name"]
# The evidence levels after the decision and the linked device id, strongest first.
EVIDENCE_LEVELS: tuple[EvidenceLevel, ...] = ("serial", "mac", "name")
_RANK: dict[DeviceMatchedOn, int] = {"decision": 0, "device_id": 1, "serial": 2, "mac": 3, "name": 4}


class _Index:
    """The organization's configurations, this tenant's links and decisions, for one read."""

    def __init__(self, devices: pd.DataFrame, configurations: pd.DataFrame, linked: pd.DataFrame,
                 decisions: pd.DataFrame, foreign: pd.DataFrame) -> None:
        records = frames.records(devices)
        self.devices = {str(d["id"]): _device_machine(d) for d in records}
        listed = self.devices.keys()
        self.configurations = {int(c["configuration_id"]): _configuration_machine(c)
                               for c in frames.records(configurations)}
        self.by_key: dict[EvidenceLevel, dict[str, set[int]]] = {level: {} for level in EVIDENCE_LEVELS}
        for configuration_id, machine in self.configurations.items():
            for level, keys in _keys(machine).items():
                for key in keys:
                    self.by_key[level].setdefault(key, set()).add(configuration_id)
        self.shared_macs = _shared_macs(self.devices.values())

        links = list(frames.rows(linked, _Link))
        self.linked_by_device = {str(link.device_id): link for link in links}
        self.decisions = {str(row.device_id): row for row in frames.rows(decisions, _Decision)}
        # Configurations of the organization that link decisions give to devices of the read.
        self.decided: dict[int, set[str]] = {}
        for device_id, decision in self.decisions.items():
            if decision.action != "link" or device_id not in listed:
                continue
            if int(decision.configuration_id) in self.configurations:
                self.decided.setdefault(int(decision.configuration_id), set()).add(device_id)
        # Configurations linked to devices of the read (theirs), and to devices no longer listed
        # (free: the link moves to the device that matches).
        self.held_by: dict[int, set[str]] = {}
        self.stale: dict[int, set[str]] = {}
        for link in links:
            if link.in_organization:
                target = self.held_by if str(link.device_id) in listed else self.stale
                target.setdefault(int(link.configuration_id), set()).add(str(link.device_id))
        self.foreign = {int(row.configuration_id): (str(row.tenant_id), row.tenant_name)
                        for row in frames.rows(foreign, _Foreign)}

    def candidates(self, level: EvidenceLevel, device: _Machine) -> set[int]:
        """The configurations the device's evidence of this level finds."""
        keys = _keys(device)[level]
        if level == "mac":
            keys = keys - self.shared_macs
        found = set().union(*(self.by_key[level].get(key, set()) for key in keys))
        if level == "serial":
            return found
        return {c for c in found if not _conflicting(device.serial, self.configurations[c].serial)}

    def label(self, device_id: str) -> str:
        machine = self.devices.get(device_id)
        return machine.label if machine is not None else f"device {_plain(device_id)}"


def _shared_macs(devices: Iterable[_Machine]) -> frozenset[str]:
    """MACs that several devices report: an adapter (a dock, a USB Ethernet adapter), not a machine."""
    counts = Counter(mac for device in devices for mac in device.macs)
    return frozenset(mac for mac, count in counts.items() if count > 1)


def _keys(machine: _Machine) -> dict[EvidenceLevel, set[str]]:
    return {"serial": {machine.serial} if machine.serial else set(), "mac": set(machine.macs),
            "name": {machine.name} if machine.name else set()}


def match_devices(devices: pd.DataFrame, configurations: pd.DataFrame, linked: pd.DataFrame,
                  skips: pd.Series, decisions: pd.DataFrame,
                  foreign: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per device (DEVICE_MATCH_COLUMNS), in the devices' order; the rules are the
    module's.

    devices: the snapshot's devices table (DEVICE_COLUMNS; read: id, device_name, serial_number,
        model, wi_fi_mac_address, ethernet_mac_address).
    configurations: CONFIGURATION_COLUMNS, the organization's configurations (and `model`, when
        the frame has it: a name equal to the model is no evidence).
    linked: LINKED_DEVICE_COLUMNS, configurations linked to this tenant's devices (in_organization
        False: in another organization than the tenant's match; the device is held).
    skips: per device (the devices' index) the reason the options leave it out, or None.
    decisions: DEVICE_DECISION_COLUMNS, an analyst's standing decisions.
    foreign: FOREIGN_DEVICE_COLUMNS, the organization's configurations linked to devices of other
        tenants (never matched by evidence).
    """
    foreign = foreign if foreign is not None else pd.DataFrame(columns=FOREIGN_DEVICE_COLUMNS)
    decisions = decisions if decisions is not None else pd.DataFrame(columns=DEVICE_DECISION_COLUMNS)
    index = _Index(devices, configurations, linked, decisions, foreign)
    reasons = skips.reindex(devices.index) if not skips.index.equals(devices.index) else skips
    rows = []
    for device, skip in zip(frames.records(devices), reasons.tolist(), strict=True):
        skip = None if frames.is_missing(skip) or not skip else str(skip)
        outcome = _decide(index.devices[str(device["id"])], skip, index)
        rows.append({"device_id": device["id"], "device_name": device.get("device_name"),
                     "serial_number": device.get("serial_number"), **outcome})
    table = pd.DataFrame(rows, columns=DEVICE_MATCH_COLUMNS)
    table["configuration_id"] = table["configuration_id"].astype("Int64")
    _flag_shared_configurations(table, index)
    return table


class _Outcome(TypedDict):
    """What becomes of a device: the match table's columns after the device's own."""

    action: DeviceAction
    configuration_id: int | None
    matched_on: DeviceMatchedOn | None
    reason: str


def _row(action: DeviceAction, configuration_id: int | None, matched_on: DeviceMatchedOn | None,
         reason: str) -> _Outcome:
    return {"action": action, "configuration_id": configuration_id, "matched_on": matched_on, "reason": reason}


def _decide(device: _Machine, skip: str | None, index: _Index) -> _Outcome:
    decision = index.decisions.get(device.key)
    if decision is not None and decision.action == "link":
        if int(decision.configuration_id) in index.configurations:
            return _row("match", int(decision.configuration_id), "decision", "linked by an analyst's decision")
        return _row("held", int(decision.configuration_id), "decision",
                    "the analyst linked a configuration that is not in the tenant's organization: record a new "
                    "link decision")
    if decision is not None and decision.action == "create":  # whatever the device is linked to until now
        return _row("skipped", None, None, skip) if skip else \
            _row("create", None, "decision", "creation approved by an analyst")
    link = index.linked_by_device.get(device.key)
    if link is not None and not link.in_organization:
        return _row("held", int(link.configuration_id), "device_id",
                    "linked to a configuration of another organization than the tenant's match: move the "
                    "configuration or change the tenant's match")
    # Another device's link decision takes this device's configuration: it is planned without it.
    moved = link is not None and int(link.configuration_id) in index.decided
    if link is not None and not moved:
        return _row("match", int(link.configuration_id), "device_id", "linked Intune device id")
    if skip:
        return _row("skipped", None, None, skip)
    if link is not None:
        configuration_id = int(link.configuration_id)
        deciders = ", ".join(sorted(index.label(d) for d in index.decided[configuration_id]))
        return _row("held", configuration_id, "device_id",
                    f"an analyst's decision links configuration {configuration_id}, linked to this device until "
                    f"now, to {deciders}: link this device to another configuration or approve creating a new one")
    for level in EVIDENCE_LEVELS:
        candidates = index.candidates(level, device)
        if candidates:
            return _judge(level, device, candidates, index)
    return _row("create", None, None, "no configuration matches the device's serial, MAC addresses or name")


def _judge(level: EvidenceLevel, device: _Machine, candidates: set[int], index: _Index) -> _Outcome:
    """The outcome at the first level that finds candidates."""
    owned = sorted(candidates & index.foreign.keys())
    if owned:
        tenant_id, tenant_name = index.foreign[owned[0]]
        return _row("held", owned[0], level,
                    f"{_evidence(level, device, owned[0], index)}, and it is linked to a device of another tenant, "
                    f"{_shown(tenant_name or tenant_id)} ({_plain(tenant_id)}): a sync never moves a configuration "
                    "between tenants; link this device to it if it is the same machine, or approve creating a new "
                    "configuration")
    reserved = sorted(c for c in candidates if c in index.held_by or c in index.decided)
    if reserved:
        configuration_id = reserved[0]
        if configuration_id in index.decided:
            owners = ", ".join(sorted(index.label(d) for d in index.decided[configuration_id]))
            return _row("held", configuration_id, level,
                        f"{_evidence(level, device, configuration_id, index)}, which an analyst's decision links to "
                        f"{owners}: link this device to another configuration or approve a create")
        owners = ", ".join(sorted(index.label(d) for d in index.held_by[configuration_id]))
        return _row("held", configuration_id, level,
                    f"{_evidence(level, device, configuration_id, index)}, which is linked to {owners}: probably "
                    "the same machine enrolled twice; link it or approve a create")
    if len(candidates) == 1:
        configuration_id = next(iter(candidates))
        reason = _evidence(level, device, configuration_id, index)
        stale = index.stale.get(configuration_id)
        if stale:
            gone = ", ".join(sorted(f"device {_plain(d)}" for d in stale))
            reason += f"; it was linked to {gone}, no longer listed: the link moves to this device"
        return _row("match", configuration_id, level, reason)
    ids = _id_list(candidates)
    return _row("ambiguous", None, level,
                f"the {_LEVEL_WORDS[level]} {_device_value(level, device, candidates, index)} is that of "
                f"{len(candidates)} configurations ({ids}): link the device to one of them")


_LEVEL_WORDS: dict[EvidenceLevel, str] = {"serial": "serial", "mac": "MAC address", "name": "name"}


def _evidence(level: EvidenceLevel, device: _Machine, configuration_id: int, index: _Index) -> str:
    """"serial 5CG1234XYZ equals configuration 12's"."""
    value = _device_value(level, device, {configuration_id}, index)
    return f"{_LEVEL_WORDS[level]} {value} equals configuration {configuration_id}'s"


def _device_value(level: EvidenceLevel, device: _Machine, candidates: set[int], index: _Index) -> str:
    """The device's value that found the candidates, as a reason shows it."""
    if level == "serial":
        return _plain(device.serial)
    if level == "name":
        return _shown(device.name)
    macs = sorted(m for m in device.macs - index.shared_macs
                  if any(m in index.configurations[c].macs for c in candidates))
    return ", ".join(_mac_text(m) for m in macs)


def _flag_shared_configurations(table: pd.DataFrame, index: _Index) -> None:
    """Several devices on one configuration: the strongest evidence keeps it when it is one
    device's; devices matching it at that same strongest level are all ambiguous; devices with
    weaker evidence are held (ambiguous when no one device keeps it)."""
    matched = table[table["action"] == "match"]
    shared = matched["configuration_id"].value_counts()
    for configuration_id in shared[shared > 1].index:
        group = matched[matched["configuration_id"] == configuration_id]
        ranks = group["matched_on"].map(_RANK)
        best, weaker = group[ranks == ranks.min()], group[ranks != ranks.min()]
        how = _MATCHED_WORDS[best["matched_on"].iloc[0]]
        owners = _listed(sorted(index.label(str(d)) for d in best["device_id"]))
        kept = len(best) == 1
        if not kept:
            table.loc[best.index, "reason"] = (f"{len(best)} devices match configuration {configuration_id} by "
                                               f"{how} ({owners}): link the right one")
        table.loc[weaker.index, "reason"] = weaker["reason"] + (
            f", but {owners} {'matches' if kept else 'match'} it by {how}: link this device to another "
            "configuration or approve a create")
        losing = weaker.index if kept else group.index
        table.loc[losing, "action"] = "held" if kept else "ambiguous"
        if not kept:
            table.loc[losing, "configuration_id"] = pd.NA


_MATCHED_WORDS: dict[DeviceMatchedOn, str] = {
    "decision": "an analyst's decision", "device_id": "its linked Intune device id", "serial": "serial",
    "mac": "MAC address", "name": "name", "duplicate_risk": "duplicate risk"}


# ---------------------------------------------------------------------------------------------
# Duplicate risk

@dataclass(frozen=True)
class RiskLevel:
    """One kind of evidence that a new device is a documented configuration: its label, its
    points and its reason (a str.format template over the pair's texts, _PairTexts)."""

    label: str
    points: int
    reason: str


# The best serial level counts; then a shared MAC; the best name level; the same model with the
# same name; the same primary contact with the same model. Points are added and capped at 100.
SERIAL_LEVELS: tuple[RiskLevel, ...] = (
    RiskLevel("same_serial", 90, "same serial {device_serial} (configuration named {configuration_name})"),
    RiskLevel("confused_serial", 70, "serials {device_serial} and {configuration_serial} differ only in O/0 or I/1"),
    RiskLevel("close_serial", 60, "serial {device_serial} is one character from {configuration_serial}"),
)
SAME_MAC = RiskLevel("same_mac", 85, "same MAC address {mac}")
NAME_LEVELS: tuple[RiskLevel, ...] = (
    RiskLevel("same_name_other_serial", 60, "same name {name} but another serial ({device_serial} vs "
              "{configuration_serial}): a replaced machine that kept its name?"),
    RiskLevel("same_name", 50, "same name {name}"),
)
SAME_MODEL = RiskLevel("same_model", 15, "same model {model}")  # with the same name only
SAME_CONTACT_AND_MODEL = RiskLevel("same_contact_and_model", 40,
                                   "same primary contact (contact {contact}) and model {model}")
# Two different real serials are two machines: other evidence (a dock's MAC, a replacement that
# kept its name, user and model) makes such a pair medium at most.
CONFLICT_CAP = HIGH_RISK - 1

MIN_FUZZY_SERIAL_LENGTH = 6  # shorter serials one character apart are too common to be evidence
MAX_FUZZY_SERIAL_LENGTH = 64  # longer ones are no serial: no neighbourhood (a guard for hostile data)
MAX_BLOCK_CONFIGURATIONS = 50  # a blocking key on more configurations than this is too common to use
_CONFUSIONS = str.maketrans("OI", "01")


@dataclass(frozen=True)
class _Candidate:
    """A device or a configuration as duplicate risk compares them."""

    machine: _Machine
    model: str | None
    contact: int | None
    shown_name: str

    @property
    def folded(self) -> str | None:
        """The serial with O read as 0 and I as 1."""
        return self.machine.serial.translate(_CONFUSIONS) if self.machine.serial else None

    def blocking_keys(self) -> set[str]:
        machine = self.machine
        keys = {f"s:{machine.serial}"} if machine.serial else set()
        keys |= {f"m:{mac}" for mac in machine.macs}
        if machine.name:
            keys.add(f"n:{machine.name}")
        folded = self.folded
        if folded and MIN_FUZZY_SERIAL_LENGTH <= len(folded) <= MAX_FUZZY_SERIAL_LENGTH:
            # Two serials one edit apart share the serial or one of its one-character deletions.
            keys |= {f"f:{folded}"} | {f"f:{folded[:i]}{folded[i + 1:]}" for i in range(len(folded))}
        if self.contact is not None and self.model:
            keys.add(f"c:{self.contact}|{self.model}")
        return keys


def device_duplicate_risk(creating: pd.DataFrame, configurations: pd.DataFrame,
                          user_contacts: Mapping[str, SupportsInt] | None = None, *,
                          read: pd.DataFrame | None = None, max_candidates: int = 3) -> pd.DataFrame:
    """DEVICE_RISK_COLUMNS for the devices that would become new configurations (`creating`: rows
    of the devices table) against the organization's configurations (CONFIGURATION_COLUMNS, and
    `model` when the frame has it: without it the model evidence is not compared): score
    0-100, level high (>= 80) / medium (>= 60) / low, reasons in words; at most max_candidates per
    device, devices in input order, then score descending and configuration id ascending; pairs
    under MIN_RISK_SCORE left out.

    Evidence: SERIAL_LEVELS (the same serial, whatever the names: high), SAME_MAC (high),
    NAME_LEVELS (the same name with another serial: medium), SAME_MODEL with the same name, and
    SAME_CONTACT_AND_MODEL; a pair with two different real serials is capped at CONFLICT_CAP. A
    MAC that several devices of `read` report (the whole devices table; by default the creating
    devices) is no evidence, as in matching.
    `user_contacts`: the contact id of each synced user (user id -> contact id), so that a device's
    primary user is compared with a configuration's primary contact; without it that is not compared.
    Only pairs sharing a blocking key are scored, never all pairs; a key on more than
    MAX_BLOCK_CONFIGURATIONS configurations is dropped.
    """
    if max_candidates < 1:
        raise ValueError("max_candidates must be at least 1")
    contacts = {str(user): int(contact) for user, contact in (user_contacts or {}).items()}
    records = frames.records(creating)
    machines = [_device_machine(d) for d in records]
    shared = _shared_macs(machines if read is None else (_device_machine(d) for d in frames.records(read)))
    devices = [_Candidate(replace(machine, macs=machine.macs - shared), _model_key(d.get("model")),
                          contacts.get(_text(d.get("user_id")) or ""), _shown(d.get("device_name")))
               for machine, d in zip(machines, records, strict=True)]
    existing = [_Candidate(_configuration_machine(c), _model_key(c.get("model")), _contact(c.get("primary_contact_id")),
                           _shown(c.get("name"))) for c in frames.records(configurations)]
    rows = []
    for d, c in _blocked_pairs(devices, existing):
        score, reasons = _score(devices[d], existing[c])
        if score >= MIN_RISK_SCORE:
            rows.append((d, devices[d].machine.key, int(existing[c].machine.key), float(score), "; ".join(reasons)))
    scored = pd.DataFrame(rows, columns=["position", *DEVICE_RISK_COLUMNS[:3], "reasons"])
    scored = scored.sort_values(["position", "score", "configuration_id"], ascending=[True, False, True], kind="stable")
    scored = scored.groupby("position", sort=False).head(max_candidates)
    level = [_level(score) for score in scored["score"]]
    return pd.DataFrame({"device_id": scored["device_id"].to_numpy(object),
                         "configuration_id": scored["configuration_id"].to_numpy("int64"),
                         "score": scored["score"].to_numpy("float64"), "level": level,
                         "reasons": scored["reasons"].to_numpy(object)}, columns=DEVICE_RISK_COLUMNS)


def _contact(value: object) -> int | None:
    """A contact id; a column with missing ids may hold them as floats (7.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or frames.is_missing(value):
        return None
    number = float(value)
    return int(number) if number.is_integer() else None


def _level(score: float) -> str:
    return "high" if score >= HIGH_RISK else "medium" if score >= MEDIUM_RISK else "low"


def _blocked_pairs(devices: list[_Candidate], configurations: list[_Candidate]) -> list[tuple[int, int]]:
    """(device position, configuration position) of the pairs that share a blocking key."""
    def long(items: list[_Candidate]) -> pd.DataFrame:
        return pd.DataFrame([(i, key) for i, item in enumerate(items) for key in item.blocking_keys()],
                            columns=["position", "key"])

    left, right = long(devices), long(configurations)
    counts = right["key"].value_counts()
    right = right[right["key"].map(counts) <= MAX_BLOCK_CONFIGURATIONS]
    pairs = left.merge(right, on="key", suffixes=("_device", "_configuration"))
    unique = pairs[["position_device", "position_configuration"]].drop_duplicates()
    return sorted(zip(unique["position_device"].tolist(), unique["position_configuration"].tolist(), strict=True))


class _PairTexts(NamedTuple):
    """What a risk reason quotes."""

    device_serial: str
    configuration_serial: str
    configuration: str
    configuration_name: str
    mac: str
    name: str
    model: str
    contact: str


def _score(device: _Candidate, configuration: _Candidate) -> tuple[int, list[str]]:
    ours, theirs = device.machine, configuration.machine
    texts = _PairTexts(_plain(ours.serial), _plain(theirs.serial), theirs.key, configuration.shown_name,
                       ", ".join(_mac_text(m) for m in sorted(ours.macs & theirs.macs)),
                       device.shown_name, _shown(device.model), str(device.contact))
    found: list[RiskLevel] = []
    serial = _serial_level(device, configuration)
    if serial is not None:
        found.append(serial)
    # Two real serials, neither the same nor alike: two machines.
    conflict = serial is None and _conflicting(ours.serial, theirs.serial)
    if ours.macs & theirs.macs:
        found.append(SAME_MAC)
    same_name = ours.name is not None and ours.name == theirs.name
    if same_name:
        found.append(NAME_LEVELS[0] if conflict else NAME_LEVELS[1])
    same_model = device.model is not None and device.model == configuration.model
    if same_name and same_model:
        found.append(SAME_MODEL)
    if same_model and device.contact is not None and device.contact == configuration.contact:
        found.append(SAME_CONTACT_AND_MODEL)
    score = min(100, sum(level.points for level in found), CONFLICT_CAP if conflict else 100)
    return score, [level.reason.format(**texts._asdict()) for level in found]


def _serial_level(device: _Candidate, configuration: _Candidate) -> RiskLevel | None:
    ours, theirs = device.machine.serial, configuration.machine.serial
    if ours is None or theirs is None:
        return None
    if ours == theirs:
        return SERIAL_LEVELS[0]
    folded, other = device.folded or "", configuration.folded or ""
    if folded == other:
        return SERIAL_LEVELS[1]
    close = min(len(folded), len(other)) >= MIN_FUZZY_SERIAL_LENGTH and OSA.distance(folded, other, score_cutoff=1) <= 1
    return SERIAL_LEVELS[2] if close else None


# ---------------------------------------------------------------------------------------------
# Quoting

SHOWN_LIMIT = 60  # characters of an untrusted value a reason quotes
MAX_LISTED = 10  # ids a reason lists before "and N more"


def _plain(value: object) -> str:
    """An untrusted value as a reason shows it: one line, no control or invisible characters, cut
    to SHOWN_LIMIT characters; '?' when there is none."""
    text = _text(value)
    flat = " ".join(terminal_text(text).split()) if text is not None else ""
    if not flat:
        return "?"
    return flat if len(flat) <= SHOWN_LIMIT else flat[:SHOWN_LIMIT - 1] + "…"


def _shown(value: object) -> str:
    """An untrusted name as a reason quotes it: _plain, in quotes."""
    return f"'{_plain(value)}'"


def _mac_text(mac: str) -> str:
    return ":".join(mac[i:i + 2] for i in range(0, 12, 2))


def _listed(items: Sequence[str]) -> str:
    more = len(items) - MAX_LISTED
    return ", ".join(items[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _id_list(ids: Iterable[int]) -> str:
    return _listed([str(i) for i in sorted(ids)])


