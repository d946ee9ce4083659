"""GET /users/delta: a full round of a tenant's users, then rounds of what changed since, read from
the tenant's change log (changes.py).

Each link's token carries where the client stands: "k" the kind of page (initial, round,
latest, beyond), "v" and "u" the log versions a round runs from and to, "c" or "o" where the
next page starts, "s" the $select, "n" the page size, "g" the log generation (a restarted log or
a new delta epoch answers 410 Gone) and, in a deltaLink, "i" when it was issued.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from .changes import TenantLog
from .odata import (
    GraphCall,
    GraphError,
    collection_body,
    context,
    decode_state,
    encode_state,
    json_bytes,
    json_response,
    prefer_page_size,
)
from .resources import USERS
from .state import SandboxState


class DeltaRoutes:
    """users/delta, read from the shared state's change logs."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def users_delta(self, call: GraphCall) -> Response:
        self.state.stats.delta_requests += 1
        query = call.query
        if "$top" in query:
            raise GraphError(400, "Request_UnsupportedQuery", "The query option $top is not supported with delta "
                             "queries; use the header Prefer: odata.maxpagesize=N to choose the page size.")
        skiptoken = query.get("$skiptoken") or query.get("$skipToken")
        deltatoken = query.get("$deltatoken") or query.get("$deltaToken")
        select = USERS.parse_select(query.get("$select")) if not skiptoken else None
        if select and "signInActivity" in select:
            raise GraphError(400, "BadRequest", "Invalid request for delta query: for this entity set, "
                             "$expand/$select is not supported for the following properties: signInActivity")
        preferred = prefer_page_size(call.request.headers.get("prefer"))
        with self.state.lock:
            log = self.state.log(call.tenant)
            generation = f"{self.state.delta_epoch}.{log.generation}"
            progress = self._progress(call, log, select, skiptoken, deltatoken)
            chosen = tuple(progress["s"]) if progress.get("s") else None
            fields = chosen or USERS.default
            if "id" not in fields:
                fields = ("id", *fields)
            size = preferred or int(progress.get("n") or self.state.config.delta_page_size)
            items, following = _delta_page(log, progress, fields, size)
            following = self._paging_fault(call.tenant.id, progress, following)
            common = {"g": generation, "s": list(chosen) if chosen else None, "n": size}
            links = _links(call, log, progress, following, common)
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if preferred else None
        return json_response(collection_body(context(call, USERS, chosen), items, links), headers)

    def _progress(self, call: GraphCall, log: TenantLog, select: tuple[str, ...] | None,
                  skiptoken: str | None, deltatoken: str | None) -> dict[str, Any]:
        """Where this request stands: the page its token names, or the first page of a new round."""
        if skiptoken:
            return self._decoded(call, log, skiptoken, deltatoken=False)
        if deltatoken == "latest":
            return {"k": "latest", "s": list(select) if select else None}
        if deltatoken:
            last = self._decoded(call, log, deltatoken, deltatoken=True)
            return {"k": "round", "v": int(last["v"]), "u": log.version, "o": 0,
                    "s": list(select) if select else last.get("s"), "n": last.get("n")}
        return {"k": "initial", "u": log.version, "c": -1, "s": list(select) if select else None}

    def _decoded(self, call: GraphCall, log: TenantLog, token: str, deltatoken: bool) -> dict[str, Any]:
        progress = decode_state(token)
        generation = f"{self.state.delta_epoch}.{log.generation}"
        if (progress is None or progress.get("e") != "users/delta" or progress.get("t") != call.tenant.id
                or progress.get("g") != generation):
            raise _delta_gone(call, progress.get("s") if isinstance(progress, dict) else None)
        if deltatoken and (time.time() - float(progress.get("i", 0)) > self.state.faults.delta_token_lifetime_s
                           or int(progress.get("v", -1)) > log.version):
            raise _delta_gone(call, progress.get("s"))
        return progress

    def _paging_fault(self, tenant_id: str, progress: dict[str, Any],
                      following: dict[str, Any] | None) -> dict[str, Any] | None:
        """The next page's progress as the tenant's paging faults have it."""
        faults = self.state.faults
        if tenant_id in faults.next_link_loop and progress["k"] in ("initial", "round"):
            self.state.stats.paging_faults += 1
            return {**progress, "x": 0}  # this very page again, with the same link, forever
        if following is None and tenant_id in faults.next_link_endless and progress["k"] != "latest":
            self.state.stats.paging_faults += 1
            return {**progress, "k": "beyond", "x": int(progress.get("x", 0)) + 1}
        return following


def _delta_page(log: TenantLog, progress: dict[str, Any], fields: tuple[str, ...],
                size: int) -> tuple[list[bytes], dict[str, Any] | None]:
    """One page of a delta round and the progress of the next page (None: the round is over)."""
    kind = progress["k"]
    if kind == "initial":
        users, cursor = log.after(int(progress["c"]), size)
        return log.json(fields, users), (None if cursor is None else {**progress, "c": cursor})
    if kind == "round":
        ids = log.round(int(progress["v"]), int(progress["u"]), frozenset(fields))
        offset = int(progress["o"])
        chunk = ids[offset:offset + size]
        present = [log.by_id[i] for i in chunk if i in log.by_id]
        encoded = iter(log.json(fields, present))
        items = [next(encoded) if i in log.by_id else
                 json_bytes({"id": i, "@removed": {"reason": log.removed.get(i, "deleted")}}) for i in chunk]
        more = offset + size < len(ids)
        return items, ({**progress, "o": offset + size} if more else None)
    return [], None  # "latest" (no data, only a deltaLink) and "beyond" (next_link_endless)


def _links(call: GraphCall, log: TenantLog, progress: dict[str, Any], following: dict[str, Any] | None,
           common: dict[str, Any]) -> dict[str, str]:
    """The page's @odata.nextLink, or the round's @odata.deltaLink after its last page."""
    if following is not None:
        return {"@odata.nextLink": _delta_link(call, "$skiptoken", {**following, **common})}
    version = log.version if progress["k"] == "latest" else int(progress["u"])
    return {"@odata.deltaLink": _delta_link(call, "$deltatoken", {"v": version, "i": int(time.time()), **common})}


def _delta_link(call: GraphCall, kind: str, progress: dict[str, Any]) -> str:
    token = encode_state({"e": "users/delta", "t": call.tenant.id, **progress})
    return f"{call.origin}/v1.0/users/delta?{kind}={token}"


def _delta_gone(call: GraphCall, select: list[str] | None) -> GraphError:
    query = f"?$select={','.join(select)}" if select else ""
    return GraphError(410, "syncStateNotFound",
                      "The delta token is expired or unknown. Start a full synchronization again from the URL "
                      "in the Location header (a delta request without a token).",
                      {"Location": f"{call.origin}/v1.0/users/delta{query}"})
