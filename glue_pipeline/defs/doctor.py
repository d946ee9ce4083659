"""The doctor job: can every tenant be synced? The same checks as `glue-pipeline doctor`."""

import dagster as dg
import pandas as pd

from glue_pipeline.defs.resources import GraphResource, SyncResource
from glue_pipeline.doctor import diagnose
from glue_pipeline.render import markdown_table, terminal_text


def doctor_report(graph: GraphResource, sync: SyncResource) -> pd.DataFrame:
    """One row per check of each connected data source and tenant: OK / problem, detail and fix."""
    return diagnose(graph.client, graph.direct_logins, graph.partner_connected, sync.settings.options)


@dg.op(description="Check credentials, permissions, reports and endpoints for every tenant.")
def diagnose_tenants(context: dg.OpExecutionContext, graph: GraphResource, sync: SyncResource) -> None:
    report = doctor_report(graph, sync)
    problems = report[report["status"] != "OK"]
    context.log_event(dg.AssetObservation(asset_key="customer_tenants", metadata={
        "doctor checks": len(report), "doctor problems": len(problems),
        "doctor report": dg.MetadataValue.md(markdown_table(report))}))
    if len(problems):
        raise dg.Failure(description=f"{len(problems)} problem(s) found:\n" + "\n".join(
            terminal_text(f"- {r.tenant} ({r.source}) {r.check}: {r.detail} Fix: {r.fix}")
            for r in problems.itertuples()))


@dg.job(description="Doctor: can every tenant be synced? (the same checks as `glue-pipeline doctor`)")
def doctor() -> None:
    diagnose_tenants()
