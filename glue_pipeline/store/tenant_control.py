"""Pausing a tenant (`glue-pipeline tenant pause|resume`, the tenant_pause job): a paused tenant
is not synced until it is resumed. Pausing records when, by whom and why (tenants.paused_at,
paused_by, pause_reason); resuming clears them. Nothing else of the tenant changes."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update

from glue_pipeline.store.engine import write_transaction
from glue_pipeline.store.rows import Row, all_rows, as_utc
from glue_pipeline.store.schema import tenants
from glue_pipeline.store.tenant_refs import find_tenant
from glue_pipeline.store.writer import utcnow


@dataclass(frozen=True)
class Pause:
    """A tenant's pause: when, by whom, why."""

    tenant_id: str
    name: str | None
    paused_at: datetime
    paused_by: str | None
    reason: str | None

    def described(self) -> str:
        return (f"paused by {self.paused_by or 'unknown'} since {self.paused_at:%Y-%m-%d %H:%M} UTC"
                + (f": {self.reason}" if self.reason else ""))


@dataclass(frozen=True)
class PauseChange:
    """What pause or resume did: `pause` is the tenant's pause after a pause, or the one a resume
    lifted (None: the tenant was not paused). `changed` is False when the tenant already was so."""

    tenant_id: str
    name: str | None
    paused: bool
    changed: bool
    pause: Pause | None

    def message(self) -> str:
        """What changed and what happens next, for the operator."""
        tenant = f"{self.name or self.tenant_id} ({self.tenant_id})"
        described = self.pause.described() if self.pause else ""
        if self.paused:
            done = f"paused tenant {tenant}: {described}" if self.changed \
                else f"tenant {tenant} is already paused ({described}): nothing changed"
            return (f"{done}\nnext: no sync touches it (its contacts and last results stay as they are) until "
                    f"`glue-pipeline tenant resume {self.tenant_id}`")
        if not self.changed:
            return f"tenant {tenant} is not paused: nothing changed; every sync includes it"
        return (f"resumed tenant {tenant} (it was {described})\nnext: the next sync includes it again; to sync it "
                f"now: `glue-pipeline sync --tenant {self.tenant_id}`")


_COLUMNS = (tenants.c.tenant_id, tenants.c.display_name, tenants.c.paused_at, tenants.c.paused_by,
            tenants.c.pause_reason)


def _pause(row: Row) -> Pause | None:
    if row["paused_at"] is None:
        return None
    return Pause(row["tenant_id"], row["display_name"], as_utc(row["paused_at"]), row["paused_by"],
                 row["pause_reason"])


def set_paused(engine: Engine, ref: str, paused: bool, by: str, reason: str | None = None) -> PauseChange:
    """Pause (or resume) the tenant `ref` names. Pausing a paused tenant keeps its pause as it
    is; resuming a tenant that is not paused changes nothing."""
    with write_transaction(engine) as conn:
        tenant = find_tenant(conn, ref)
        tenant_id, name, before = tenant["tenant_id"], tenant["display_name"], _pause(tenant)
        if paused == (before is not None):
            return PauseChange(tenant_id, name, paused, False, before)
        values: Row = {"paused_at": utcnow(), "paused_by": by, "pause_reason": reason or None} if paused \
            else {"paused_at": None, "paused_by": None, "pause_reason": None}
        conn.execute(update(tenants).where(tenants.c.tenant_id == tenant_id).values(**values))
        after = Pause(tenant_id, name, values["paused_at"], by, values["pause_reason"]) if paused else before
        return PauseChange(tenant_id, name, paused, True, after)


def pauses(engine: Engine, tenant_ids: Collection[str]) -> list[Pause]:
    """The pauses of those of `tenant_ids` that are paused."""
    query = select(*_COLUMNS).where(tenants.c.tenant_id.in_(list(tenant_ids)), tenants.c.paused_at.is_not(None))
    with engine.connect() as conn:
        return [p for p in map(_pause, all_rows(conn, query)) if p is not None]
