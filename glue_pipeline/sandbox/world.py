"""The sandbox world: tenants, users, licenses and Intune managed devices as Microsoft would hold
them, plus the documentation store's starting organizations, contacts and configurations.

A world is a JSON document (schema in the README, section "World files"). Users, SKUs and
devices use Graph's own field names so the sandbox serves them as they are. Loading validates the whole
file and names the first bad field, so a broken world is refused before anything runs.

Its times (sign-ins, creation dates, the mailbox report's date) count back from the world's
`reference_date`, the moment it was generated at; `redated` moves them all to another one.

Besides the partner's multi-tenant app (`app`), a world may hold `direct_apps`: app
registrations made inside one customer's own tenant ("direct login"). Such an app gets tokens
for that tenant only. A tenant reached only that way has `relationship: "none"`: it is absent
from the partner's contracts and GDAP lists, and the partner app is not installed there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from glue_pipeline.settings import describe_invalid

SCHEMA_VERSION = 1
# The reference date of worlds written before worlds recorded theirs.
FIRST_REFERENCE_DATE = datetime(2026, 11, 1, tzinfo=UTC)

# Application permissions the pipeline asks for (see README "Permissions").
DEFAULT_ROLES = [
    "Directory.Read.All",
    "User.Read.All",
    "Organization.Read.All",
    "Domain.Read.All",
    "Reports.Read.All",
    "DelegatedAdminRelationship.Read.All",
    "DeviceManagementManagedDevices.Read.All",
]


class WorldError(ValueError):
    """A world file that cannot be used; the message names the field and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _check_guid(value: str) -> str:
    if _GUID.fullmatch(value) is None:
        raise PydanticCustomError(
            "guid", "'{value}' is not a GUID (8-4-4-4-12 hex digits, e.g. 3b555118-da6a-4418-894f-7df1e2096870), "
            "as Microsoft ids are: make one with python -c 'import uuid; print(uuid.uuid4())'", {"value": value})
    return value


# Tenant, object, application and SKU ids: GUIDs, as Microsoft issues them.
Guid = Annotated[str, AfterValidator(_check_guid)]

Loc = tuple[str | int, ...]


def _repeats(what: str, why: str, entries: Iterable[tuple[str | int, Loc]]) -> Iterator[InitErrorDetails]:
    """An error for each entry whose value came before (strings compared in any case: GUIDs and
    domain names), naming where the first one is."""
    first: dict[str | int, Loc] = {}
    for value, loc in entries:
        earlier = first.setdefault(value.lower() if isinstance(value, str) else value, loc)
        if earlier is not loc:
            where = ".".join(map(str, earlier))
            # Preformatted (no context): a value holding "{...}" stays as it is.
            message = f"{what} {value!r} is already used at '{where}' ({why}): give one of them another {what}"
            yield InitErrorDetails(type=PydanticCustomError("duplicate", message), loc=loc, input=value)


class _Dated:
    """Marks a field holding a date or a time of the world (ISO-8601, the date first), which
    `redated` moves with the world's reference date."""


# A date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ) that counts back from the reference date.
Dated = Annotated[str | None, _Dated()]


class Domain(_Model):
    name: str
    is_default: bool = False
    is_initial: bool = False
    is_verified: bool = True


class AssignedLicense(_Model):
    skuId: Guid
    disabledPlans: list[Guid] = Field(default_factory=list)


class SignInActivity(_Model):
    lastSignInDateTime: Dated = None
    lastNonInteractiveSignInDateTime: Dated = None
    lastSuccessfulSignInDateTime: Dated = None


class Mailbox(_Model):
    """One row of the mailbox usage report for a user."""

    storage_used_bytes: int = 0
    item_count: int = 0
    last_activity_date: Dated = None
    issue_warning_quota_bytes: int = 52613349376
    prohibit_send_quota_bytes: int = 53687091200
    prohibit_send_receive_quota_bytes: int = 53687091200
    deleted_item_count: int = 0
    deleted_item_size_bytes: int = 0
    deleted_item_quota_bytes: int = 32212254720
    has_archive: bool = False
    created_date: Dated = None
    recipient_type: str = "User"


