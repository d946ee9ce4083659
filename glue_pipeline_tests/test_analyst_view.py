"""The analyst's view, read as the Dagster UI reads it: `dagster-webserver` on a synced instance,
through its GraphQL API. A customer is found by its name among the partitions; its partition
shows clean previews with their column schemas; the tenant's own check says whether its reports
conceal names; every check explains itself; and a decision is taken from the Launchpad's
pre-filled config of review_matches without typing a name or an id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select, update

from glue_pipeline.runner import get_instance, run_discovery, run_overview, run_sync
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.partition_keys import partitions_of
from glue_pipeline_tests.ui import UI, project_env, start_daemon, start_ui, stop, stop_ui

ASSET = {"path": ["tenant_contacts"]}
FABRIKAM = "Fabrikam Pty Ltd"


@dataclass
class Served:
    ui: UI
    world: World
    engine: Engine

    def partition_keys(self) -> list[str]:
        data = self.ui.query("query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { "
                             "partitionKeys } } }", key=ASSET)
        return list(data["assetNodeOrError"]["partitionKeys"])

    def find(self, typed: str) -> list[str]:
        """The partitions the UI's partition filter lists for what the analyst types."""
        return [k for k in self.partition_keys() if typed.lower() in k.lower()]


@pytest.fixture(scope="module")
def served(small_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The small world synced once (Fabrikam's organization renamed, so the tenant is only
    suggested) with the overview refreshed; then the webserver on that instance, and the daemon
    that launches what the webserver queues. Once for the module: it takes a while."""
    tmp_path = tmp_path_factory.mktemp("analyst")
    with (Sandbox(SandboxConfig(world=small_world.model_copy(deep=True)), state_dir=tmp_path / "sandbox") as sandbox,
          pytest.MonkeyPatch.context() as monkeypatch):
        env = project_env(sandbox, small_world, tmp_path, monkeypatch)
        engine = make_engine(env["GLUE_STORE_URL"])
        with engine.begin() as conn:
            conn.execute(update(schema.organizations).where(schema.organizations.c.name == FABRIKAM)
                         .values(name="Fabricam"))
        instance = get_instance()
        assert run_discovery(instance).success
        run_sync(instance)
        assert run_overview(instance).success
        instance.dispose()
        daemon = start_daemon(env)
        ui = start_ui(env, daemon=False)
        try:
            yield Served(ui, small_world, engine)
        finally:
            stop_ui(ui)
            stop(daemon)


def _latest_metadata(ui: UI, partition: str) -> dict[str, dict[str, Any]]:
    data = ui.query(
        "query($key: AssetKeyInput!, $p: String!) { assetOrError(assetKey: $key) { ... on Asset { "
        "assetMaterializations(partitions: [$p], limit: 1) { partition metadataEntries { label __typename "
        "... on MarkdownMetadataEntry { mdStr } ... on IntMetadataEntry { intValue } "
        "... on TableSchemaMetadataEntry { schema { columns { name type } } } } } } } }", key=ASSET, p=partition)
    (event,) = data["assetOrError"]["assetMaterializations"]
    assert event["partition"] == partition
    return {e["label"]: e for e in event["metadataEntries"]}


def test_a_customer_is_found_by_name_and_its_partition_shows_clean_described_tables(served: Served) -> None:
    tenant = next(t for t in served.world.tenants if t.display_name == FABRIKAM)
    (key,) = served.find("fabrikam pty")
    assert key == partitions_of(served.engine, [tenant.id])[tenant.id] and key.startswith(FABRIKAM)
    metadata = _latest_metadata(served.ui, key)
    matches = metadata["contact_matches"]["mdStr"]
    upns = [u.userPrincipalName for u in tenant.users][:3]
    assert any(upn[:20] in matches for upn in upns), "people are shown by their UPN"
    for empty in ("nan", "<NA>", "None", "NaT"):
        assert f"| {empty} |" not in matches
    rows = metadata["contact_matches rows"]["intValue"]
    if rows > 10:
        assert f"of {rows} rows" in matches, "a cut preview says how many rows it shows"
    for table in ("users", "licenses", "organization_match", "contact_matches", "duplicate_risk", "differences"):
        columns = {c["name"] for c in metadata[f"{table} columns"]["schema"]["columns"]}
        assert columns, f"{table} carries its column schema"
    for label in ("contact_matches columns", "dagster/column_schema"):  # the asset's own table: its Columns view
        assert "user_principal_name" in {c["name"] for c in metadata[label]["schema"]["columns"]}, label


def test_each_tenant_has_its_own_reports_check_and_every_check_explains_itself(served: Served) -> None:
    keys = partitions_of(served.engine)
    concealed = next(t for t in served.world.tenants if t.reports_concealed and t.consent == "granted")
    shown = next(t for t in served.world.tenants if not t.reports_concealed and t.consent == "granted")

    def latest(tenant_id: str) -> dict[str, Any]:
        data = served.ui.query(
            "query($key: AssetKeyInput!, $p: String!) { assetCheckExecutions(assetKey: $key, "
            "checkName: \"reports_not_concealed\", partition: $p, limit: 1) { status partition "
            "evaluation { success description } } }", key=ASSET, p=keys[tenant_id])
        (execution,) = data["assetCheckExecutions"]
        return dict(execution)

    failed, passed = latest(concealed.id), latest(shown.id)
    assert failed["status"] == "FAILED" and failed["partition"] == keys[concealed.id]
    assert "conceal" in failed["evaluation"]["description"] and "Fix:" in failed["evaluation"]["description"]
    assert passed["status"] == "SUCCEEDED" and passed["evaluation"]["success"]

    for asset in ("tenant_contacts", "organization_matches", "contacts_needing_review"):
        data = served.ui.query("query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { "
                               "assetChecksOrError { ... on AssetChecks { checks { name description } } } } } }",
                               key={"path": [asset]})
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        assert checks, asset
        for check in checks:
            assert "If it fails" in (check["description"] or ""), (asset, check)


def test_a_decision_is_taken_from_the_prefilled_launchpad_of_review_matches(served: Served) -> None:
    tenant = next(t for t in served.world.tenants if t.display_name == FABRIKAM)
    (key,) = served.find("fabrikam")
    data = served.ui.query(
        "query($selector: RepositorySelector!, $key: String!) { partitionSetOrError(repositorySelector: $selector, "
        "partitionSetName: \"review_matches_partition_set\") { __typename ... on PartitionSet { "
        "partition(partitionName: $key) { runConfigOrError { ... on PartitionRunConfig { yaml } } } } } }",
        selector={"repositoryLocationName": "glue_pipeline", "repositoryName": "__repository__"}, key=key)
    prefilled = yaml.safe_load(data["partitionSetOrError"]["partition"]["runConfigOrError"]["yaml"])
    decision = prefilled["ops"]["review_tenant"]["config"]["organization"]
    assert decision["action"] == "accept" and decision["suggestions"][0].startswith("1. Fabricam")

    run = served.ui.finished(served.ui.launch("review_matches", {"dagster/partition": key}, run_config=prefilled))
    assert run["status"] == "SUCCESS"
    with served.engine.connect() as conn:
        match = conn.execute(select(schema.tenant_matches.c.status, schema.tenant_matches.c.method)
                             .where(schema.tenant_matches.c.tenant_id == tenant.id)).one()
        audit = conn.execute(select(schema.match_decisions.c.action, schema.match_decisions.c.decided_by)
                             .where(schema.match_decisions.c.tenant_id == tenant.id)).all()
    assert tuple(match) == ("matched", "accepted") and [tuple(a) for a in audit] == [("accept", "dagster-ui")]
