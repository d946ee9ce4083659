"""Values from Microsoft are untrusted: they are cleaned once, where they enter the pipeline.

A customer tenant controls its names, mails, phones and much else that Graph returns, so any
value may be hostile or merely broken. Every string is made safe to store and to show:
control characters are removed (line breaks and tabs become a space), so are bidi overrides
and invisible characters (render.terminal_text); Unicode is normalised to NFC; and each value is cut to the store
column it ends up in. Values of the wrong shape (a list where text belongs, an id that is not
a GUID, a count that is not a number) are dropped or replaced. Each change is reported once per
user and field as a `Cleaned` note naming the user and the field, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import NotRequired, TypedDict

from glue_pipeline.graph import JsonObject
from glue_pipeline.render import terminal_text
from glue_pipeline.snapshot import Cleaned
from glue_pipeline.store.limits import column_width

# Bumped when cleaning changes, so that cached snapshots read before are read again.
CLEANING_VERSION = 1

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

TEXT_LIMIT = column_width("contacts", "first_name")  # names, titles, locations: 255
EMAIL_LIMIT = column_width("contact_emails", "value")  # 320
PHONE_LIMIT = column_width("contact_phones", "value")  # 64
DATE_LIMIT = column_width("contact_microsoft", "created_in_microsoft")  # ISO-8601 times: 32
USER_TYPE_LIMIT = column_width("contact_microsoft", "user_type")
MAX_INT32 = 2**31 - 1


def clean_text(value: str, limit: int | None = None) -> tuple[str, list[str]]:
    """The value made safe, and what was changed (empty when nothing was)."""
    changes: list[str] = []
    if not (value.isascii() and value.isprintable()):  # fast path: printable ASCII is clean
        kept = terminal_text(value)  # the one definition of what may not be shown
        if kept != value:
            changes.append("control or invisible characters removed")
        value = unicodedata.normalize("NFC", kept)
        if value != kept:
            changes.append("Unicode normalised (NFC)")
    if limit is not None and len(value) > limit:
        value = value[:limit]
        changes.append(f"cut to {limit} characters")
    return value, changes


def is_guid(value: object) -> bool:
    return isinstance(value, str) and GUID.fullmatch(value) is not None


def shown_id(value: object) -> str:
    """An id that failed validation, as it may be quoted in a log line."""
    return clean_text(str(value), 40)[0]


class Cleaner:
    """Collects what was changed, once per (user, field)."""

    def __init__(self) -> None:
        self._changes: dict[tuple[str | None, str], list[str]] = {}

    def note(self, user_id: str | None, field: str, changes: Iterable[str]) -> None:
        found = self._changes.setdefault((user_id, field), [])
        found += [c for c in changes if c not in found]

    def text(self, value: object, limit: int, user_id: str | None, field: str) -> str | None:
        """Text, or None for a missing value or one that is not text."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.note(user_id, field, ["not text: left out"])
            return None
        cleaned, changes = clean_text(str(value), limit)
        if changes:
            self.note(user_id, field, changes)
        return cleaned

    def texts(self, value: object, limit: int, user_id: str | None, field: str) -> list[str]:
        """A list of text (businessPhones, proxyAddresses); items that are not text are left out."""
        if type(value) is list and all(_plain(item, limit) for item in value):
            return value
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            self.note(user_id, field, ["not a list: left out"])
            return []
        out = [self.text(item, limit, user_id, field) for item in value]
        return [item for item in out if item is not None]

    def flag(self, value: object, user_id: str | None, field: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.note(user_id, field, ["not true or false: left out"])
        return None

    def count(self, value: object, field: str, maximum: int = MAX_INT32) -> int:
        """A whole number from 0 to `maximum`; anything else counts as 0."""
        if value is None:
            return 0
        try:
            number: int = int(value)  # type: ignore[call-overload]  # any JSON value: what int() refuses counts as 0
        except (TypeError, ValueError, OverflowError):
            self.note(None, field, ["not a whole number: counted as 0"])
            return 0
        if not 0 <= number <= maximum:
            self.note(None, field, [f"out of range: kept within 0..{maximum}"])
            return min(max(number, 0), maximum)
        return number

    @property
    def found(self) -> list[Cleaned]:
        return [Cleaned(user, field, tuple(changes)) for (user, field), changes in self._changes.items()
                if changes]


# ---------------------------------------------------------------------------------------------
# Users

LIST_FIELDS = frozenset({"businessPhones", "proxyAddresses"})
FLAG_FIELDS = frozenset({"accountEnabled"})
SIGN_IN_FIELD = "signInActivity"
LICENSES_FIELD = "assignedLicenses"
_SHAPED = LIST_FIELDS | FLAG_FIELDS | {SIGN_IN_FIELD, LICENSES_FIELD}  # not text


def user_limits(mapped: dict[str, str | None]) -> dict[str, int]:
    """Per Graph user property, the width of the narrowest store column it is written to.
    `mapped`: contact field -> the property the mapping takes it from."""
    limits = {"userPrincipalName": EMAIL_LIMIT, "mail": EMAIL_LIMIT,
              "proxyAddresses": EMAIL_LIMIT + len("smtp:"), "userType": USER_TYPE_LIMIT,
              "createdDateTime": DATE_LIMIT, "lastPasswordChangeDateTime": DATE_LIMIT}
    for contact_field, prop in mapped.items():
        if prop:
            column = PHONE_LIMIT if contact_field.endswith("phone") else TEXT_LIMIT
            limits[prop] = min(limits.get(prop, TEXT_LIMIT), column)
    return limits


def clean_users(rows: list[JsonObject], limits: dict[str, int], cleaner: Cleaner) -> list[JsonObject]:
    """Users (or delta changes) as Graph sent them, cleaned; a user whose id is not a GUID is
    left out."""
    out = []
    for row in rows:
        if not is_guid(row.get("id")):
            cleaner.note(None, "id", [f"a user whose id is not a GUID ('{shown_id(row.get('id'))}') was left out"])
        else:
            out.append(row if "@removed" in row else clean_user(row, limits, cleaner))
    return out


def unique_users(rows: list[JsonObject], cleaner: Cleaner) -> list[JsonObject]:
    """A full read's users, each once: a user listed more than once (a paging glitch) is kept
    as last listed."""
    by_id: dict[str, JsonObject] = {}
    listed: dict[str, int] = {}
    for row in rows:
        listed[row["id"]] = listed.get(row["id"], 0) + 1
        by_id.pop(row["id"], None)  # the last listing wins, in its place
        by_id[row["id"]] = row
    for user_id, times in listed.items():
        if times > 1:
            cleaner.note(user_id, "id", [f"listed {times} times in one read: kept once"])
    return list(by_id.values())


def _plain(value: object, limit: int) -> bool:
    """Printable ASCII text within its limit: nothing to clean (most values)."""
    return type(value) is str and len(value) <= limit and value.isascii() and value.isprintable()


def clean_user(row: JsonObject, limits: dict[str, int], cleaner: Cleaner) -> JsonObject:
    user_id = row["id"]
    out: JsonObject = {}
    for name, value in row.items():
        limit = limits.get(name, TEXT_LIMIT)
        if name.startswith("@") or name == "id" or value is None or (name not in _SHAPED and _plain(value, limit)):
            out[name] = value
        elif name in LIST_FIELDS:
            out[name] = cleaner.texts(value, limit, user_id, name)
        elif name in FLAG_FIELDS:
            out[name] = cleaner.flag(value, user_id, name)
        elif name == LICENSES_FIELD:
            out[name] = _licenses(value, user_id, cleaner)
        elif name == SIGN_IN_FIELD:
            out[name] = _sign_in(value, user_id, cleaner)
        else:
            out[name] = cleaner.text(value, limit, user_id, name)
    return out


class AssignedLicense(TypedDict):
    """An item of a user's assignedLicenses, cleaned."""

    skuId: str
    disabledPlans: list[str]


def _licenses(value: object, user_id: str, cleaner: Cleaner) -> list[AssignedLicense]:
    """assignedLicenses: items with a GUID skuId (disabledPlans kept when they are GUIDs)."""
    items = value if isinstance(value, (list, tuple)) else []
    kept: list[AssignedLicense] = [
        {"skuId": item["skuId"], "disabledPlans": [p for p in item.get("disabledPlans") or [] if is_guid(p)]}
        for item in items if isinstance(item, dict) and is_guid(item.get("skuId"))]
    if value is not None and len(kept) != (len(items) if isinstance(value, (list, tuple)) else -1):
        cleaner.note(user_id, LICENSES_FIELD, ["licenses without a GUID skuId left out"])
    return kept


def _sign_in(value: object, user_id: str, cleaner: Cleaner) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        cleaner.note(user_id, SIGN_IN_FIELD, ["not an object: left out"])
        return None
    return {k: cleaner.text(v, DATE_LIMIT, user_id, f"{SIGN_IN_FIELD}.{k}") for k, v in value.items()
            if isinstance(k, str)}


# ---------------------------------------------------------------------------------------------
# The tenant's own data: organization, discovery, subscribed SKUs

# /organization property -> the tenants column it is written to.
_ORGANIZATION_TEXT = {"displayName": "display_name", "street": "street", "city": "city", "state": "state",
                      "postalCode": "postal_code", "countryLetterCode": "country"}


def clean_organization(org: JsonObject, cleaner: Cleaner) -> JsonObject:
    """The /organization object: its texts, phones and verified domains."""
    out = dict(org)
    for name, column in _ORGANIZATION_TEXT.items():
        out[name] = cleaner.text(org.get(name), column_width("tenants", column), None, f"organization.{name}")
    out["businessPhones"] = cleaner.texts(org.get("businessPhones"), column_width("tenants", "phone"), None,
                                          "organization.businessPhones")
    verified = org.get("verifiedDomains")
    domains = verified if isinstance(verified, list) else []
    out["verifiedDomains"] = [
        {"name": domain, "isDefault": d.get("isDefault") is True, "isInitial": d.get("isInitial") is True}
        for d in domains if isinstance(d, dict)
        and (domain := cleaner.text(d.get("name"), column_width("tenants", "default_domain"), None,
                                    "organization.verifiedDomains"))]
    return out


class Customer(TypedDict):
    """A customer tenant found by discovery; data_source is set for a direct-login source's."""

    tenant_id: str | None  # as Graph sent it: clean_customer leaves out one that is not a GUID
    display_name: str | None
    default_domain: str | None
    relationship: str
    data_source: NotRequired[str]


def clean_customer(row: Customer, cleaner: Cleaner) -> Customer | None:
    """A discovered customer (tenant_id, display_name, default_domain, ...); None when its
    tenant id is not a GUID."""
    if not is_guid(row.get("tenant_id")):
        cleaner.note(None, "tenant id", [f"a customer whose tenant id is not a GUID "
                                         f"('{shown_id(row.get('tenant_id'))}') was left out"])
        return None
    label = f"customer {row['tenant_id']}"
    return {**row, "display_name": cleaner.text(row.get("display_name"), column_width("tenants", "display_name"),
                                                None, f"{label} displayName"),
            "default_domain": cleaner.text(row.get("default_domain"), column_width("tenants", "default_domain"),
                                           None, f"{label} defaultDomainName")}


class SubscribedSku(TypedDict):
    """A subscribed SKU, cleaned: prepaidUnits has enabled, suspended and warning."""

    skuId: str
    skuPartNumber: str | None
    capabilityStatus: str | None
    consumedUnits: int
    prepaidUnits: dict[str, int]


def clean_skus(skus: Sequence[object], cleaner: Cleaner) -> list[SubscribedSku]:
    """Subscribed SKUs with a GUID skuId, once each, texts fitted and counts made numbers."""
    out: dict[str, SubscribedSku] = {}
    for sku in skus:
        if not isinstance(sku, dict) or not is_guid(sku.get("skuId")):
            cleaner.note(None, "subscribedSkus", ["a SKU without a GUID skuId was left out"])
            continue
        field = f"subscribedSku {sku['skuId']}"
        units = sku.get("prepaidUnits")
        prepaid = units if isinstance(units, dict) else {}
        out[sku["skuId"]] = {
            "skuId": sku["skuId"],
            "skuPartNumber": cleaner.text(sku.get("skuPartNumber"), column_width("licenses", "part_number"),
                                          None, f"{field} skuPartNumber"),
            "capabilityStatus": cleaner.text(sku.get("capabilityStatus"),
                                             column_width("licenses", "capability_status"), None,
                                             f"{field} capabilityStatus"),
            "consumedUnits": cleaner.count(sku.get("consumedUnits"), f"{field} consumedUnits"),
            "prepaidUnits": {k: cleaner.count(prepaid.get(k), f"{field} prepaidUnits.{k}")
                             for k in ("enabled", "suspended", "warning")},
        }
    if len(out) < sum(isinstance(s, dict) and is_guid(s.get("skuId")) for s in skus):
        cleaner.note(None, "subscribedSkus", ["a SKU listed more than once was kept once"])
    return list(out.values())


# ---------------------------------------------------------------------------------------------
# Intune managed devices

DEVICE_ID_FIELDS = frozenset({"userId", "azureADDeviceId"})  # GUIDs; anything else is left empty
DEVICE_FLAG_FIELDS = frozenset({"isEncrypted"})
DEVICE_BYTE_FIELDS = frozenset({"totalStorageSpaceInBytes", "freeStorageSpaceInBytes"})
MAX_BYTES = 2**53  # exact as a float, far below BigInteger's limit


def device_limits(mapped: dict[str, str]) -> dict[str, int]:
    """Per Graph managedDevice property, the width of the narrowest store column it is written to.
    `mapped`: configuration field -> the property the device mapping takes it from."""
    overlay = {"complianceState": "compliance_state", "managedDeviceOwnerType": "owner_type",
               "enrolledDateTime": "enrolled_at", "lastSyncDateTime": "last_check_in",
               "userPrincipalName": "user_principal_name", "wiFiMacAddress": "wifi_mac_address",
               "ethernetMacAddress": "ethernet_mac_address", "imei": "imei"}
    limits = {prop: column_width("configuration_microsoft", column) for prop, column in overlay.items()}
    # Matching reads these whatever the mapping: they keep the configuration column's width.
    limits |= {"deviceName": column_width("configurations", "name"),
               "serialNumber": column_width("configurations", "serial_number")}
    for configuration_field, prop in mapped.items():
        limits[prop] = min(limits.get(prop, TEXT_LIMIT), column_width("configurations", configuration_field))
    return limits


def clean_devices(rows: Sequence[object], limits: dict[str, int], cleaner: Cleaner) -> list[JsonObject]:
    """Managed devices as Graph sent them, cleaned, each once (the last listing wins); a device
    whose id is not a GUID is left out. Empty strings (Graph's "no value" for userId, serialNumber
    and the MACs) become None."""
    out: dict[str, JsonObject] = {}
    for row in rows:
        if not isinstance(row, dict) or not is_guid(row.get("id")):
            shown = shown_id(row.get("id")) if isinstance(row, dict) else "not an object"
            cleaner.note(None, "managedDevices", [f"a device whose id is not a GUID ('{shown}') was left out"])
            continue
        device_id = str(row["id"]).lower()
        if device_id in out:
            cleaner.note(None, f"device {device_id} id", ["listed more than once in one read: kept once"])
        out[device_id] = {"id": device_id, **{name: _device_value(name, value, limits, device_id, cleaner)
                                              for name, value in row.items() if name != "id" and not
                                              name.startswith("@")}}
    return list(out.values())


def _device_value(name: str, value: object, limits: dict[str, int], device_id: str,
                  cleaner: Cleaner) -> object:
    field = f"device {device_id} {name}"
    if value is None or value == "":
        return None
    if name in DEVICE_ID_FIELDS:
        if is_guid(value):  # Intune sends the zero GUID for "none"
            return None if str(value).strip("0-") == "" else str(value).lower()
        cleaner.note(None, field, [f"not a GUID ('{shown_id(value)}'): left out"])
        return None
    if name in DEVICE_FLAG_FIELDS:
        return cleaner.flag(value, None, field)
    if name in DEVICE_BYTE_FIELDS:
        return cleaner.count(value, field, MAX_BYTES)
    if _plain(value, limits.get(name, TEXT_LIMIT)):
        return value
    return cleaner.text(value, limits.get(name, TEXT_LIMIT), None, field)