class User(_Model):
    """A user as Graph returns it (camelCase names), plus the mailbox report row."""

    id: Guid
    userPrincipalName: str
    displayName: str | None = None
    givenName: str | None = None
    surname: str | None = None
    mail: str | None = None
    jobTitle: str | None = None
    businessPhones: list[str] = Field(default_factory=list)
    mobilePhone: str | None = None
    officeLocation: str | None = None
    preferredLanguage: str | None = None
    accountEnabled: bool = True
    userType: Literal["Member", "Guest"] = "Member"
    proxyAddresses: list[str] = Field(default_factory=list)
    assignedLicenses: list[AssignedLicense] = Field(default_factory=list)
    createdDateTime: Dated = None
    lastPasswordChangeDateTime: Dated = None
    signInActivity: SignInActivity | None = None
    mailbox: Mailbox | None = None


def _check_user_ref(value: str) -> str:
    return value if value == "" else _check_guid(value)


# A primary user's object id, or "" for a device without one (as Graph writes it).
UserRef = Annotated[str, AfterValidator(_check_user_ref)]
ComplianceState = Literal["unknown", "compliant", "noncompliant", "conflict", "error", "inGracePeriod",
                          "configManager"]


class ManagedDevice(_Model):
    """An Intune managed device as Graph returns it (camelCase names).

    userId and userPrincipalName are "" for a device without a primary user; userId may name a
    user no longer among the tenant's users (left the company, never synced). wiFiMacAddress is 12
    hex digits or "". ethernetMacAddress is what Graph gives only when one device is read with
    $select; its lists carry null.
    """

    id: Guid
    deviceName: str
    serialNumber: str = ""
    manufacturer: str = ""
    model: str = ""
    operatingSystem: str = ""
    osVersion: str = ""
    complianceState: ComplianceState = "unknown"
    managedDeviceOwnerType: Literal["company", "personal", "unknown"] = "company"
    managementAgent: str = "mdm"
    enrolledDateTime: Dated = None
    lastSyncDateTime: Dated = None
    userId: UserRef = ""
    userPrincipalName: str = ""
    userDisplayName: str = ""
    emailAddress: str = ""
    azureADDeviceId: str = ""
    wiFiMacAddress: str = ""
    ethernetMacAddress: str | None = None
    imei: str = ""
    isEncrypted: bool = False
    totalStorageSpaceInBytes: int = 0
    freeStorageSpaceInBytes: int = 0


class Sku(_Model):
    skuId: Guid
    skuPartNumber: str
    enabled: int = 0
    suspended: int = 0
    warning: int = 0
    lockedOut: int = 0
    capabilityStatus: Literal["Enabled", "Warning", "Suspended", "Deleted", "LockedOut"] = "Enabled"
    appliesTo: Literal["User", "Company"] = "User"


class Tenant(_Model):
    id: Guid
    display_name: str
    domains: list[Domain]
    # How the partner reaches the tenant: legacy DAP contract, GDAP, both, or "none" (not at
    # all: the tenant is reached only through a direct-login app, see World.direct_apps).
    relationship: Literal["dap", "gdap", "both", "none"] = "both"
    consent: Literal["granted", "revoked"] = "granted"
    roles: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLES))
    reports_concealed: bool = False
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country_letter_code: str | None = None
    phone: str | None = None
    users: list[User] = Field(default_factory=list)
    skus: list[Sku] = Field(default_factory=list)
    # False: no Intune licence, so managedDevices answers 400 "Request not applicable to target tenant".
    intune: bool = True
    devices: list[ManagedDevice] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_initial_and_default(self) -> Tenant:
        for flag in ("is_initial", "is_default"):
            count = sum(getattr(d, flag) for d in self.domains)
            if count != 1:
                raise ValueError(f"tenant {self.id} needs exactly one domain with {flag}=true, has {count}")
        return self

    @property
    def initial_domain(self) -> str:
        return next(d.name for d in self.domains if d.is_initial)

    @property
    def default_domain(self) -> str:
        return next(d.name for d in self.domains if d.is_default)


class Partner(_Model):
    tenant_id: Guid
    display_name: str
    default_domain: str


