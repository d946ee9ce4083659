"""Graph's reports: the mailbox usage report (a 302 to a pre-authenticated CSV download on another
host name) and the tenant's report settings (whether reports conceal user names).

As at Graph, the download link needs no token: the download host refuses a request that carries
an Authorization header (counted in SandboxStats.download_tokens_refused), so a client that sends
its bearer token after the redirect is caught."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .odata import GraphCall, GraphError, GraphJSONResponse, json_bytes
from .state import SandboxState
from .tls import DOWNLOAD_HOST, GRAPH_HOST
from .world import Tenant

REPORT_PERIODS = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
REPORT_LINK_LIFETIME_S = 600
REPORT_CSV_FAULTS = ("truncated", "malformed", "empty", "no_bom")
REPORT_LAYOUTS = ("standard", "no_recipient_type", "reordered")
MAILBOX_REPORT_HEADER = [
    "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date",
    "Created Date", "Last Activity Date", "Item Count", "Storage Used (Byte)",
    "Issue Warning Quota (Byte)", "Prohibit Send Quota (Byte)", "Prohibit Send/Receive Quota (Byte)",
    "Deleted Item Count", "Deleted Item Size (Byte)", "Deleted Item Quota (Byte)", "Has Archive",
    "Recipient Type", "Report Period",
]


@dataclass(frozen=True)
class _Download:
    tenant_id: str
    period_days: int
    expires: float


def invalid_permission() -> GraphError:
    """The reports service's refusal of a token without the report permission: Graph wraps the
    service's own error in an UnknownError."""
    inner = {"error": {"code": "S2SUnauthorized", "message": "Invalid permission."}}
    return GraphError(403, "UnknownError", json_bytes(inner).decode())


def download_origin(request: Request) -> str:
    """Where report downloads are served: the same server under its other host name, as Graph
    hands report downloads to a download host of their own."""
    host = GRAPH_HOST if request.url.hostname == DOWNLOAD_HOST else DOWNLOAD_HOST
    port = request.url.port
    return f"https://{host}" + (f":{port}" if port else "")


