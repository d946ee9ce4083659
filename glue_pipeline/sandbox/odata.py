"""What every Graph route shares: Graph's error format, the call a route handler answers, entity
sets and $select, paging with $top and skiptokens, and JSON collection bodies."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .world import Tenant

MAX_TOP = 999  # $top on /users and /contracts
# The Content-Type of every JSON answer from Graph.
GRAPH_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


class GraphJSONResponse(JSONResponse):
    """A JSON answer with Graph's Content-Type."""

    media_type = GRAPH_JSON


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Ids:
    request_id: str
    client_request_id: str

    @classmethod
    def of(cls, request: Request) -> Ids:
        request_id = str(uuid.uuid4())
        return cls(request_id, request.headers.get("client-request-id") or request_id)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def insufficient_privileges() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def graph_error_response(err: GraphError, ids: Ids) -> JSONResponse:
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
             "request-id": ids.request_id, "client-request-id": ids.client_request_id}
    body = {"error": {"code": err.code, "message": err.message, "innerError": inner}}
    return GraphJSONResponse(body, status_code=err.status, headers=err.headers)


def origin_of(request: Request) -> str:
    return f"https://{request.url.netloc}"


# --------------------------------------------------------------------------- the call


@dataclass(frozen=True)
class GraphCall:
    request: Request
    tenant: Tenant
    roles: frozenset[str]
    origin: str
    match: re.Match[str]

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def eventual(self) -> bool:
        """Whether the request asks for advanced queries (header `ConsistencyLevel: eventual`)."""
        return self.request.headers.get("consistencylevel", "").strip().lower() == "eventual"

    def counted(self) -> bool:
        """Whether the answer carries @odata.count: `$count=true` counts only in advanced queries;
        without ConsistencyLevel Graph ignores it on directory objects (documented)."""
        raw = self.query.get("$count")
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $count: use true or false.")
        return raw.lower() == "true" and self.eventual


def require_any(roles: frozenset[str], needed: Iterable[str]) -> None:
    if roles.isdisjoint(needed):
        raise insufficient_privileges()


# --------------------------------------------------------------------------- entity sets


@dataclass(frozen=True)
class EntitySet:
    """A Graph collection: its name in @odata.context, its type, and which properties exist."""

    name: str
    type_name: str
    fields: tuple[str, ...]
    default: tuple[str, ...]

    def parse_select(self, raw: str | None) -> tuple[str, ...] | None:
        if raw is None:
            return None
        known = {f.lower(): f for f in self.fields}
        chosen: list[str] = []
        for part in (p.strip() for p in raw.split(",")):
            if not part:
                continue
            if part.lower() not in known:
                raise GraphError(400, "BadRequest",
                                 f"Could not find a property named '{part}' on type '{self.type_name}'.")
            chosen.append(known[part.lower()])
        return tuple(dict.fromkeys(chosen)) or None


# --------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class Page:
    offset: int
    top: int
    select: tuple[str, ...] | None  # explicit $select, None for the default set


def _page_size_error(top: int | str, max_top: int) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery",
                      f"Invalid page size specified: '{top}'. Must be between 1 and {max_top} inclusive.")


def parse_top(raw: str | None, default: int, max_top: int) -> int:
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        raise _page_size_error(raw, max_top) from None
    if not 1 <= top <= max_top:
        raise _page_size_error(top, max_top)
    return top


