"""What the extract hands on: a tenant's Microsoft data, read and cleaned, in the pipeline's own
names (snake_case) and types. Graph's names and shapes stay in graph/ and extract.py; the plan,
matching and mapping read only these.

`TenantSnapshot` is eager: its tables are built when the extract returns, so reading a cached
file (which may fail) never happens while a tenant is planned or written; only its devices'
table, built from the devices as read (no file), waits until a plan needs it. A tenant whose users a
delta query found unchanged comes back as `UnchangedTenant` instead: what decides whether
anything must be planned, and `load`, which builds the snapshot when it must.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, TypeAlias

import pandas as pd

from glue_pipeline import frames
from glue_pipeline.cache import CachedTable
from glue_pipeline.options import SyncOptions
from glue_pipeline.vocabulary import DevicesState

# A row of the users table, or of the mailbox report, as a mapping of column to value.
UserRecord: TypeAlias = Mapping[str, object]

# joined: the report's rows are joined to users by UPN; otherwise (off, concealed, unreadable)
# the mailbox fields of the overlay are left as they are.
MailboxState = Literal["joined", "off", "concealed", "unreadable"]


def user_column(graph_property: str) -> str:
    """The users-table column of a Graph user property: userPrincipalName -> user_principal_name."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", graph_property).lower()


# Graph managedDevice property -> the devices table's column (columns.DEVICE_COLUMNS).
DEVICE_FIELDS = {
    "id": "id", "deviceName": "device_name", "serialNumber": "serial_number", "manufacturer": "manufacturer",
    "model": "model", "operatingSystem": "operating_system", "osVersion": "os_version",
    "complianceState": "compliance_state", "managedDeviceOwnerType": "managed_device_owner_type",
    "enrolledDateTime": "enrolled_date_time", "lastSyncDateTime": "last_sync_date_time", "userId": "user_id",
    "userPrincipalName": "user_principal_name", "azureADDeviceId": "azure_ad_device_id",
    "wiFiMacAddress": "wi_fi_mac_address", "ethernetMacAddress": "ethernet_mac_address", "imei": "imei",
    "isEncrypted": "is_encrypted", "totalStorageSpaceInBytes": "total_storage_space_in_bytes",
    "freeStorageSpaceInBytes": "free_storage_space_in_bytes",
}


def device_column(graph_property: str) -> str:
    """The devices-table column of a managedDevice property (a property the mapping adds: as for users)."""
    return DEVICE_FIELDS.get(graph_property) or user_column(graph_property)


@dataclass(frozen=True)
class Cleaned:
    """What cleaning changed in one field: of a user (user_id), or of the tenant's own data."""

    user_id: str | None
    field: str
    changes: tuple[str, ...]

    @property
    def message(self) -> str:
        return f"{self.field}: {', '.join(self.changes)}"


@dataclass(frozen=True)
class Domain:
    name: str
    is_default: bool
    is_initial: bool


@dataclass(frozen=True)
class Organization:
    """The tenant's organization, with all its verified domains."""

    display_name: str
    domains: tuple[Domain, ...] = ()
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None  # the two-letter code
    phone: str | None = None

    def _domain(self, default: bool) -> str | None:
        return next((d.name for d in self.domains if (d.is_default if default else d.is_initial)), None)

    @property
    def default_domain(self) -> str | None:
        return self._domain(default=True)

    @property
    def initial_domain(self) -> str | None:
        """The tenant's *.onmicrosoft.com domain, which never changes."""
        return self._domain(default=False)

    @property
    def verified_domains(self) -> list[str]:
        return [d.name for d in self.domains]


