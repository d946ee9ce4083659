"""The sandbox HTTPS server: the Microsoft identity platform (OpenID configuration, client
credentials token endpoint) and the part of Graph v1.0 the pipeline reads, over a World.

One host serves both roles, so a client points its authority host and its Graph base URL at
the same https://127.0.0.1:PORT and trusts the sandbox CA.

Identity: the partner's multi-tenant app gets tokens for the partner tenant and for every
customer tenant that has consented and has a partner relationship; a direct-login app
(World.direct_apps) gets tokens for its own tenant only (elsewhere: AADSTS700016).

Graph: contracts, delegatedAdminCustomers, organization, domains, users (signInActivity needs
AuditLog.Read.All and Entra ID P1/P2, and caps $top at 500; @odata.count and users/$count with
`ConsistencyLevel: eventual`), users/{id or userPrincipalName}, users/delta (with a per-tenant
change log: Sandbox.change_users / add_user / remove_user / mutate change the world while it
runs), subscribedSkus, the mailbox usage report (302 to a pre-authenticated CSV download on the
other host name, localhost, which refuses a bearer token) and admin/reportSettings. JSON answers
carry Graph's Content-Type (odata.GRAPH_JSON).

Faults (Sandbox.faults, changeable while it runs, counted in Sandbox.stats): latency, 429 with
Retry-After, 5xx, dropped connections, slow answers, token lifetime and forced token expiry
after N requests, endless or looping @odata.nextLink, spoiled report CSVs, revoked consent
(AADSTS700016), a removed service principal (AADSTS7000229) and vanished tenants.
`fault_tenants` narrows the per-request faults to some tenants.

This module assembles the app and serves it. The rest, by concern: config.py (SandboxConfig),
faults.py (Faults, SandboxStats), state.py (what the route groups share: world, directory,
change logs, faults, stats, lock), edits.py (changing the world while it runs), identity.py
(the identity platform; issuing and checking tokens), graph.py (Graph's front door: token,
fault, route), odata.py (Graph errors, paging, $select, JSON bodies), resources.py (Graph's
directory objects), directory.py, delta.py, reports.py and batch.py (the Graph routes), and
serving.py (uvicorn, TLS and dropped connections).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import edits
from .batch import BatchRoute
from .config import SandboxConfig
from .delta import DeltaRoutes
from .devices import device_routes
from .directory import DirectoryRoutes
from .edits import TenantChanges
from .faults import Faults, SandboxStats
from .graph import GraphApi, GraphRoute, route
from .identity import IdentityError, IdentityRoutes, Tokens, identity_error_response
from .odata import GraphError, Ids, graph_error_response, origin_of
from .reports import MAILBOX_REPORT_HEADER, ReportRoutes, invalid_permission
from .resources import ENTRA_PREMIUM_SKUS
from .serving import DropConnection, bind, drop, uvicorn_server
from .state import SandboxState
from .tls import SandboxTLS, ensure_ca
from .world import User, World

Handler: TypeAlias = Callable[[Request], Awaitable[Response]]

# The names other code imports from here, wherever they are defined.
__all__ = ["ENTRA_PREMIUM_SKUS", "MAILBOX_REPORT_HEADER", "Faults", "Sandbox", "SandboxConfig", "SandboxInfo",
           "SandboxStats", "TenantChanges", "serve_forever"]

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class SandboxInfo:
    """What a client needs to reach a running sandbox."""

    base_url: str
    authority_host: str
    graph_url: str
    ca_file: Path
    partner_tenant_id: str
    client_id: str
    tenants: int
    users: int


# --------------------------------------------------------------------------- the application


class _SandboxApp:
    """The ASGI application: the route groups over one shared state, each endpoint counted,
    delayed by the latency fault and answering errors in its platform's format."""

    def __init__(self, config: SandboxConfig) -> None:
        self.state = SandboxState(config)
        self.tokens = Tokens(self.state)
        identity = IdentityRoutes(self.state, self.tokens)
        reports = ReportRoutes(self.state)
        routes = _graph_routes(DirectoryRoutes(self.state), DeltaRoutes(self.state), reports)
        graph = GraphApi(self.state, self.tokens, routes)
        self.asgi = Starlette(routes=[
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._endpoint("openid", identity.openid),
                  methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", self._endpoint("openid", identity.keys), methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._endpoint("token", identity.token), methods=["POST"]),
            Route("/v1.0/$batch", self._endpoint("graph", BatchRoute(graph).handle), methods=["POST"]),
            Route("/v1.0/{path:path}", self._endpoint("graph", graph.handle), methods=ALL_METHODS),
            Route("/reports-download/{name}", self._endpoint("report-download", reports.download), methods=["GET"]),
            Route("/{path:path}", self._endpoint("other", _not_found), methods=ALL_METHODS),
        ])

    def _endpoint(self, kind: str, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            ids = Ids.of(request)
            stats = self.state.stats
            stats.requests[kind] += 1
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
            try:
                if self.state.faults.latency_ms > 0:
                    await asyncio.sleep(self.state.faults.latency_ms / 1000)
                response = await handler(request)
            except GraphError as err:
                response = graph_error_response(err, ids)
            except IdentityError as err:
                stats.identity_errors += 1
                response = identity_error_response(err, ids, origin_of(request))
            except DropConnection:
                response = await drop(request, ids)
            except asyncio.CancelledError:
                # Only a stopping server cancels a request (one held by latency_ms or slow_s):
                # nobody waits for the answer, and the cancellation is no error worth a traceback.
                response = Response(status_code=503)
            finally:
                stats.in_flight -= 1
            response.headers["request-id"] = ids.request_id
            response.headers["client-request-id"] = ids.client_request_id
            return response

        return endpoint


def _graph_routes(directory: DirectoryRoutes, delta: DeltaRoutes, reports: ReportRoutes) -> list[GraphRoute]:
    """Graph's routes (paths relative to /v1.0): who answers, with which roles and query options."""
    paged = frozenset({"$top", "$skiptoken", "$select"})
    select = frozenset({"$select"})
    delta_options = frozenset({"$select", "$skiptoken", "$skipToken", "$deltatoken", "$deltaToken", "$top"})
    read_dir = ("Directory.Read.All", "Directory.ReadWrite.All")
    read_users = ("User.Read.All", "User.ReadWrite.All", *read_dir)
    return [
        route("contracts", r"contracts", read_dir, paged, directory.contracts),
        route("delegatedAdminCustomers", r"tenantRelationships/delegatedAdminCustomers",
              ("DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All"), paged,
              directory.gdap_customers),
        route("organization", r"organization", ("Organization.Read.All", *read_dir), select, directory.organization),
        route("domains", r"domains", ("Domain.Read.All", *read_dir), select, directory.domains),
        route("users", r"users", read_users, paged | {"$count"}, directory.users),
        route("users/delta", r"users/(microsoft\.graph\.)?delta(\(\))?", read_users, delta_options,
              delta.users_delta),
        route("users/$count", r"users/\$count", read_users, frozenset(), directory.users_count),
        # After users/delta and users/$count: the first route that matches answers.
        route("user", r"users/(?P<key>[^/]+)", read_users, select, directory.user),
        *device_routes(),
        route("subscribedSkus", r"subscribedSkus", ("Organization.Read.All", "LicenseAssignment.Read.All",
                                                   *read_dir), select, directory.subscribed_skus),
        route("getMailboxUsageDetail", r"reports/getMailboxUsageDetail\(period='(?P<period>[^']*)'\)",
              ("Reports.Read.All",), frozenset(), reports.mailbox_usage, denied=invalid_permission),
        route("reportSettings", r"admin/reportSettings",
              ("ReportSettings.Read.All", "ReportSettings.ReadWrite.All"), frozenset(), reports.report_settings,
              denied=invalid_permission),
        route("reportSettings", r"admin/reportSettings", ("ReportSettings.ReadWrite.All",), frozenset(),
              reports.update_report_settings, method="PATCH", denied=invalid_permission),
    ]


async def _not_found(request: Request) -> Response:
    segment = request.path_params["path"].split("/")[0]
    raise GraphError(404, "Request_ResourceNotFound", f"Resource not found for the segment '{segment}'.")


# --------------------------------------------------------------------------- serving


def _info(world: World, tls: SandboxTLS, host: str, port: int) -> SandboxInfo:
    base = f"https://{host}:{port}"
    return SandboxInfo(base_url=base, authority_host=base, graph_url=f"{base}/v1.0", ca_file=tls.ca_file,
                       partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                       tenants=len(world.tenants), users=world.user_count)


class Sandbox:
    """The sandbox served from a background thread; use as a context manager or start()/stop().

    `state_dir` keeps the CA between runs; without it a temporary directory is used and removed
    on stop().

    While it runs: `faults` (see Faults) and `stats` (see SandboxStats) are live; the world's
    users change through change_users / add_user / remove_user / mutate, each recorded in the
    tenant's change log that GET /users/delta answers from; remove_tenant / restore_tenant make
    a tenant vanish and come back; expire_tokens / expire_delta_tokens end every access token or
    delta token issued so far. Edit users through these methods: the sandbox caches each user's
    JSON by object identity, so a User edited in place is only seen after refresh().
    """

    def __init__(self, config: SandboxConfig | World, *, state_dir: Path | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if isinstance(config, SandboxConfig) else SandboxConfig(world=config)
        self._app = _SandboxApp(self.config)
        self._state_dir, self._host, self._port = state_dir, host, port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._info: SandboxInfo | None = None

    def start(self, timeout_s: float = 10) -> Sandbox:
        if self._thread is not None:
            return self
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="glue-sandbox-")
        tls = ensure_ca(Path(self._state_dir or self._tmp.name))  # type: ignore[union-attr]  # _tmp is set when no state folder is
        self._socket = bind(self._host, self._port)
        port = self._socket.getsockname()[1]
        self._server = uvicorn_server(self._app.asgi, tls, self._host, port)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"sandbox-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server on {self._host}:{port} did not start; "
                                   "look for uvicorn's error above")
            time.sleep(0.01)
        self._info = _info(self.config.world, tls, self._host, port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            # Idle keep-alive TLS connections would otherwise hold shutdown for the full grace period.
            self._server.should_exit = self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        self._server = self._thread = self._socket = self._tmp = None
        self._info = None

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the server stops or timeout_s passes; Ctrl-C interrupts it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._thread is not None and self._thread.is_alive():
            step = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if step <= 0:
                return
            self._thread.join(step)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def info(self) -> SandboxInfo:
        if self._info is None:
            raise RuntimeError("the sandbox is not running: call start() first")
        return self._info

    @property
    def base_url(self) -> str:
        return self.info.base_url

    @property
    def authority_host(self) -> str:
        return self.info.authority_host

    @property
    def graph_url(self) -> str:
        return self.info.graph_url

    @property
    def ca_file(self) -> Path:
        return self.info.ca_file

    def authority(self, tenant: str) -> str:
        """The msal authority URL for a tenant id or domain name."""
        return f"{self.authority_host}/{tenant}"

    @property
    def world(self) -> World:
        return self.config.world

    def set_world(self, world: World) -> None:
        """Serve another world from the next request on (tokens already issued stay valid)."""
        self._app.state.set_world(world)

    @property
    def faults(self) -> Faults:
        return self._app.state.faults

    @property
    def stats(self) -> SandboxStats:
        return self._app.state.stats

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (Graph answers 401)."""
        self._app.tokens.expire()

    def expire_delta_tokens(self) -> None:
        """Every delta token and delta skiptoken issued so far is unknown from now on: GET
        /users/delta answers 410 Gone, code syncStateNotFound, with a Location header to restart
        the full synchronization (as for a token older than seven days)."""
        self._app.state.expire_delta_tokens()

    # -- changing the world while it runs

    def change_users(self, tenant_id: str, fraction: float = 0.1, seed: int = 0,
                     fields: tuple[str, ...] | None = None, among: Collection[str] | None = None) -> list[str]:
        """Edit one or two profile fields (jobTitle, mobilePhone, businessPhones, officeLocation,
        accountEnabled; or only `fields`, which may also name "surname") of that fraction of the
        tenant's users (or of the users `among`; at least one when fraction > 0), chosen from seed;
        returns their ids."""
        return edits.change_users(self._app.state, tenant_id, fraction, seed, fields, among)

    def add_user(self, tenant_id: str, user: User | None = None, seed: int = 0) -> User:
        """Add a user to a tenant (a generated licensed member when user is None); returns it.
        The tenant's SKUs gain seats if the new user's licenses need them."""
        return edits.add_users(self._app.state, tenant_id, [user] if user is not None else 1, seed)[0]

    def remove_user(self, tenant_id: str, user_id: str, reason: str = "changed") -> User:
        """Delete a user: "changed" (soft-deleted, restorable) or "deleted" (permanently), as
        GET /users/delta reports it in "@removed"; returns the removed user."""
        return edits.remove_user(self._app.state, tenant_id, user_id, reason)

    def mutate(self, fraction: float = 0.05, seed: int = 0, *, added: float = 0.0,
               removed: float = 0.0, tenants: float = 1.0) -> dict[str, TenantChanges]:
        """In every tenant still present (or a `tenants` share of them, drawn by the seed, at
        least one): change_users(fraction), then add `added` and remove `removed` (fractions of
        its users; the first user, the admin, stays; a quarter of the removals are permanent).
        Returns what changed per tenant id."""
        return edits.mutate(self._app.state, fraction, seed, added, removed, tenants)

    def remove_tenant(self, tenant_id: str) -> None:
        """The tenant vanishes (e.g. right after discovery listed it): gone from contracts and GDAP
        lists, AADSTS90002 from the identity platform, 401 for its tokens."""
        self.faults.removed.add(tenant_id)

    def restore_tenant(self, tenant_id: str) -> None:
        self.faults.removed.discard(tenant_id)

    def refresh(self) -> None:
        """Call after editing the world's objects directly (a User edited in place, a user list
        changed by hand): forgets every cached user JSON and restarts the change logs, so delta
        tokens issued before answer 410 Gone and clients resynchronize, as Graph makes them do
        when it cannot tell what changed."""
        self._app.state.refresh()


def serve_forever(config: SandboxConfig, state_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                  on_ready: Callable[[SandboxInfo], None] | None = None) -> SandboxStats:
    """Serve in the calling (main) thread until Ctrl-C or SIGTERM; return the request stats.

    on_ready receives the URLs and CA path once the port is bound, before requests are served;
    the caller decides what to print.
    """
    app = _SandboxApp(config)
    # The world lives as long as this process: keep the cyclic collector from ever walking its
    # millions of objects again (a full collection of a 100,000-user world stalls every request).
    gc.freeze()
    tls = ensure_ca(Path(state_dir))
    sock = bind(host, port)
    server = uvicorn_server(app.asgi, tls, host, sock.getsockname()[1])
    if on_ready is not None:
        on_ready(_info(config.world, tls, host, sock.getsockname()[1]))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its clean shutdown
    finally:
        sock.close()
    return app.state.stats
