"""Direct-login data sources beside the partner app: discovered, synced once, disconnected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from glue_pipeline.cli import main
from glue_pipeline.demo import sandbox_env
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store


@pytest.fixture
def direct_world() -> World:
    return generate_world(seed=5, tenants=6, users=240, revoked=0, direct=3)


@pytest.fixture
def direct_env(direct_world: World, sandbox_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with Sandbox(SandboxConfig(world=direct_world), state_dir=sandbox_state) as server:
        env = {**sandbox_env(server, direct_world), "GLUE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
               "GLUE_VAR_DIR": str(tmp_path / "var"), "GLUE_DATA_DIR": str(tmp_path / "tables"),
               "DAGSTER_HOME": str(tmp_path / "dagster_home"), "GLUE_CONFIG": str(tmp_path / "glue.yaml")}
        sources = []
        for position, app in enumerate(direct_world.direct_apps):
            variable = f"GLUE_SECRET_DIRECT_{position}"
            env[variable] = app.client_secret
            sources.append({"name": f"direct-{position}", "tenant_id": app.tenant_id,
                            "client_id": app.client_id, "client_secret_env": variable})
        (tmp_path / "glue.yaml").write_text(yaml.safe_dump({"sources": sources}))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        seed_store(make_engine(env["GLUE_STORE_URL"]), direct_world.store)
        yield server, env


def test_direct_login_tenants_are_synced_once_and_can_be_disconnected(direct_world: World, direct_env) -> None:
    server, env = direct_env
    engine = make_engine(env["GLUE_STORE_URL"])
    direct = {a.tenant_id for a in direct_world.direct_apps}
    only_direct = {t.id for t in direct_world.tenants if t.relationship == "none"}
    assert direct and only_direct <= direct

    runner = CliRunner()
    result = runner.invoke(main, ["sync"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        known = {r.tenant_id: r for r in conn.execute(select(schema.tenants))}
        results = conn.execute(select(schema.sync_results.c.tenant_id)).scalars().all()
    assert set(known) == {t.id for t in direct_world.tenants}, "partner and direct tenants, merged by id"
    assert sorted(results) == sorted(set(results)), "a tenant reached both ways is synced once"
    assert {t for t, r in known.items() if r.data_source != "partner"} == direct
    assert all(known[t].display_name for t in only_direct), "names come from /organization"

    name = "direct-0"
    tenant_id = next(s for s in yaml.safe_load(Path(env["GLUE_CONFIG"]).read_text())["sources"]
                     if s["name"] == name)["tenant_id"]
    off = runner.invoke(main, ["source", "disconnect", name])
    assert off.exit_code == 0 and "removed by hand" in off.output
    listing = runner.invoke(main, ["source", "list"])
    assert f"{name}: direct login to tenant {tenant_id} (disconnected)" in listing.output
    with engine.connect() as conn:
        before = conn.execute(select(schema.contact_microsoft.c.contact_id)
                              .where(schema.contact_microsoft.c.tenant_id == tenant_id)).scalars().all()
    runner.invoke(main, ["sync"])
    with engine.connect() as conn:
        row = conn.execute(select(schema.tenants).where(schema.tenants.c.tenant_id == tenant_id)).one()
        after = conn.execute(select(schema.contact_microsoft.c.contact_id)
                             .where(schema.contact_microsoft.c.tenant_id == tenant_id)).scalars().all()
    assert sorted(after) == sorted(before), "its data is kept"
    if tenant_id in only_direct:
        assert row.vanished_at is not None, "reached only through the disconnected source: no longer synced"
    else:
        assert row.data_source == "partner", "still reached through the partner app"


def test_a_direct_login_secret_that_is_wrong_fails_only_that_tenant(direct_world: World, direct_env,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server, env = direct_env
    monkeypatch.setenv("GLUE_SECRET_DIRECT_0", "wrong-secret")
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code == 1
    assert "AADSTS7000215" in result.output and "1 failed" in result.output
    assert "set GLUE_SECRET_DIRECT_0 to the secret's Value" in result.output
    assert "wrong-secret" not in result.output
