"""Intune's managed devices on Graph: GET /deviceManagement/managedDevices (pages of up to 1,000,
$select) and GET /deviceManagement/managedDevices/{id}.

Intune answers its own errors: Graph's error carries Intune's JSON as the text of its message
(refused permission, a tenant without an Intune licence, an unknown device). A list leaves
ethernetMacAddress null; only a single device read with $select naming it carries it, as Graph
documents.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from .graph import GraphRoute, route
from .odata import (
    EntitySet,
    GraphCall,
    GraphError,
    Page,
    collection,
    context,
    entity_body,
    json_bytes,
    json_response,
    next_link,
    page_window,
    read_page,
)
from .world import ManagedDevice

READ_DEVICES = ("DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All")
DEVICES_MAX_TOP = 1000  # also the page size when $top is not given
_FIELDS = tuple(ManagedDevice.model_fields)
MANAGED_DEVICES = EntitySet("deviceManagement/managedDevices", "microsoft.graph.managedDevice", _FIELDS, _FIELDS)
# Where Intune's errors say the request went.
_INTUNE_URL = "https://fef.amsub0102.manage.microsoft.com/DeviceFE/StatelessDeviceFEService"


def intune_error(status: int, code: str, message: str, path: str = "/deviceManagement/managedDevices") -> GraphError:
    """Graph's error around Intune's: Intune's JSON is the text of Graph's message."""
    support = (f" - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - Activity ID: "
               f"{uuid.uuid4()} - Url: {_INTUNE_URL}{path}?api-version=2024-05-01 - CustomApiErrorPhrase: ")
    inner = {"_version": 3, "Message": message + support, "CustomApiErrorPhrase": "", "RetryAfter": None,
             "ErrorSourceService": "", "HttpHeaders": "{}"}
    return GraphError(status, code, json_bytes(inner).decode())


def intune_forbidden() -> GraphError:
    """A token without a device management permission."""
    return intune_error(403, "Forbidden", "Application is not authorized to perform this operation. Application "
                        f"must have one of the following scopes: {', '.join(READ_DEVICES)}")


def _require_intune(call: GraphCall) -> None:
    if not call.tenant.intune:
        raise intune_error(400, "BadRequest", "Request not applicable to target tenant.")


def _row(device: ManagedDevice, ethernet: bool = False) -> dict[str, Any]:
    row = device.model_dump(mode="json")
    if not ethernet:
        row["ethernetMacAddress"] = None
    return row


def _page(call: GraphCall) -> Page:
    """The page asked for: Intune's pages hold 1,000 devices unless $top asks for fewer."""
    if not call.query.get("$skiptoken") and call.query.get("$top") is None:
        return Page(0, DEVICES_MAX_TOP, MANAGED_DEVICES.parse_select(call.query.get("$select")))
    return read_page(call, MANAGED_DEVICES, DEVICES_MAX_TOP)


async def managed_devices(call: GraphCall) -> Response:
    """GET /deviceManagement/managedDevices: a page of the tenant's devices, ethernetMacAddress null."""
    _require_intune(call)
    page = _page(call)
    rows, next_offset = page_window(call.tenant.devices, page.offset, page.top, endless=False)
    link = None if next_offset is None else next_link(call, MANAGED_DEVICES, Page(next_offset, page.top, page.select))
    return collection(call, MANAGED_DEVICES, page.select, [_row(d) for d in rows], link)


async def managed_device(call: GraphCall) -> Response:
    """GET /deviceManagement/managedDevices/{id}: one device, its ethernetMacAddress when $select names it."""
    _require_intune(call)
    key = call.match["id"]
    select = MANAGED_DEVICES.parse_select(call.query.get("$select"))
    device = next((d for d in call.tenant.devices if d.id.lower() == key.lower()), None)
    if device is None:
        raise intune_error(404, "ResourceNotFound", "An error has occurred",
                           f"/deviceManagement/managedDevices('{key}')")
    row = _row(device, ethernet=select is not None and "ethernetMacAddress" in select)
    item = json_bytes({f: row[f] for f in select or MANAGED_DEVICES.default})
    return json_response(entity_body(context(call, MANAGED_DEVICES, select) + "/$entity", item))


def device_routes() -> list[GraphRoute]:
    """The managed device routes (paths relative to /v1.0)."""
    return [
        route("managedDevices", r"deviceManagement/managedDevices", READ_DEVICES,
              frozenset({"$top", "$skiptoken", "$select"}), managed_devices, denied=intune_forbidden),
        route("managedDevice", r"deviceManagement/managedDevices/(?P<id>[^/]+)", READ_DEVICES,
              frozenset({"$select"}), managed_device, denied=intune_forbidden),
    ]
