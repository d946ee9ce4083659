"""The tenant_pause job: pause a tenant (no sync touches it) or resume it from the Launchpad, as
`glue-pipeline tenant pause|resume` does."""

import dagster as dg
from pydantic import Field

from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.render import terminal_text
from glue_pipeline.store.tenant_control import TenantRefError, set_paused


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
    if change.paused:
        context.log.info("from here: launch tenant_pause again with `paused: false` to resume it")


@dg.job(description="Pause a tenant (not synced until resumed) or resume it: run config "
                    "`ops: {set_tenant_paused: {config: {tenant: ..., paused: true|false, reason: ..., by: ...}}}`.")
def tenant_pause() -> None:
    set_tenant_paused()
