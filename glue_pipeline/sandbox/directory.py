"""Graph's directory routes: contracts, GDAP customers, organization, domains, subscribed SKUs and
users with paging (users/delta is in delta.py)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

from . import resources as res
from .odata import (
    MAX_TOP,
    GraphCall,
    GraphError,
    Page,
    collection,
    collection_body,
    context,
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
        with self.state.lock:
            log = self.state.log(call.tenant)
            rows, next_offset = self._users_window(call, page)
            items = log.json(page.select or res.USERS.default, rows)
        links = {}
        if next_offset is not None:
            links["@odata.nextLink"] = next_link(call, res.USERS, Page(next_offset, page.top, page.select))
        return json_response(collection_body(context(call, res.USERS, page.select), items, links))

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