class App(_Model):
    """The partner's multi-tenant app registration (client credentials)."""

    client_id: Guid
    client_secret: str


class DirectApp(_Model):
    """An app registered inside one customer's own tenant (a "direct login" data source).

    Its credentials get tokens for `tenant_id` only; on any other tenant the identity platform
    answers AADSTS700016 (app not found in that directory). `roles` are the application
    permissions granted to it there; None means the same roles as the tenant's `roles`.
    """

    tenant_id: Guid
    client_id: Guid
    client_secret: str
    roles: list[str] | None = None


class ContactEmail(_Model):
    value: str
    label: str = "Work"
    primary: bool = False


class ContactPhone(_Model):
    value: str
    label: str = "Work"
    primary: bool = False


class StoreConfigurationLink(_Model):
    """The Intune managed device an earlier sync linked a configuration to."""

    tenant_id: Guid
    device_id: Guid


class StoreConfiguration(_Model):
    """A device as the documentation store holds it, typed in by hand: the serial number and MAC
    address in whatever format the person used."""

    id: int
    name: str
    configuration_type: str | None = None
    serial_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    operating_system: str | None = None
    os_version: str | None = None
    mac_address: str | None = None
    primary_contact_id: int | None = None
    microsoft: StoreConfigurationLink | None = None


class StoreOrganization(_Model):
    id: int
    name: str
    configurations: list[StoreConfiguration] = Field(default_factory=list)


class StoreContact(_Model):
    id: int
    organization_id: int
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    emails: list[ContactEmail] = Field(default_factory=list)
    phones: list[ContactPhone] = Field(default_factory=list)


class StoreSeed(_Model):
    organizations: list[StoreOrganization] = Field(default_factory=list)
    contacts: list[StoreContact] = Field(default_factory=list)

    @model_validator(mode="after")
    def _contacts_point_at_organizations(self) -> StoreSeed:
        org_ids = {o.id for o in self.organizations}
        for contact in self.contacts:
            if contact.organization_id not in org_ids:
                raise ValueError(
                    f"contact {contact.id} names organization_id {contact.organization_id}, "
                    "which is not among store.organizations"
                )
        contacts_of = {(c.id, c.organization_id) for c in self.contacts}
        for organization in self.organizations:
            for configuration in organization.configurations:
                contact = configuration.primary_contact_id
                if contact is not None and (contact, organization.id) not in contacts_of:
                    raise ValueError(
                        f"configuration {configuration.id} names primary_contact_id {contact}, which is not a "
                        f"contact of its organization {organization.id}"
                    )
        return self


