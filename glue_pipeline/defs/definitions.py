"""The pipeline's Dagster definitions, assembled from the modules of this package.

    customer_tenants  (discovery; keeps the `tenants` dynamic partitions in step)
           |
    tenant_contacts   (per tenant partition: Graph extracts, match tables, contacts written)
           |
    organization_matches, contacts_needing_review, configurations_needing_review, tenant_status
                      (across tenants, with checks)

Jobs: discover_tenants, sync_tenants, refresh_overview, match_decision (record an analyst's
decision), tenant_pause (pause or resume a tenant), doctor. The hourly schedule runs discovery;
sensors chain the sync and the overview, and close sync runs whose Dagster run ended.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from glue_pipeline.defs.automation import SENSORS, hourly_schedule
from glue_pipeline.defs.decisions import match_decision
from glue_pipeline.defs.discovery import customer_tenants, discover_job
from glue_pipeline.defs.doctor import doctor
from glue_pipeline.defs.overview import (
    configurations_needing_review,
    contacts_needing_review,
    no_parked_tenants,
    organization_matches,
    overview_job,
    tenant_reports_not_concealed,
    tenant_status,
)
from glue_pipeline.defs.resources import glue_resources
from glue_pipeline.defs.review import review_matches, sync_after_review
from glue_pipeline.defs.tenant_control import tenant_pause
from glue_pipeline.defs.tenants import sync_job, tenant_sync


def build_defs(resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """Every asset, job, schedule and sensor, with `resources` (default: built from the
    environment as it is now, see resources.py)."""
    return dg.Definitions(
        assets=[customer_tenants, tenant_sync, organization_matches, contacts_needing_review,
                configurations_needing_review, tenant_status],
        asset_checks=[no_parked_tenants, tenant_reports_not_concealed],
        jobs=[discover_job, sync_job, overview_job, match_decision, review_matches, doctor, tenant_pause],
        schedules=[hourly_schedule],
        sensors=[*SENSORS, sync_after_review],
        resources=glue_resources() if resources is None else resources,
    )
