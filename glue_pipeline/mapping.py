"""Field mapping from a Microsoft user to a contact and its Microsoft overlay, and the admin
portal links. Microsoft wins for mapped fields; a field Microsoft leaves empty keeps the store's
value, and fields not mapped are never touched."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from glue_pipeline.addresses import aliases, smtp_addresses
from glue_pipeline.frames import is_missing
from glue_pipeline.options import FieldMapping
from glue_pipeline.snapshot import UserRecord, user_column

ENTRA_USER_URL = ("https://entra.microsoft.com/{domain}/#blade/Microsoft_AAD_IAM/"
                  "UserDetailsMenuBlade/Profile/userId/{user_id}")
ADMIN_CENTER_URL = "https://admin.cloud.microsoft/?delegatedOrg={initial_domain}"
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


def contact_fields(user: UserRecord, mapping: FieldMapping | None = None) -> ContactFields:
    mapping = mapping or FieldMapping()
    first, last = _names(user, mapping)
    upn = str(user["user_principal_name"])
    phones = [(label, value) for label, value in (("Work", _property(user, mapping.work_phone)),
                                                  ("Mobile", _property(user, mapping.mobile_phone)))
              if value]
    # The UPN is the primary email: every other smtp address is an alias.
    others = aliases(smtp_addresses(user.get("proxy_addresses")), upn) if mapping.aliases else []
    return ContactFields(first_name=first, last_name=last, title=_property(user, mapping.title),
                         location=_property(user, mapping.location), primary_email=upn,
                         aliases=others, phones=phones)


def entra_user_url(default_domain: str | None, user_id: str) -> str:
    return ENTRA_USER_URL.format(domain=default_domain or "", user_id=user_id)


def admin_center_url(initial_domain: str | None, tenant_id: str) -> str:
    return ADMIN_CENTER_URL.format(initial_domain=initial_domain or tenant_id)


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
                   now: datetime) -> Overlay:
    """The contact_microsoft row for a user (without contact_id). When the mailbox report could
    not be joined (off, concealed, unreadable) the mailbox fields are left out, so the overlay
    keeps what it had."""
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
        "manage_url": entra_user_url(default_domain, str(user["id"])),
    }
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
