"""Graph's front door: every Graph request has its token checked and its fault drawn, then its
route found, its roles and query options checked, before the route's handler answers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from .faults import SERVER_ERRORS
from .identity import Tokens
from .odata import GraphCall, GraphError, insufficient_privileges, origin_of
from .serving import DropConnection
from .state import SandboxState

GraphHandler = Callable[[GraphCall], Awaitable[Response]]


@dataclass(frozen=True)
class GraphRoute:
    name: str
    pattern: re.Pattern[str]
    method: str
    roles: tuple[str, ...]  # any one of them grants access
    options: frozenset[str]  # OData query options the endpoint understands
    handler: GraphHandler
    denied: Callable[[], GraphError]  # the answer to a token holding none of the roles


def route(name: str, pattern: str, roles: tuple[str, ...], options: frozenset[str],
          handler: GraphHandler, method: str = "GET",
          denied: Callable[[], GraphError] = insufficient_privileges) -> GraphRoute:
    return GraphRoute(name, re.compile(pattern, re.IGNORECASE), method, roles, options, handler, denied)


class GraphApi:
    """Answers the Graph requests of its routes (paths relative to /v1.0)."""

    def __init__(self, state: SandboxState, tokens: Tokens, routes: list[GraphRoute]) -> None:
        self.state = state
        self.tokens = tokens
        self.routes = routes

    async def handle(self, request: Request) -> Response:
        claims = self.tokens.authenticate(request)
        tenant_id = str(claims["tid"])
        self.tokens.count_down_to_expiry(tenant_id)
        self.tokens.refuse_expired_serial(claims)
        tenant = self.state.existing_tenant(tenant_id)
        if tenant is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        fault = self._injected_fault(tenant.id)
        slow_s = self.state.faults.slow_for(tenant.id)
        if slow_s > 0:
            self.state.stats.slowed += 1
            await asyncio.sleep(slow_s)
        if fault:
            raise fault
        route, match = self._route(request.method, request.path_params["path"])
        self.state.stats.count_graph(route.name, request.query_params.get("$select"))
        roles = frozenset(claims.get("roles") or [])
        if roles.isdisjoint(route.roles):
            raise route.denied()
        unknown = sorted(k for k in request.query_params if k.startswith("$") and k not in route.options)
        if unknown:
            raise GraphError(400, "BadRequest", f"Query option '{unknown[0]}' is not supported on "
                             f"'{route.name}' by the sandbox.")
        return await route.handler(GraphCall(request, tenant, roles, origin_of(request), match))

    def _injected_fault(self, tenant_id: str) -> GraphError | None:
        faults, stats = self.state.faults, self.state.stats
        status = faults.draw(tenant_id)
        if status == "reset":
            stats.resets += 1
            raise DropConnection()
        if status == 429:
            stats.throttled += 1
            return GraphError(429, "TooManyRequests", "Too many requests. Retry after the number of seconds in "
                              "the Retry-After header.", {"Retry-After": faults.retry_after_header})
        if isinstance(status, int):
            stats.server_errors += 1
            code, message = SERVER_ERRORS[status]
            headers = {"Retry-After": faults.retry_after_header} if status == 503 else {}
            return GraphError(status, code, message, headers)
        return None

    def _route(self, method: str, path: str) -> tuple[GraphRoute, re.Match[str]]:
        path = path.strip("/")
        matches = [(r, m) for r in self.routes if (m := r.pattern.fullmatch(path))]
        if not matches:
            segment = path.split("/")[0] or "v1.0"
            raise GraphError(404, "Request_ResourceNotFound", f"Resource not found for the segment '{segment}'.")
        for route, match in matches:
            if route.method == method:
                return route, match
        raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
