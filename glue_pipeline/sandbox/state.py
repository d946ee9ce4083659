"""The state the sandbox's route groups share: the world served, its tenants by id and by domain
name, the per-tenant change logs of users, the faults and the stats."""

from __future__ import annotations

import secrets
import threading

from .changes import TenantLog
from .config import SandboxConfig
from .faults import Faults, SandboxStats
from .resources import encode_user
from .world import DirectApp, Domain, Tenant, World

PARTNER_ROLES = ["Directory.Read.All", "DelegatedAdminRelationship.Read.All"]


class Directory:
    """Tenants by id or by any of their domain names, the partner's own tenant included, and
    the direct-login apps by client id."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.direct_apps: dict[str, DirectApp] = {a.client_id.lower(): a for a in world.direct_apps}
        domain = world.partner.default_domain
        self.partner = Tenant(id=world.partner.tenant_id, display_name=world.partner.display_name,
                              domains=[Domain(name=domain, is_default=True, is_initial=True)],
                              roles=list(PARTNER_ROLES))
        self._by_key: dict[str, Tenant] = {}
        for tenant in [self.partner, *world.tenants]:
            for key in [tenant.id, *(d.name for d in tenant.domains)]:
                other = self._by_key.setdefault(key.lower(), tenant)
                if other is not tenant:
                    raise ValueError(f"'{key}' belongs to tenants {other.id} and {tenant.id}; tenant ids and "
                                     "domain names are unique across Microsoft, so give one of them another")

    def find(self, key: str) -> Tenant | None:
        return self._by_key.get(key.strip().lower())


class SandboxState:
    """The world (config.world) and what every route group reads or changes about it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = Faults.from_config(config)
        self.stats = SandboxStats()
        self.directory = Directory(config.world)
        # Users and their change logs; every read or change of users holds the lock.
        self.lock = threading.RLock()
        self.logs: dict[str, TenantLog] = {}
        self.delta_epoch = secrets.token_hex(4)  # part of every delta token: a new one expires them all

    def set_world(self, world: World) -> None:
        with self.lock:
            self.config.world = world
            self.directory = Directory(world)
            self.logs.clear()
            self.delta_epoch = secrets.token_hex(4)

    def expire_delta_tokens(self) -> None:
        with self.lock:
            self.delta_epoch = secrets.token_hex(4)

    def existing_tenant(self, key: str) -> Tenant | None:
        tenant = self.directory.find(key)
        return None if tenant is None or tenant.id in self.faults.removed else tenant

    def customers(self, tenant: Tenant, relationships: set[str]) -> list[Tenant]:
        if tenant is not self.directory.partner:
            return []
        return [t for t in self.config.world.tenants
                if t.relationship in relationships and t.id not in self.faults.removed]

    def log(self, tenant: Tenant) -> TenantLog:
        """The tenant's change log (callers hold self.lock)."""
        log = self.logs.get(tenant.id)
        if log is None or log.tenant is not tenant:
            log = self.logs[tenant.id] = TenantLog(tenant, encode_user)
        elif not log.in_step():
            log.restart()
        return log

    def refresh(self) -> None:
        with self.lock:
            for log in self.logs.values():
                log.restart()
