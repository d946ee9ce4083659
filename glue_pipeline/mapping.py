"""Field mapping from a Microsoft user to a contact and its Microsoft overlay, and the admin
portal links. Microsoft wins for mapped fields; a field Microsoft leaves empty keeps the store's
value, and fields not mapped are never touched."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ENTRA_USER_URL = ("https://entra.microsoft.com/{domain}/#blade/Microsoft_AAD_IAM/"
                  "UserDetailsMenuBlade/Profile/userId/{user_id}")
ADMIN_CENTER_URL = "https://admin.cloud.microsoft/?delegatedOrg={initial_domain}"


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


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, (list, tuple, dict, str)) and bool(pd.isna(value)))


def _text(value: object) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _names(user: dict) -> tuple[str | None, str | None]:
    first, last = _text(user.get("givenName")), _text(user.get("surname"))
    if first or last:
        return first, last
    display = _text(user.get("displayName"))
    if not display:
        return None, None
    parts = display.split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else None


def smtp_aliases(proxy_addresses: list[str] | None, primary: str) -> list[str]:
    """Every smtp address but the primary one (SMTP: is Exchange's primary, smtp: an alias)."""
    out: list[str] = []
    for address in proxy_addresses or []:
        if address[:5].lower() == "smtp:":
            value = address[5:]
            if value.lower() != primary.lower() and value.lower() not in (a.lower() for a in out):
                out.append(value)
    return out


def contact_fields(user: dict) -> ContactFields:
    first, last = _names(user)
    upn = str(user["userPrincipalName"])
    phones = []
    business = list(user.get("businessPhones") or [])
    if business and _text(business[0]):
        phones.append(("Work", str(business[0]).strip()))
    if _text(user.get("mobilePhone")):
        phones.append(("Mobile", str(user["mobilePhone"]).strip()))
    proxies = user.get("proxyAddresses")
    return ContactFields(
        first_name=first, last_name=last, title=_text(user.get("jobTitle")),
        location=_text(user.get("officeLocation")), primary_email=upn,
        aliases=smtp_aliases(list(proxies) if proxies is not None else [], upn), phones=phones)


def entra_user_url(default_domain: str | None, user_id: str) -> str:
    return ENTRA_USER_URL.format(domain=default_domain or "", user_id=user_id)


def admin_center_url(initial_domain: str | None, tenant_id: str) -> str:
    return ADMIN_CENTER_URL.format(initial_domain=initial_domain or tenant_id)


def overlay_fields(user: dict, tenant_id: str, default_domain: str | None,
                   license_names: dict[str, str], mailbox: dict | None) -> dict:
    """The contact_microsoft row for a user (without contact_id)."""
    skus = [lic.get("skuId") for lic in (user.get("assignedLicenses") or [])]
    names = sorted({license_names.get(sku, sku) for sku in skus if sku})
    mailbox = mailbox or {}
    return {
        "tenant_id": tenant_id,
        "user_id": user["id"],
        "user_principal_name": user["userPrincipalName"],
        "status": "enabled" if user.get("accountEnabled", True) else "disabled",
        "user_type": _text(user.get("userType")),
        "licenses": ", ".join(names) or None,
        "created_in_microsoft": _text(user.get("createdDateTime")),
        "last_password_change": _text(user.get("lastPasswordChangeDateTime")),
        "mailbox_storage_used_bytes": _int(mailbox.get("storage_used_bytes")),
        "mailbox_item_count": _int(mailbox.get("item_count")),
        "mailbox_warning_quota_bytes": _int(mailbox.get("issue_warning_quota_bytes")),
        "mailbox_quota_bytes": _int(mailbox.get("prohibit_send_receive_quota_bytes")),
        "mailbox_last_activity": _text(mailbox.get("last_activity_date")),
        "mailbox_has_archive": None if _missing(mailbox.get("has_archive")) else bool(mailbox["has_archive"]),
        "mailbox_report_date": _text(mailbox.get("report_date")),
        "manage_url": entra_user_url(default_domain, user["id"]),
    }


def _int(value: object) -> int | None:
    if _missing(value):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
