"""Serving the sandbox app with uvicorn over TLS, and the connection reset fault: each request is
handed its connection, so that a fault can drop it without an answer."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .faults import SERVER_ERRORS
from .odata import GraphError, Ids, graph_error_response
from .tls import SandboxTLS

# Key under which the HTTP protocol hands each request's connection to the app (see HTTPProtocol).
TRANSPORT_SCOPE_KEY = "glue_sandbox.transport"


class DropConnection(Exception):
    """Abort the request's connection without sending anything."""


async def drop(request: Request, ids: Ids) -> Response:
    """Abort the connection; what is returned is never sent (uvicorn drops writes to a closed
    connection). Served by another HTTP server, without the transport, answer 503 instead."""
    transport = request.scope.get(TRANSPORT_SCOPE_KEY)
    if transport is None:
        code, message = SERVER_ERRORS[503]
        return graph_error_response(GraphError(503, code, message), ids)
    transport.abort()
    for _ in range(3):  # let the event loop deliver connection_lost before the app returns
        await asyncio.sleep(0)
    return Response(status_code=503)


class HTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]  # uvicorn picks the class at import
    """uvicorn's HTTP protocol, handing each request the connection's transport (under
    TRANSPORT_SCOPE_KEY) so that the reset fault can drop the connection without a response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]  # uvicorn types it for its own transports
        super().connection_made(transport)  # type: ignore[arg-type]  # as above
        app = self.app

        async def app_with_transport(scope: Any, receive: Any, send: Any) -> None:
            scope[TRANSPORT_SCOPE_KEY] = transport
            await app(scope, receive, send)

        self.app = app_with_transport


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def uvicorn_server(app: Starlette, tls: SandboxTLS, host: str, port: int) -> uvicorn.Server:
    # Idle connections stay open for minutes, as at Graph's front doors. With uvicorn's default of
    # 5 s, a process stalled that long (a full garbage collection of a 100,000-user world on a busy
    # machine) would close a kept-alive connection under a request already sent on it.
    config = uvicorn.Config(app, host=host, port=port, http=HTTPProtocol, ssl_certfile=str(tls.cert_file),
                            ssl_keyfile=str(tls.key_file), lifespan="off", log_level="warning", log_config=None,
                            access_log=False, timeout_graceful_shutdown=3, timeout_keep_alive=120, backlog=2048)
    return uvicorn.Server(config)