@dataclass(frozen=True)
class TenantHead:
    """What is read of a tenant besides its users and mailbox report: enough to tell whether
    anything changed since its last sync."""

    tenant_id: str
    organization: Organization
    licenses: pd.DataFrame  # columns.LICENSE_COLUMNS
    mailbox_state: MailboxState
    # Things the operator should know about this tenant's data, said once per sync.
    notes: tuple[str, ...] = ()
    # Cache entries to keep once the tenant's store transaction has committed.
    cache_updates: dict[str, CachedTable] = field(default_factory=dict)
    # What cleaning changed in the values read (untrusted.py), for the sync log.
    cleaned: tuple[Cleaned, ...] = ()
    # How the Intune managed devices were read (whole, at every sync), and a digest of them as
    # read (intune.devices_digest: their table is built only for a tenant that is planned).
    devices_state: DevicesState = "off"
    devices_digest: str = ""
    # The users the devices name as their primary user, as read (before cleaning).
    device_users: frozenset[str] = frozenset()

    @property
    def display_name(self) -> str:
        return self.organization.display_name

    def details(self) -> dict[str, str | bool | None]:
        """Organization details for the store's tenants table."""
        org = self.organization
        return {"display_name": org.display_name, "default_domain": org.default_domain,
                "initial_domain": org.initial_domain, "street": org.street, "city": org.city,
                "state": org.state, "postal_code": org.postal_code, "country": org.country,
                "phone": org.phone, "verified_domains": ", ".join(org.verified_domains) or None,
                "reports_concealed": self.mailbox_state == "concealed"}

    def fingerprint(self, options: SyncOptions) -> str:
        """A digest of what the plan reads besides the users and the mailbox report, and of the
        options. Notes are left out: they say how the data was read (a full read's notes differ
        from a delta's), not what it is."""
        digest = hashlib.sha256()
        for part in (self.details(), self.licenses.to_dict("records"),
                     self.mailbox_state, options.model_dump(mode="json"), self.devices_state, self.devices_digest):
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        return digest.hexdigest()


def _no_devices() -> tuple[pd.DataFrame, tuple[Cleaned, ...]]:
    return pd.DataFrame(), ()


@dataclass(frozen=True)
class TenantSnapshot:
    """A tenant as read: its head, its users (columns.USER_COLUMNS), its mailbox report (one row per
    mailbox, by lower-cased UPN) and its Intune devices (columns.DEVICE_COLUMNS), with what cleaning
    changed in those. The devices' table is built from the devices as read when first asked for (a
    plan of changed users only may not need it); building it reads no file and cannot fail."""

    head: TenantHead
    users: pd.DataFrame
    mailboxes: pd.DataFrame
    build_devices: Callable[[], tuple[pd.DataFrame, tuple[Cleaned, ...]]] = field(default=_no_devices, repr=False)
    # The users a delta query returned (changed, added or removed) when only they may differ from
    # the users of the last sync, whose mailbox report is reused; None after a full read or a new
    # report.
    changed_users: frozenset[str] | None = None

    @cached_property
    def _devices(self) -> tuple[pd.DataFrame, tuple[Cleaned, ...]]:
        return self.build_devices()

    @property
    def devices(self) -> pd.DataFrame:
        return self._devices[0]

    @property
    def devices_cleaned(self) -> tuple[Cleaned, ...]:
        """What cleaning changed in the devices."""
        return self._devices[1]

    @cached_property
    def user_records(self) -> Sequence[UserRecord]:
        """The users as records, in the table's order (made once)."""
        return frames.records(self.users)

    @property
    def tenant_id(self) -> str:
        return self.head.tenant_id

    @property
    def display_name(self) -> str:
        return self.head.display_name

    @property
    def organization(self) -> Organization:
        return self.head.organization

    @property
    def licenses(self) -> pd.DataFrame:
        return self.head.licenses


@dataclass(frozen=True)
class UnchangedTenant:
    """A tenant whose users and mailbox report are as the last sync saw them (an empty delta on
    the cached snapshot, no new report): its head, and `load` to build the snapshot if the store
    says the tenant must be planned all the same (it reads the cached files)."""

    head: TenantHead
    load: Callable[[], TenantSnapshot] = field(repr=False)

    @property
    def tenant_id(self) -> str:
        return self.head.tenant_id


TenantRead = TenantSnapshot | UnchangedTenant
