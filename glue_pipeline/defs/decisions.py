"""The match_decision job: an analyst's decision recorded from the Launchpad, as
`glue-pipeline match ...` records it, said in words in the run's log. The review_matches job
(review.py) records a tenant's decisions without typing its name or ids."""

from typing import Literal

import dagster as dg
from pydantic import Field

from glue_pipeline.decisions import apply_decision, decision_text
from glue_pipeline.defs.resources import StoreResource


class DecisionConfig(dg.Config):
    """A match decision, as `glue-pipeline match ...` records it."""

    action: Literal["accept", "match", "ignore", "unignore", "create_organization", "link_user",
                    "approve_create", "link_device", "approve_device"]
    tenant: str = Field(description="Tenant id or name.")
    organization: str | None = None
    rank: int = 1
    user_id: str | None = None
    contact_id: int | None = None
    device_id: str | None = Field(default=None, description="The Intune device id (link_device, approve_device).")
    configuration_id: int | None = None
    force: bool = False
    decided_by: str = "dagster-ui"


@dg.op(description="Record one match decision in the store; the next sync of the tenant honours it.")
def record_decision(context: dg.OpExecutionContext, config: DecisionConfig, store: StoreResource) -> None:
    result = apply_decision(store.engine, config.action, config.tenant,
                            config.organization, config.rank, config.user_id, config.contact_id,
                            config.force, config.decided_by, config.device_id, config.configuration_id)
    context.log.info(decision_text(config.action, result, f"launch sync_tenants for the tenant's partition, or run "
                                                          f"`glue-pipeline sync --tenant {result['tenant_id']}`"))


@dg.job(description="Record a match decision (launch it from the Launchpad with run config).")
def match_decision() -> None:
    record_decision()
