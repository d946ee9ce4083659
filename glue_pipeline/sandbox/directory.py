"""Graph's directory routes: contracts, GDAP customers, organization, domains, subscribed SKUs,
users with paging and counting, and one user by id or userPrincipalName (users/delta is in
delta.py)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import PlainTextResponse, Response

from . import resources as res
from .odata import (
    MAX_TOP,
    GraphCall,
    GraphError,
    Page,
    collection,
    collection_body,
    context,
    entity_body,
    json_response,
    next_link,
    page_window,
    paged_collection,
    read_page,
    require_any,
)
from .state import SandboxState
from .world import User

SIGN_IN_MAX_TOP = 500  # pages of /users that select signInActivity hold at most this many


class DirectoryRoutes:
    """The directory's collections, read from the shared state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def contracts(self, call: GraphCall) -> Response:
        customers = self.state.customers(call.tenant, {"dap", "both"})
        return paged_collection(call, res.CONTRACTS, customers, res.contract, max_top=MAX_TOP)

    async def gdap_customers(self, call: GraphCall) -> Response:
        customers = self.state.customers(call.tenant, {"gdap", "both"})
        return paged_collection(call, res.GDAP_CUSTOMERS, customers, res.gdap_customer, max_top=300)

    async def organization(self, call: GraphCall) -> Response:
        select = res.ORGANIZATION.parse_select(call.query.get("$select"))
        return collection(call, res.ORGANIZATION, select, [res.organization(call.tenant)])

    async def domains(self, call: GraphCall) -> Response:
        select = res.DOMAINS.parse_select(call.query.get("$select"))
        return collection(call, res.DOMAINS, select, [res.domain(d) for d in call.tenant.domains])

    async def subscribed_skus(self, call: GraphCall) -> Response:
        select = res.SUBSCRIBED_SKUS.parse_select(call.query.get("$select"))
        with self.state.lock:
            rows = res.subscribed_skus(call.tenant)
        return collection(call, res.SUBSCRIBED_SKUS, select, rows)

    async def users(self, call: GraphCall) -> Response:
        page = read_page(call, res.USERS, max_top=MAX_TOP)
        if page.select and "signInActivity" in page.select:
            require_any(call.roles, ("AuditLog.Read.All",))
            if not res.has_entra_premium(call.tenant):
                raise GraphError(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                                 "Neither tenant is B2C or tenant doesn't have premium license")
            # Documented: with signInActivity, a $top above 500 gives pages of up to 500 users.
            page = Page(page.offset, min(page.top, SIGN_IN_MAX_TOP), page.select)
        counted = call.counted()
        with self.state.lock:
            log = self.state.log(call.tenant)
            rows, next_offset = self._users_window(call, page)
            items = log.json(page.select or res.USERS.default, rows)
            total = len(call.tenant.users)
        annotations: dict[str, object] = {"@odata.count": total} if counted else {}
        if next_offset is not None:
            annotations["@odata.nextLink"] = next_link(call, res.USERS, Page(next_offset, page.top, page.select),
                                                       counted)
        return json_response(collection_body(context(call, res.USERS, page.select), items, annotations))

    async def users_count(self, call: GraphCall) -> Response:
        """GET /users/$count: the number of users as text, in advanced queries only."""
        if not call.eventual:
            raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        with self.state.lock:
            total = len(call.tenant.users)
        return PlainTextResponse(str(total))

    async def user(self, call: GraphCall) -> Response:
        """GET /users/{id | userPrincipalName}, with $select."""
        key = call.match["key"]
        select = res.USERS.parse_select(call.query.get("$select"))
        with self.state.lock:
            log = self.state.log(call.tenant)
            user = log.by_id.get(key)
            if user is None:
                user = _find_user(call.tenant.users, key)
            if user is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its "
                                 "queried reference-property objects are not present.")
            item = log.json(select or res.USERS.default, [user])[0]
        entity = context(call, res.USERS, select) + "/$entity"
        return json_response(entity_body(entity, item))

    def _users_window(self, call: GraphCall, page: Page) -> tuple[Sequence[User], int | None]:
        """The users of one page and the offset of the next, as the tenant's paging faults have them."""
        faults, stats = self.state.faults, self.state.stats
        tenant_id, users = call.tenant.id, call.tenant.users
        if tenant_id in faults.next_link_loop:
            rows, next_offset = page_window(users, 0, page.top, endless=False)
            next_offset = 0
            stats.paging_faults += 1
        else:
            endless = tenant_id in faults.next_link_endless
            rows, next_offset = page_window(users, page.offset, page.top, endless)
            if endless and next_offset is not None and next_offset >= len(users):
                stats.paging_faults += 1
            if tenant_id in faults.repeated_users and 0 < page.offset <= len(users):
                rows = [users[page.offset - 1], *rows]
                stats.paging_faults += 1
        return rows, next_offset


def _find_user(users: Sequence[User], key: str) -> User | None:
    """The user whose id or userPrincipalName is `key`, compared as Graph does, without case."""
    wanted = key.lower()
    return next((u for u in users if u.id.lower() == wanted or u.userPrincipalName.lower() == wanted), None)
