"""Sync options: which users, which data, how fields map, what to do with likely duplicates.

One model serves the configuration file (`glue.yaml`, or the file GLUE_CONFIG names) and the
Dagster resource config (defs/resources.py derives its config form from these models), so both
are validated the same way and a bad value is refused before anything is written, naming the
field and the fix. Secrets never live here: they come from environment variables (see
settings.py). Plain pydantic: planning and matching read the options without loading Dagster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from glue_pipeline.settings import PROJECT_ROOT, ConfigError, decode_utf8, describe_invalid

# Graph user properties a contact field can be mapped from (all are $select-ed).
MAPPABLE_USER_PROPERTIES = {
    "givenName", "surname", "displayName", "jobTitle", "officeLocation", "mobilePhone",
    "businessPhones", "department", "companyName", "employeeId", "mail", "preferredLanguage",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserSelection(_Strict):
    """Which Microsoft users become contacts. Default: every licensed member."""

    subscriptions: list[str] = Field(
        default_factory=list,
        description="SKU part numbers the MSP manages (e.g. SPB, O365_BUSINESS_PREMIUM); a user needs "
                    "one of them. Empty: any license.")
    include_unlicensed: bool = Field(default=False, description="Sync members without any license.")
    include_guests: bool = Field(default=False, description="Sync guest accounts (#EXT#, userType Guest).")
    include_disabled: bool = Field(default=True, description="Sync accounts that are disabled in Entra ID.")
    include_shared_mailboxes: bool = Field(
        default=False, description="Sync shared and resource mailboxes (told apart by the mailbox report).")


# The contact fields FieldMapping maps from a Graph user property.
MAPPED_CONTACT_FIELDS = ("first_name", "last_name", "title", "location", "work_phone", "mobile_phone")


class _PropertyMapping(_Strict):
    """Fields of the store (MAPPED) each taken from a Graph property, or left alone (null)."""

    MAPPED: ClassVar[tuple[str, ...]]

    def properties(self) -> dict[str, str]:
        """Field -> the Graph property it is mapped from (fields left alone omitted)."""
        mapped = {name: getattr(self, name) for name in self.MAPPED}
        return {name: prop for name, prop in mapped.items() if prop is not None}


class FieldMapping(_PropertyMapping):
    """Contact field <- Graph user property. null leaves the contact field alone."""

    MAPPED = MAPPED_CONTACT_FIELDS

    first_name: str | None = "givenName"
    last_name: str | None = "surname"
    title: str | None = "jobTitle"
    location: str | None = "officeLocation"
    work_phone: str | None = "businessPhones"
    mobile_phone: str | None = "mobilePhone"
    aliases: bool = Field(default=True, description="Add the smtp proxy addresses as alias emails.")
    primary_email: Literal["upn", "mail"] = Field(
        default="upn", description="The contact's primary email. upn: the user principal name; mail: the "
                                   "user's mail address (the UPN stays as another email), or the UPN for a "
                                   "user without one.")

    @field_validator(*MAPPED_CONTACT_FIELDS)
    @classmethod
    def _known_property(cls, value: str | None) -> str | None:
        if value is not None and value not in MAPPABLE_USER_PROPERTIES:
            raise ValueError(f"'{value}' is not a Graph user property that can be mapped; use one of "
                             f"{', '.join(sorted(MAPPABLE_USER_PROPERTIES))} or null")
        return value



# Graph managedDevice properties a configuration field can be mapped from (all are $select-ed).
MAPPABLE_DEVICE_PROPERTIES = {
    "deviceName", "managedDeviceName", "serialNumber", "manufacturer", "model", "operatingSystem", "osVersion",
    "imei", "meid", "phoneNumber", "wiFiMacAddress", "azureADDeviceId", "deviceCategoryDisplayName",
}
# The configuration fields DeviceFieldMapping maps from a Graph managedDevice property.
MAPPED_CONFIGURATION_FIELDS = ("name", "serial_number", "manufacturer", "model", "operating_system", "os_version")


class DeviceFieldMapping(_PropertyMapping):
    """Configuration field <- Graph managedDevice property. null leaves the configuration field alone."""

    MAPPED = MAPPED_CONFIGURATION_FIELDS

    name: str | None = "deviceName"
    serial_number: str | None = "serialNumber"
    manufacturer: str | None = "manufacturer"
    model: str | None = "model"
    operating_system: str | None = "operatingSystem"
    os_version: str | None = "osVersion"

    @field_validator(*MAPPED_CONFIGURATION_FIELDS)
    @classmethod
    def _known_property(cls, value: str | None) -> str | None:
        if value is not None and value not in MAPPABLE_DEVICE_PROPERTIES:
            raise ValueError(f"'{value}' is not a Graph managedDevice property that can be mapped; use one of "
                             f"{', '.join(sorted(MAPPABLE_DEVICE_PROPERTIES))} or null")
        return value



class DeviceOptions(_Strict):
    """Intune managed devices as configurations. `devices: false` (or true) stands for
    `devices: {enabled: false}`."""

    enabled: bool = Field(default=True, description="Read each tenant's Intune managed devices into configurations "
                                                    "(needs DeviceManagementManagedDevices.Read.All).")
    include_personal: bool = Field(default=False, description="Also sync personally owned (BYOD) devices.")
    operating_systems: list[str] = Field(
        default_factory=list, description="Only devices whose operating system starts with one of these (case "
                                          "ignored: Windows, macOS, iOS, iPadOS, Android, Linux). Empty: every one.")
    mapping: DeviceFieldMapping = Field(default_factory=DeviceFieldMapping)

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: object) -> object:
        return {"enabled": value} if isinstance(value, bool) else value


class SyncOptions(_Strict):
    users: UserSelection = Field(default_factory=UserSelection)
    licenses: bool = Field(default=True, description="Read subscribed SKUs and each user's licenses.")
    mailbox_usage: bool = Field(default=True, description="Read the mailbox usage report (mailbox overlay).")
    entra: bool = Field(default=True, description="Enhance contacts with Entra ID: status, last sign-in, "
                                                  "last password change.")
    duplicate_policy: Literal["hold", "create"] = Field(
        default="hold", description="hold: users that probably exist already as a contact are not created "
                                    "until an analyst decides; create: create them anyway.")
    accept_suggestions_at: int | None = Field(
        default=None, ge=50, le=100,
        description="Auto-accept: a tenant whose best organization suggestion scores at least this (50-100) is "
                    "matched to it by the sync, recorded as a decision by `policy`, and its contacts are written "
                    "in that sync. A conflict (the organization is another tenant's) still waits. Unset: every "
                    "suggestion waits for an analyst.")
    users_delta: bool = Field(
        default=True, description="Read only the users changed since the last sync (Graph delta query).")
    full_read_hours: int = Field(
        default=24, ge=1, description="Read every user again (and their last sign-in) at least this often.")
    fix_concealed_reports: bool = Field(
        default=False, description="Switch report name concealment off in a tenant that has it on "
                                   "(needs ReportSettings.ReadWrite.All).")
    mapping: FieldMapping = Field(default_factory=FieldMapping)
    devices: DeviceOptions = Field(default_factory=DeviceOptions)


def parse_options(raw: object, source: str = "sync options") -> SyncOptions:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of options, got {type(raw).__name__}")
    try:
        return SyncOptions.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_invalid(exc, source, "option",
                                           "fix it as README.md 'Sync options' describes")) from None


def config_path(environ: dict[str, str] | None = None) -> Path | None:
    """GLUE_CONFIG, else glue.yaml in the project folder when it exists."""
    environ = dict(os.environ if environ is None else environ)
    named = environ.get("GLUE_CONFIG", "").strip()
    if named:
        if not Path(named).is_file():
            raise ConfigError(f"GLUE_CONFIG={named} does not exist: point it at your glue.yaml or unset it")
        return Path(named)
    default = PROJECT_ROOT / "glue.yaml"
    return default if default.is_file() else None


CONFIG_SECTIONS = ("sync", "sources")


def read_config_file(path: Path | None) -> dict[str, Any]:
    """The configuration file as a mapping with only the known sections (empty when no file)."""
    if path is None:
        return {}
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"the configuration file {path} cannot be read ({exc.strerror}): make it "
                          "readable, or point GLUE_CONFIG at another file") from exc
    text = decode_utf8(data, f"the configuration file {path}", "save it as UTF-8 (in an editor: "
                       "encoding UTF-8), or point GLUE_CONFIG at a UTF-8 copy")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected sections {', '.join(CONFIG_SECTIONS)} at the top level")
    unknown = sorted(set(raw) - set(CONFIG_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; the file has the sections "
                          f"{', '.join(CONFIG_SECTIONS)} (README 'Sync options')")
    return raw


def load_options(path: Path | None) -> SyncOptions:
    return parse_options(read_config_file(path).get("sync"), source=f"{path} section 'sync'")
