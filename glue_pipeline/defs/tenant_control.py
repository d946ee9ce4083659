"""The tenant_pause job: pause a tenant (no sync touches it) or resume it from the Launchpad, as
`glue-pipeline tenant pause|resume` does."""

import dagster as dg
from pydantic import Field

from glue_pipeline.defs.partitions import tenant_keys
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.defs.tenants import TENANT_ASSET
from glue_pipeline.render import markdown_cell, terminal_text
from glue_pipeline.store.tenant_control import PauseChange, TenantRefError, set_paused


def pause_observation(change: PauseChange) -> dg.AssetObservation:
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
    return dg.AssetObservation(asset_key=TENANT_ASSET, partition=change.tenant_id, description=description,
                               metadata=metadata)


def record_pause(instance: dg.DagsterInstance, change: PauseChange) -> None:
    """Show a pause or resume made outside a run on the tenant's partition (a discovered tenant)."""
    if change.changed and change.tenant_id in tenant_keys(instance):
        instance.report_runless_asset_event(pause_observation(change))


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
    if change.changed and change.tenant_id in tenant_keys(context.instance):
        context.log_event(pause_observation(change))
    if change.paused:
        context.log.info("from here: launch tenant_pause again with `paused: false` to resume it")


@dg.job(description="Pause a tenant (not synced until resumed) or resume it: run config "
                    "`ops: {set_tenant_paused: {config: {tenant: ..., paused: true|false, reason: ..., by: ...}}}`.")
def tenant_pause() -> None:
    set_tenant_paused()
