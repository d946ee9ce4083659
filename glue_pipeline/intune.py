"""Reading a tenant's Intune managed devices through Graph into the snapshot's devices table.

`GET /deviceManagement/managedDevices` (v1.0) needs the application permission
DeviceManagementManagedDevices.Read.All and an active Intune licence in the tenant. Without the
permission Graph answers 403; in a tenant without Intune, 400 "Request not applicable to target
tenant". Either way the tenant still syncs its users: the devices are not read, a note says why
and how to fix it, and the configurations already documented are left as they are.

The list is read whole at every sync (managedDevices has no delta query); it is one request for
up to 1,000 devices, sent in the same Graph batch as the organization and the licences when the
users come from a delta query.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from glue_pipeline.graph import JsonObject
from glue_pipeline.graph.client import BatchCall
from glue_pipeline.graph.errors import GraphError, PermissionDeniedError
from glue_pipeline.options import DeviceOptions
from glue_pipeline.snapshot import DEVICE_FIELDS, device_column
from glue_pipeline.untrusted import CLEANING_VERSION, Cleaner, clean_devices, device_limits
from glue_pipeline.vocabulary import DevicesState

DEVICES_PATH = "deviceManagement/managedDevices"
DEVICE_PAGE_SIZE = 1000  # managedDevices' largest page
# Intune's 400 for a tenant without an Intune licence says this in its message.
NOT_APPLICABLE = "not applicable to target tenant"
NO_PERMISSION_NOTE = ("devices were not read: the app lacks the application permission "
                      "DeviceManagementManagedDevices.Read.All in this tenant; grant it to the app and have the "
                      "customer re-consent (README 'Permissions'), or set the sync option devices: false")
NO_INTUNE_NOTE = ("devices were not read: the tenant has no active Intune licence (Graph: request not applicable to "
                  "target tenant); documented configurations are left as they are. Set devices: false to stop reading "
                  "devices, or license Intune in the tenant")


# Properties that change at every check-in: left out of the digest, so that a tenant whose devices
# only checked in is not planned again for it (they are written whenever the tenant is planned, and
# at least at every full read of its users).
VOLATILE_PROPERTIES = frozenset({"lastSyncDateTime", "freeStorageSpaceInBytes"})


def devices_digest(rows: list[JsonObject]) -> str:
    """A digest of the devices as Graph sent them (their order ignored), but for VOLATILE_PROPERTIES:
    the same devices give the same digest, so an unchanged tenant is told without cleaning them or
    building their table."""
    lasting = sorted(json.dumps({k: v for k, v in row.items() if k not in VOLATILE_PROPERTIES}, sort_keys=True,
                                default=str) for row in rows)
    return hashlib.sha256(json.dumps([CLEANING_VERSION, lasting]).encode()).hexdigest()


def device_properties(options: DeviceOptions) -> list[str]:
    """The managedDevice properties to $select: the pipeline's own plus whatever the mapping names."""
    mapped = options.mapping.properties().values()
    return [*DEVICE_FIELDS, *(p for p in dict.fromkeys(mapped) if p not in DEVICE_FIELDS)]


def devices_call(options: DeviceOptions) -> BatchCall:
    """The first page of the device list, as a request of its own or a call in a Graph batch."""
    return BatchCall(DEVICES_PATH, {"$select": ",".join(device_properties(options)), "$top": DEVICE_PAGE_SIZE})


def unreadable_state(error: GraphError) -> DevicesState | None:
    """Why the devices cannot be read, when the error says the tenant or the app cannot have them
    (None: any other error, which fails the tenant like any Graph error)."""
    if isinstance(error, PermissionDeniedError):
        return "no_permission"
    if error.status == 400 and NOT_APPLICABLE in error.message.lower():
        return "no_intune"
    return None


def state_note(state: DevicesState) -> str | None:
    return {"no_permission": NO_PERMISSION_NOTE, "no_intune": NO_INTUNE_NOTE}.get(state)


def device_table(rows: list[JsonObject], options: DeviceOptions, cleaner: Cleaner) -> pd.DataFrame:
    """The devices table (columns.DEVICE_COLUMNS, plus a column per further mapped property), cleaned."""
    cleaned = clean_devices(rows, device_limits(options.mapping.properties()), cleaner)
    frame = pd.DataFrame(cleaned, columns=device_properties(options)).rename(columns=device_column)
    return frame.astype(object).where(frame.notna(), None)


def no_devices(options: DeviceOptions) -> pd.DataFrame:
    return device_table([], options, Cleaner())