def _concealed(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest().upper()


def report_header(layout: str) -> list[str]:
    """The report's columns in a layout (see Faults.report_layout): "standard" as Graph sends them
    today, "no_recipient_type" without Recipient Type, "reordered" in reverse order."""
    if layout == "standard":
        return list(MAILBOX_REPORT_HEADER)
    if layout == "no_recipient_type":
        return [c for c in MAILBOX_REPORT_HEADER if c != "Recipient Type"]
    if layout == "reordered":
        return list(reversed(MAILBOX_REPORT_HEADER))
    raise ValueError(f"unknown report_layout {layout!r}: use one of {', '.join(REPORT_LAYOUTS)}")


def _mailbox_usage_csv(tenant: Tenant, period_days: int, reference_date: datetime, layout: str = "standard") -> bytes:
    """The report as Microsoft refreshed it the day before the world's reference date."""
    refresh = (reference_date - timedelta(days=1)).date().isoformat()
    header = report_header(layout)
    positions = [MAILBOX_REPORT_HEADER.index(column) for column in header]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for user in tenant.users:
        box = user.mailbox
        if box is None:
            continue
        upn, name = user.userPrincipalName, user.displayName or ""
        if tenant.reports_concealed:
            upn = name = _concealed(user.userPrincipalName)
        created = box.created_date or (user.createdDateTime or "")[:10]
        row = [
            refresh, upn, name, "False", "", created, box.last_activity_date or "", box.item_count,
            box.storage_used_bytes, box.issue_warning_quota_bytes, box.prohibit_send_quota_bytes,
            box.prohibit_send_receive_quota_bytes, box.deleted_item_count, box.deleted_item_size_bytes,
            box.deleted_item_quota_bytes, str(box.has_archive), box.recipient_type, period_days,
        ]
        writer.writerow([row[i] for i in positions])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _spoil_report(body: bytes, mode: str) -> bytes:
    """The mailbox usage CSV as a broken report service might hand it out (see Faults.report_csv)."""
    text = body.decode("utf-8-sig")
    lines = text.rstrip("\r\n").split("\r\n")
    header, rows = lines[0], lines[1:]
    if mode == "no_bom":
        return text.encode()
    if mode == "empty":
        return ("\ufeff" + header + "\r\n").encode()
    if mode == "truncated":
        kept = [header, *rows[:-1]]
        last = rows[-1] if rows else header
        cut = last[: max(1, len(last) // 2)]  # cut between characters, mid-row
        return ("\ufeff" + "\r\n".join(kept if rows else []) + ("\r\n" if rows else "") + cut).encode()
    if mode == "malformed":
        spoiled = [header]
        for index, row in enumerate(rows):
            fields = row.split(",")
            if index % 4 == 1:
                row = ",".join(fields[:-3])  # too few columns
            elif index % 4 == 2 and len(fields) > 8:
                fields[8] = "n/a"  # Storage Used (Byte) is not a number
                row = ",".join(fields)
            spoiled.append(row)
            if index == 0:
                spoiled.append("<!-- report service error 0x80004005: partial result -->")
        if not rows:
            spoiled.append("<!-- report service error 0x80004005: partial result -->")
        return ("\ufeff" + "\r\n".join(spoiled) + "\r\n").encode()
    raise ValueError(f"unknown report_csv fault {mode!r}: use one of {', '.join(REPORT_CSV_FAULTS)}")


class ReportRoutes:
    """The report endpoints, and the download links the mailbox usage report hands out."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._downloads: dict[str, _Download] = {}

    async def mailbox_usage(self, call: GraphCall) -> Response:
        period = call.match["period"]
        days = REPORT_PERIODS.get(period.upper())
        if days is None:
            raise GraphError(400, "BadRequest", f"Invalid period '{period}': use one of D7, D30, D90, D180.")
        now = time.monotonic()
        self._downloads = {k: v for k, v in self._downloads.items() if v.expires > now}
        token = secrets.token_urlsafe(24)
        self._downloads[token] = _Download(call.tenant.id, days, now + REPORT_LINK_LIFETIME_S)
        return RedirectResponse(f"{download_origin(call.request)}/reports-download/{token}.csv", status_code=302)

    async def report_settings(self, call: GraphCall) -> Response:
        return GraphJSONResponse({"@odata.context": f"{call.origin}/v1.0/$metadata#admin/reportSettings/$entity",
                             "id": call.tenant.id, "displayConcealedNames": call.tenant.reports_concealed})

    async def update_report_settings(self, call: GraphCall) -> Response:
        try:
            body = json.loads(await call.request.body())
            concealed = body["displayConcealedNames"]
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest",
                             "Expected a JSON body like {\"displayConcealedNames\": false}.") from None
        if not isinstance(concealed, bool):
            raise GraphError(400, "BadRequest", "displayConcealedNames must be true or false.")
        call.tenant.reports_concealed = concealed
        return Response(status_code=204)

    async def download(self, request: Request) -> Response:
        if "authorization" in request.headers:
            self.state.stats.download_tokens_refused += 1
            raise GraphError(400, "BadRequest", "The report download link is pre-authenticated: send it without "
                             "an Authorization header (the bearer token is for Graph, not the download host).")
        token = request.path_params["name"].removesuffix(".csv")
        link = self._downloads.get(token)
        tenant = self.state.existing_tenant(link.tenant_id) if link and link.expires > time.monotonic() else None
        if tenant is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             "The report download link is unknown or has expired; request the report again.")
        reference_date = self.state.config.world.reference_date
        filename = f"MailboxUsageDetail{reference_date:%m_%d_%Y}.csv"
        with self.state.lock:
            failing = self.state.faults.failing_downloads
            if failing.get(tenant.id, 0) > 0:
                failing[tenant.id] -= 1
                self.state.stats.server_errors += 1
                raise GraphError(503, "ServiceUnavailable", "The report download is not available; retry later.")
            body = _mailbox_usage_csv(tenant, link.period_days, reference_date,
                                      self.state.faults.report_layout.get(tenant.id, "standard"))
        spoil = self.state.faults.report_csv.get(tenant.id)
        if spoil:
            body = _spoil_report(body, spoil)
            self.state.stats.report_faults += 1
        return Response(body, media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