def encode_state(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_state(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    return state if isinstance(state, dict) else None


def _encode_skiptoken(entity: EntitySet, tenant: Tenant, page: Page) -> str:
    return encode_state({"e": entity.name, "t": tenant.id, "o": page.offset, "n": page.top, "s": page.select})


def _decode_skiptoken(token: str, entity: EntitySet, tenant: Tenant) -> Page:
    state = decode_state(token)
    try:
        if state is None or state["e"] != entity.name or state["t"] != tenant.id:
            raise ValueError("token of another collection")
        return Page(int(state["o"]), int(state["n"]), tuple(state["s"]) if state["s"] else None)
    except (ValueError, KeyError, TypeError):
        raise GraphError(400, "BadRequest", "The $skiptoken value is not valid for this request.") from None


def page_window(items: Sequence[Any], offset: int, top: int, endless: bool) -> tuple[Sequence[Any], int | None]:
    """The items of one page and the offset of the next page (None at the end).

    endless: the paging never ends; past the last item, pages alternate between empty and a
    repeat of the last page, each with a fresh skiptoken.
    """
    end = offset + top
    if offset >= len(items) and endless:
        beyond = (offset - len(items)) // top
        last_page = items[(len(items) - 1) // top * top:] if items else []
        return ([] if beyond % 2 == 0 else last_page), end
    if end >= len(items):
        return items[offset:], (end if endless else None)
    return items[offset:end], end


def prefer_page_size(header: str | None) -> int | None:
    """N from a `Prefer: odata.maxpagesize=N` header (clamped to 1..999), if present."""
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return min(MAX_TOP, max(1, int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


def read_page(call: GraphCall, entity: EntitySet, max_top: int) -> Page:
    token = call.query.get("$skiptoken")
    if token:
        return _decode_skiptoken(token, entity, call.tenant)
    return Page(0, parse_top(call.query.get("$top"), 100, max_top), entity.parse_select(call.query.get("$select")))


def next_link(call: GraphCall, entity: EntitySet, page: Page, counted: bool = False) -> str:
    params: dict[str, Any] = {"$count": "true"} if counted else {}
    params["$top"] = page.top
    if page.select:
        params["$select"] = ",".join(page.select)
    params["$skiptoken"] = _encode_skiptoken(entity, call.tenant, page)
    return f"{call.origin}{call.request.url.path}?{urlencode(params, safe='$,')}"


# --------------------------------------------------------------------------- bodies


def json_bytes(value: Any) -> bytes:
    """JSON as starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


def collection_body(context: str, items: Iterable[bytes], annotations: dict[str, Any] | None = None) -> bytes:
    """A Graph collection from already encoded items: context, then annotations (@odata.count,
    links), then value."""
    parts = [b'{"@odata.context":', json_bytes(context)]
    for name, value in (annotations or {}).items():
        parts += [b",", json_bytes(name), b":", json_bytes(value)]
    parts += [b',"value":[', b",".join(items), b"]}"]
    return b"".join(parts)


def entity_body(context: str, item: bytes) -> bytes:
    """One Graph entity from its already encoded (non-empty) JSON object, after its context."""
    return b'{"@odata.context":' + json_bytes(context) + b"," + item.removeprefix(b"{")


def json_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type=GRAPH_JSON, headers=headers)


def context(call: GraphCall, entity: EntitySet, select: tuple[str, ...] | None) -> str:
    return f"{call.origin}/v1.0/$metadata#{entity.name}" + (f"({','.join(select)})" if select else "")


def collection(call: GraphCall, entity: EntitySet, select: tuple[str, ...] | None,
               rows: Iterable[dict[str, Any]], link: str | None = None) -> JSONResponse:
    """A Graph collection of whole objects, each cut down to the selected (or default) fields."""
    fields = select or entity.default
    body: dict[str, Any] = {"@odata.context": context(call, entity, select),
                            "value": [{f: row.get(f) for f in fields} for row in rows]}
    if link:
        body["@odata.nextLink"] = link
    return GraphJSONResponse(body)


def paged_collection(call: GraphCall, entity: EntitySet, items: Sequence[Any],
                     to_row: Callable[[Any], dict[str, Any]], max_top: int) -> JSONResponse:
    """One page of a collection, with the @odata.nextLink of the next page if there is one."""
    page = read_page(call, entity, max_top)
    rows, next_offset = page_window(items, page.offset, page.top, endless=False)
    link = None if next_offset is None else next_link(call, entity, Page(next_offset, page.top, page.select))
    return collection(call, entity, page.select, [to_row(i) for i in rows], link)
