"""JSON batching on POST /v1.0/$batch."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .graph import GraphApi
from .odata import GraphError, GraphJSONResponse, Ids, graph_error_response

MAX_BATCH_REQUESTS = 20  # Graph's limit for one JSON batch


class BatchRoute:
    """Answers a batch through the Graph front door, one request after the other."""

    def __init__(self, graph: GraphApi) -> None:
        self.graph = graph

    async def handle(self, request: Request) -> Response:
        """JSON batching: up to 20 requests in one; each is answered on its own (authenticated,
        throttled and faulted like a request of its own, so a 429 comes inside a 200)."""
        try:
            body = json.loads(await request.body())
            calls = body["requests"]
            if not isinstance(calls, list) or not all(isinstance(c, dict) and "id" in c and "url" in c
                                                      for c in calls):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from None
        if not calls or len(calls) > MAX_BATCH_REQUESTS:
            raise GraphError(400, "BadRequest", f"The batch holds {len(calls)} requests; it must hold 1 "
                             f"to {MAX_BATCH_REQUESTS}.")
        if len({str(c["id"]) for c in calls}) != len(calls):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
        self.graph.tokens.authenticate(request)  # a batch without a valid token is refused as a whole
        answers = [await self._answer(request, call) for call in calls]
        return GraphJSONResponse({"responses": answers})

    async def _answer(self, outer: Request, call: dict[str, Any]) -> dict[str, Any]:
        path, _, query = str(call["url"]).lstrip("/").partition("?")
        headers = {"authorization": outer.headers.get("authorization", ""),
                   **{str(k).lower(): str(v) for k, v in (call.get("headers") or {}).items()}}
        scope = {**outer.scope, "method": str(call.get("method", "GET")).upper(), "path": f"/v1.0/{path}",
                 "raw_path": f"/v1.0/{path}".encode(), "query_string": query.encode(),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                 "path_params": {"path": path}}
        sub = Request(scope)
        ids = Ids.of(sub)
        try:
            response = await self.graph.handle(sub)
        except GraphError as err:
            response = graph_error_response(err, ids)
        kept = {"retry-after": "Retry-After", "location": "Location", "content-type": "Content-Type"}
        answer_headers = {kept[k]: v for k, v in response.headers.items() if k in kept}
        content = bytes(response.body) if getattr(response, "body", None) else b""
        return {"id": str(call["id"]), "status": response.status_code, "headers": answer_headers,
                "body": json.loads(content) if content and answer_headers.get("Content-Type", "")
                .startswith("application/json") else None}
