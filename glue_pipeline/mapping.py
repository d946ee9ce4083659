"""Field mapping from a Microsoft user to a contact and its Microsoft overlay, from an Intune
device to a configuration and its overlay, and the admin portal links. Microsoft wins for mapped
fields; a field Microsoft leaves empty keeps the store's value, and fields not mapped are never
touched."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias
from urllib.parse import quote

from glue_pipeline.addresses import aliases, smtp_addresses
from glue_pipeline.frames import is_missing
from glue_pipeline.matching.devices import normalized_mac
from glue_pipeline.options import DeviceFieldMapping, FieldMapping
from glue_pipeline.snapshot import UserRecord, device_column, user_column

ENTRA_USER_URL = ("https://entra.microsoft.com/{domain}/#blade/Microsoft_AAD_IAM/"
                  "UserDetailsMenuBlade/Profile/userId/{user_id}")
# admin.cloud.microsoft is the Microsoft 365 admin center's current address (Microsoft Learn,
# "Unified cloud.microsoft domain for Microsoft 365 apps", learn.microsoft.com/microsoft-365/
# enterprise/cloud-microsoft-domain).
# A partner opens a customer through its delegated access with delegatedOrg (the customer's
# initial domain). A direct-login tenant is no partner customer: its admin signs into that
# tenant, and the admin center opens the tenant signed into. Microsoft documents no parameter
# for that sign-in; tenantId names the tenant the way MSP tools' admin center links do.
ADMIN_CENTER_URL = "https://admin.cloud.microsoft/?delegatedOrg={initial_domain}"
DIRECT_ADMIN_CENTER_URL = "https://admin.cloud.microsoft/?tenantId={tenant_id}"
# The device's page in the Intune admin center; the tenant in the path (its initial domain, or its
# id) opens that tenant for a partner's admin (GDAP) and for one signed into it directly.
INTUNE_DEVICE_URL = ("https://intune.microsoft.com/{tenant}/#view/Microsoft_Intune_Devices/"
                     "DeviceSettingsMenuBlade/~/overview/mdmDeviceId/{device_id}")
# As the reference integration does, a last sign-in older than this is not shown.
SIGN_IN_SHOWN_FOR = timedelta(days=30)


@dataclass
class ContactFields:
    first_name: str | None
    last_name: str | None
    title: str | None
    location: str | None
    primary_email: str
    aliases: list[str] = field(default_factory=list)
    # (label, value) pairs, e.g. ("Work", "+44 20 7946 0000").
    phones: list[tuple[str, str]] = field(default_factory=list)

    def scalar_fields(self) -> dict[str, str | None]:
        return {"first_name": self.first_name, "last_name": self.last_name, "title": self.title,
                "location": self.location}


def _text(value: object) -> str | None:
    if is_missing(value):
        return None
    text = str(value).strip()
    return text or None


def _property(user: UserRecord, name: str | None) -> str | None:
    """A mapped user property (named as in Graph) as text; list properties (businessPhones) give
    their first item."""
    if name is None:
        return None
    value = user.get(user_column(name))
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return _text(value)


def _names(user: UserRecord, mapping: FieldMapping) -> tuple[str | None, str | None]:
    first, last = _property(user, mapping.first_name), _property(user, mapping.last_name)
    if first or last or mapping.first_name is None or mapping.last_name is None:
        return first, last
    display = _text(user.get("display_name"))
    if not display:
        return None, None
    parts = display.split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else None


def primary_email(user: UserRecord, mapping: FieldMapping) -> str:
    """The UPN, or with `primary_email: mail` the user's mail address when it has one."""
    mail = _text(user.get("mail")) if mapping.primary_email == "mail" else None
    return mail if mail and "@" in mail else str(user["user_principal_name"])


def contact_fields(user: UserRecord, mapping: FieldMapping | None = None) -> ContactFields:
    mapping = mapping or FieldMapping()
    first, last = _names(user, mapping)
    upn = str(user["user_principal_name"])
    primary = primary_email(user, mapping)
    phones = [(label, value) for label, value in (("Work", _property(user, mapping.work_phone)),
                                                  ("Mobile", _property(user, mapping.mobile_phone)))
              if value]
    # Every other address is another email: the UPN when it is not the primary one, and (with
    # `aliases`) the smtp proxy addresses.
    proxies = smtp_addresses(user.get("proxy_addresses")) if mapping.aliases else []
    others = aliases([upn, *proxies], primary)
    return ContactFields(first_name=first, last_name=last, title=_property(user, mapping.title),
                         location=_property(user, mapping.location), primary_email=primary,
                         aliases=others, phones=phones)


def _path_segment(value: str) -> str:
    """A tenant's domain or id as one URL path segment or query value: a domain sent by the tenant
    cannot add a path, query or fragment to the link."""
    return quote(value, safe="")


def entra_user_url(default_domain: str | None, user_id: str, tenant_id: str = "") -> str:
    """The user's page in the Entra admin center. The tenant in the path (a domain or its id)
    opens that tenant whether the admin is a partner's (GDAP) or signed into it directly."""
    return ENTRA_USER_URL.format(domain=_path_segment(default_domain or tenant_id), user_id=_path_segment(user_id))