class World(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    seed: int | None = None
    # The moment the world's times count back from: an ISO-8601 time with its offset.
    reference_date: AwareDatetime = FIRST_REFERENCE_DATE
    partner: Partner
    app: App
    tenants: list[Tenant]
    store: StoreSeed = Field(default_factory=StoreSeed)
    # Apps registered inside customer tenants (direct login); empty for a partner-only world.
    direct_apps: list[DirectApp] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> World:
        # Raised as a ValidationError, the errors keep their own field paths (a ValueError would
        # be reported at the top level).
        errors = list(self._repeats())
        if errors:
            raise ValidationError.from_exception_data("World", errors)
        return self

    @model_validator(mode="after")
    def _every_tenant_reachable(self) -> World:
        seen = {tenant.id for tenant in self.tenants}
        for app in self.direct_apps:
            if app.tenant_id not in seen:
                raise ValueError(f"direct app {app.client_id} names tenant_id {app.tenant_id}, which is not "
                                 "among tenants")
        direct = {a.tenant_id for a in self.direct_apps}
        for tenant in self.tenants:
            if tenant.relationship == "none" and tenant.id not in direct:
                raise ValueError(f"tenant {tenant.id} has relationship 'none' but no direct app, so nothing "
                                 "can reach it: add a direct_apps entry for it or give it a relationship")
        return self

    def _repeats(self) -> Iterator[InitErrorDetails]:
        """Ids and domain names that Microsoft (and so the sandbox) holds only once."""
        tenants = list(enumerate(self.tenants))
        yield from _repeats("tenant id", "tenant ids are unique across Microsoft, the partner's included", chain(
            [(self.partner.tenant_id, ("partner", "tenant_id"))],
            ((t.id, ("tenants", i, "id")) for i, t in tenants)))
        yield from _repeats("user id", "object ids are unique across all tenants", (
            (u.id, ("tenants", i, "users", j, "id")) for i, t in tenants for j, u in enumerate(t.users)))
        yield from _repeats("domain name", "a domain belongs to one tenant only, the partner's included", chain(
            [(self.partner.default_domain, ("partner", "default_domain"))],
            ((d.name, ("tenants", i, "domains", j, "name")) for i, t in tenants for j, d in enumerate(t.domains))))
        yield from _repeats("client_id", "each app registration has its own", chain(
            [(self.app.client_id, ("app", "client_id"))],
            ((a.client_id, ("direct_apps", i, "client_id")) for i, a in enumerate(self.direct_apps))))
        for i, t in tenants:
            yield from _repeats("device id", "a tenant's managed device ids are unique", (
                (d.id, ("tenants", i, "devices", j, "id")) for j, d in enumerate(t.devices)))
        for kind, rows in (("organization", self.store.organizations), ("contact", self.store.contacts)):
            yield from _repeats(f"{kind} id", "the store's ids are unique", (
                (row.id, ("store", f"{kind}s", i, "id")) for i, row in enumerate(rows)))
        configurations = [(("store", "organizations", i, "configurations", j), c)
                          for i, o in enumerate(self.store.organizations) for j, c in enumerate(o.configurations)]
        yield from _repeats("configuration id", "the store's ids are unique",
                            ((c.id, (*loc, "id")) for loc, c in configurations))
        yield from _repeats("linked device", "a tenant's device is linked to one configuration at most", (
            (f"{c.microsoft.tenant_id}/{c.microsoft.device_id}", (*loc, "microsoft", "device_id"))
            for loc, c in configurations if c.microsoft))

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def direct_app(self, tenant_id: str) -> DirectApp | None:
        """The first direct-login app registered in a tenant, if any."""
        return next((a for a in self.direct_apps if a.tenant_id == tenant_id), None)

    @property
    def user_count(self) -> int:
        return sum(len(t.users) for t in self.tenants)


def redated(world: World, reference_date: datetime) -> World:
    """A copy of `world` whose reference date is `reference_date`, every date and time of it
    moved by the same whole number of days (whole days keep the report's plain dates true)."""
    shift = reference_date - world.reference_date
    if shift % timedelta(days=1):
        raise ValueError(f"reference_date={reference_date.isoformat()} is not a whole number of days from the "
                         f"world's {world.reference_date.isoformat()}: move it by whole days")
    moved = world.model_copy(deep=True, update={"reference_date": reference_date})
    _move_dates(moved, shift.days)
    return moved


def _move_dates(model: BaseModel, days: int) -> None:
    """Move every `Dated` field of `model` and of the models it holds by `days` days."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if value is not None and any(isinstance(m, _Dated) for m in info.metadata):
            setattr(model, name, (date.fromisoformat(value[:10]) + timedelta(days=days)).isoformat() + value[10:])
        for part in value if isinstance(value, list) else [value]:
            if isinstance(part, BaseModel):
                _move_dates(part, days)


def load_world(path: str | Path) -> World:
    """Read and validate a world file; raise WorldError naming the bad field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorldError(f"world file {path} does not exist: pass an existing file or generate one "
                         "with `glue-pipeline sandbox world --out FILE`") from None
    except json.JSONDecodeError as exc:
        raise WorldError(f"world file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}); fix the JSON syntax there") from None
    return parse_world(raw, source=str(path))


def parse_world(raw: object, source: str = "world") -> World:
    try:
        return World.model_validate(raw)
    except ValidationError as exc:
        raise WorldError(describe_invalid(
            exc, source, "field", "fix it to match the world schema in README.md (section 'World files')")) from None


def save_world(world: World, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A partner-only world is written exactly as before direct apps existed.
    exclude = None if world.direct_apps else {"direct_apps"}
    path.write_text(world.model_dump_json(indent=1, exclude_none=True, exclude=exclude), encoding="utf-8")
