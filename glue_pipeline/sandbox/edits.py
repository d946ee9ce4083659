"""Changing a running sandbox's world: users edited, added and removed, each change recorded in
the tenant's change log (which GET /users/delta answers from)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from .generate import changed_user, new_users
from .state import SandboxState
from .world import Tenant, User


@dataclass
class TenantChanges:
    """What Sandbox.mutate changed in one tenant (user ids)."""

    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def change_users(state: SandboxState, tenant_id: str, fraction: float, seed: int,
                 fields: tuple[str, ...] | None = None, among: Collection[str] | None = None) -> list[str]:
    tenant = _world_tenant(state, tenant_id)
    with state.lock:
        log = state.log(tenant)
        rng = random.Random(f"{seed}:{tenant_id}:change:{log.version}")
        wanted = None if among is None else set(among)
        pool = tenant.users if wanted is None else [u for u in tenant.users if u.id in wanted]
        chosen = rng.sample(pool, _share(len(pool), fraction))
        for user in chosen:
            new, changed = changed_user(rng, tenant, user, fields)
            log.replace(new, changed)
        return [u.id for u in chosen]


def add_users(state: SandboxState, tenant_id: str, users: list[User] | int, seed: int) -> list[User]:
    """Add the given users, or that many generated ones."""
    tenant = _world_tenant(state, tenant_id)
    with state.lock:
        log = state.log(tenant)
        if isinstance(users, int):
            rng = random.Random(f"{seed}:{tenant_id}:add:{log.version}")
            users = new_users(rng, tenant, state.config.world.reference_date, users)
        for user in users:
            log.add(user)
        _cover_licenses(tenant, users)
        return users


def remove_user(state: SandboxState, tenant_id: str, user_id: str, reason: str) -> User:
    tenant = _world_tenant(state, tenant_id)
    with state.lock:
        return state.log(tenant).remove(user_id, reason)


def mutate(state: SandboxState, fraction: float, seed: int, added: float, removed: float,
           tenants: float = 1.0) -> dict[str, TenantChanges]:
    present = [t for t in state.config.world.tenants if t.id not in state.faults.removed]
    chosen = {t.id for t in random.Random(f"{seed}:tenants").sample(present, _share(len(present), tenants))}
    changes: dict[str, TenantChanges] = {}
    for tenant in present:
        if tenant.id not in chosen:
            continue
        with state.lock:
            done = TenantChanges(changed=change_users(state, tenant.id, fraction, seed))
            done.added = [u.id for u in add_users(state, tenant.id, _share(len(tenant.users), added), seed)]
            rng = random.Random(f"{seed}:{tenant.id}:remove")
            for user in rng.sample(tenant.users[1:], min(len(tenant.users) - 1,
                                                          _share(len(tenant.users), removed))):
                reason = "deleted" if rng.random() < 0.25 else "changed"
                done.removed.append(remove_user(state, tenant.id, user.id, reason).id)
        changes[tenant.id] = done
    return changes


def _world_tenant(state: SandboxState, tenant_id: str) -> Tenant:
    tenant = state.config.world.tenant(tenant_id)
    if tenant is None:
        raise KeyError(f"no tenant {tenant_id} in the sandbox world")
    return tenant


def _share(count: int, fraction: float) -> int:
    """How many of count items a fraction picks: none for 0, at least one otherwise."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    return 0 if fraction == 0 or count == 0 else min(count, max(1, round(count * fraction)))


def _cover_licenses(tenant: Tenant, added: list[User]) -> None:
    """Buy seats when new users' licenses would exceed what the tenant has."""
    wanted = {lic.skuId for u in added for lic in u.assignedLicenses}
    if not wanted:
        return
    consumed = Counter(lic.skuId for u in tenant.users for lic in u.assignedLicenses)
    for sku in tenant.skus:
        if sku.skuId in wanted and consumed[sku.skuId] > sku.enabled:
            sku.enabled = consumed[sku.skuId]