def admin_center_url(initial_domain: str | None, tenant_id: str, direct: bool = False) -> str:
    """The tenant's Microsoft 365 admin center: for a partner's customer through the partner's
    delegated access (delegatedOrg), for a direct-login tenant signed into it directly."""
    if direct:
        return DIRECT_ADMIN_CENTER_URL.format(tenant_id=_path_segment(tenant_id))
    return ADMIN_CENTER_URL.format(initial_domain=_path_segment(initial_domain or tenant_id))


def recent_sign_in(user: UserRecord, now: datetime) -> str | None:
    value = user.get("last_sign_in")
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(value) if now - moment <= SIGN_IN_SHOWN_FOR else None


# A contact_microsoft row (without contact_id).
Overlay: TypeAlias = dict[str, str | int | bool | None]


def overlay_fields(user: UserRecord, tenant_id: str, default_domain: str | None,
                   license_names: dict[str, str], mailbox: UserRecord | None, mailbox_joined: bool,
                   now: datetime, entra: bool = True) -> Overlay:
    """The contact_microsoft row for a user (without contact_id). When the mailbox report could
    not be joined (off, concealed, unreadable) the mailbox fields are left out, and without
    `entra` the last sign-in and last password change, so the overlay keeps what it had. The
    status stays: the user selection reads it anyway."""
    skus = user.get("sku_ids")
    names = sorted({license_names.get(str(sku), str(sku)) for sku in (skus if isinstance(skus, list) else [])})
    row: Overlay = {
        "tenant_id": tenant_id,
        "user_id": str(user["id"]),
        "user_principal_name": str(user["user_principal_name"]),
        "status": "enabled" if user.get("account_enabled", True) is not False else "disabled",
        "user_type": _text(user.get("user_type")),
        "licenses": ", ".join(names) or None,
        "created_in_microsoft": _text(user.get("created_date_time")),
        "last_password_change": _text(user.get("last_password_change_date_time")),
        "last_sign_in": recent_sign_in(user, now),
        "manage_url": entra_user_url(default_domain, str(user["id"]), tenant_id),
    }
    if not entra:
        del row["last_password_change"], row["last_sign_in"]
    if mailbox_joined:
        mailbox = mailbox or {}
        row.update({
            "mailbox_storage_used_bytes": _int(mailbox.get("storage_used_bytes")),
            "mailbox_item_count": _int(mailbox.get("item_count")),
            "mailbox_warning_quota_bytes": _int(mailbox.get("issue_warning_quota_bytes")),
            "mailbox_quota_bytes": _int(mailbox.get("prohibit_send_receive_quota_bytes")),
            "mailbox_last_activity": _text(mailbox.get("last_activity_date")),
            "mailbox_has_archive": None if is_missing(mailbox.get("has_archive")) else bool(mailbox["has_archive"]),
            "mailbox_report_date": _text(mailbox.get("report_date")),
        })
    return row


def _int(value: object) -> int | None:
    if is_missing(value):
        return None
    try:
        number: int = int(value)  # type: ignore[call-overload]  # any value: what int() refuses is None
    except (TypeError, ValueError):
        return None
    return number


# A configuration's mapped fields, or a configuration_microsoft row (without configuration_id).
ConfigurationFields: TypeAlias = dict[str, str | None]


def intune_device_url(initial_domain: str | None, tenant_id: str, device_id: str) -> str:
    return INTUNE_DEVICE_URL.format(tenant=_path_segment(initial_domain or tenant_id),
                                    device_id=_path_segment(device_id))


def configuration_fields(device: UserRecord, mapping: DeviceFieldMapping) -> ConfigurationFields:
    """The configuration fields the mapping takes from the device (fields mapped to null left out)."""
    return {name: _text(device.get(device_column(prop))) for name, prop in mapping.properties().items()}


def device_overlay(device: UserRecord, tenant_id: str, initial_domain: str | None) -> Overlay:
    """The configuration_microsoft row for a device (without configuration_id)."""
    return {
        "tenant_id": tenant_id,
        "device_id": str(device["id"]),
        "azure_ad_device_id": _text(device.get("azure_ad_device_id")),
        "user_id": _text(device.get("user_id")),
        "user_principal_name": _text(device.get("user_principal_name")),
        "status": "active",
        "compliance_state": _text(device.get("compliance_state")),
        "owner_type": _text(device.get("managed_device_owner_type")),
        "enrolled_at": _text(device.get("enrolled_date_time")),
        "last_check_in": _text(device.get("last_sync_date_time")),
        "is_encrypted": None if is_missing(device.get("is_encrypted")) else bool(device["is_encrypted"]),
        "total_storage_bytes": _int(device.get("total_storage_space_in_bytes")),
        "free_storage_bytes": _int(device.get("free_storage_space_in_bytes")),
        "wifi_mac_address": _mac(device.get("wi_fi_mac_address")),
        "ethernet_mac_address": _mac(device.get("ethernet_mac_address")),
        "imei": _text(device.get("imei")),
        "manage_url": intune_device_url(initial_domain, tenant_id, str(device["id"])),
    }


def _mac(value: object) -> str | None:
    """A MAC written as aa:bb:cc:dd:ee:ff (Intune sends 12 hex digits); anything else as sent."""
    mac = normalized_mac(value)
    return ":".join(mac[i:i + 2] for i in range(0, 12, 2)) if mac else _text(value)
