"""The tenant_pause job: pause a tenant (no sync touches it) or resume it from the Launchpad, as
`glue-pipeline tenant pause|resume` does."""

import dagster as dg
from pydantic import Field

from glue_pipeline.defs.partitions import TENANT_ASSET, tenant_keys
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.render import markdown_cell, terminal_text
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.partition_keys import partitions_of
from glue_pipeline.store.tenant_control import PauseChange, set_paused
from glue_pipeline.store.tenant_refs import TenantRefError


def pause_observation(change: PauseChange, partition: str) -> dg.AssetObservation:
    """What the tenant's partition page shows of a pause or a resume."""
    name = markdown_cell(change.name or change.tenant_id)
    pause = change.pause
    metadata: dict[str, str | bool] = {"paused": change.paused, "tenant_id": change.tenant_id}
    if change.paused and pause is not None:
        description = (f"{name}: {markdown_cell(pause.described())}. Not synced until "
                       f"`glue-pipeline tenant resume {change.tenant_id}`.")
        metadata |= {"paused_by": pause.paused_by or "", "reason": pause.reason or ""}
    else:
        description = f"{name}: resumed; the next sync includes it again."
    return dg.AssetObservation(asset_key=TENANT_ASSET, partition=partition, description=description,
                               metadata=metadata)


def _partition(instance: dg.DagsterInstance, engine: Engine, change: PauseChange) -> str | None:
    """The partition that shows a pause or resume: the tenant's, once discovery added it."""
    key = partitions_of(engine, [change.tenant_id]).get(change.tenant_id)
    return key if change.changed and key in tenant_keys(instance) else None


def record_pause(instance: dg.DagsterInstance, engine: Engine, change: PauseChange) -> None:
    """Show a pause or resume made outside a run on the tenant's partition (a discovered tenant)."""
    partition = _partition(instance, engine, change)
    if partition is not None:
        instance.report_runless_asset_event(pause_observation(change, partition))


class TenantPauseConfig(dg.Config):
    """Which tenant, paused or resumed, why and by whom."""

    tenant: str = Field(description="Tenant id, or a display name that names one tenant.")
    paused: bool = Field(default=True, description="true: pause it; false: resume it.")
    reason: str | None = Field(default=None, description="Why it is paused (shown by `glue-pipeline status`).")
    by: str = Field(default="dagster-ui", description="Who pauses or resumes it.")


@dg.op(description="Pause or resume one tenant in the store; a paused tenant is left out of every sync.")
def set_tenant_paused(context: dg.OpExecutionContext, config: TenantPauseConfig, store: StoreResource) -> None:
    try:
        change = set_paused(store.engine, config.tenant, config.paused, config.by, config.reason)
    except TenantRefError as exc:
        raise dg.Failure(description=terminal_text(exc)) from None
    context.log.info(terminal_text(change.message(), multiline=True))
    partition = _partition(context.instance, store.engine, change)
    if partition is not None:
        context.log_event(pause_observation(change, partition))
    if change.paused:
        context.log.info("from here: launch tenant_pause again with `paused: false` to resume it")


@dg.job(description="Pause a tenant (not synced until resumed) or resume it: run config "
                    "`ops: {set_tenant_paused: {config: {tenant: ..., paused: true|false, reason: ..., by: ...}}}`.")
def tenant_pause() -> None:
    set_tenant_paused()
