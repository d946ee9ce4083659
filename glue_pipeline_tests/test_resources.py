"""The Dagster resources: what the UI shows of them (variable names, never a secret's value), and
their settings checked as settings.py checks them."""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap
from dagster._serdes import serialize_value

from glue_pipeline.definitions import defs
from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.resources import SyncResource, check_settings, glue_resources, ready_resources
from glue_pipeline.settings import ConfigError

SECRET = "s3cret-value-never-shown"
DIRECT_SECRET = "direct-s3cret-never-shown"


@pytest.fixture
def deployment_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A deployment's environment: the partner app, a direct-login source and folders under tmp_path."""
    config = tmp_path / "glue.yaml"
    config.write_text("sources:\n  - name: contoso\n    tenant_id: 6f9969bc-3fcd-4a5e-9a3e-e9850fdc3174\n"
                      "    client_id: app\n    client_secret_env: GLUE_SECRET_CONTOSO\n")
    env = {"GLUE_PARTNER_TENANT_ID": "00000000-0000-0000-0000-000000000001", "GLUE_CLIENT_ID": "app",
           "GLUE_CLIENT_SECRET": SECRET, "GLUE_SECRET_CONTOSO": DIRECT_SECRET, "GLUE_CONFIG": str(config),
           "GLUE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}", "GLUE_VAR_DIR": str(tmp_path / "var")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GLUE_DATA_DIR", raising=False)
    return env


def test_the_ui_shows_each_set_variable_by_name_and_never_a_secret(deployment_env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    snapshot = RepositorySnap.from_def(defs().get_repository_def())
    shown = {r.name: r.configured_values for r in snapshot.resources}
    assert set(shown) == {"store", "graph", "sync"}
    assert shown["graph"]["client_secret"] == ResourceConfigEnvVarSnap(name="GLUE_CLIENT_SECRET")
    assert shown["graph"]["partner_tenant_id"] == ResourceConfigEnvVarSnap(name="GLUE_PARTNER_TENANT_ID")
    assert shown["store"]["url"] == ResourceConfigEnvVarSnap(name="GLUE_STORE_URL")
    assert '"GLUE_SECRET_CONTOSO": {"env": "GLUE_SECRET_CONTOSO"}' in str(shown["graph"]["source_secrets"])
    assert shown["sync"]["data_dir"] == f'"{tmp_path / "var" / "tables"}"', "an unset variable shows its default"
    text = serialize_value(snapshot)
    assert SECRET not in text and DIRECT_SECRET not in text


def test_a_run_sets_the_resources_up_from_the_environment(deployment_env: dict[str, str]) -> None:
    with ready_resources() as ready:
        assert ready.graph.settings.client_secret.reveal() == SECRET
        assert [s.name for s in ready.graph.sources] == ["contoso"] and ready.graph.partner_connected
        assert ready.store.engine.url.render_as_string() == deployment_env["GLUE_STORE_URL"]
        assert ready.sync.settings.options.duplicate_policy == "hold"


def test_run_config_for_one_sync_field_keeps_the_others(deployment_env: dict[str, str]) -> None:
    seen: dict[str, object] = {}

    @dg.asset
    def probe(sync: SyncResource) -> None:
        seen.update(options=sync.settings.options.duplicate_policy, config_file=sync.config_file)

    resources = glue_resources()
    dg.Definitions(assets=[probe], resources=resources).resolve_implicit_global_asset_job_def().execute_in_process(
        run_config={"resources": {"sync": {"config": {"options": {"duplicate_policy": "create"}}}}})
    assert seen == {"options": "create", "config_file": deployment_env["GLUE_CONFIG"]}
    assert build_defs(resources).resolve_job_def("sync_tenants").name == "sync_tenants"


def test_run_config_options_are_checked_as_the_configuration_file_is(deployment_env: dict[str, str]) -> None:
    """The Dagster form of the options has the file's fields; the options' own checks (here: a
    mapped property Graph does not have) refuse a bad value before the run touches anything."""
    resources = glue_resources()
    bad = {"resources": {"sync": {"config": {"options": {"mapping": {"title": "favouriteColour"}}}}}}
    result = build_defs(resources).resolve_job_def("sync_tenants").execute_in_process(
        run_config=bad, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    message = str(failure.event_specific_data)
    assert "run config resources.sync.config.options" in message and "mapping.title" in message
    assert "'favouriteColour' is not a Graph user property" in message


@pytest.mark.parametrize("name,value,message", [
    ("GLUE_PARTNER_TENANT_ID", "", "GLUE_PARTNER_TENANT_ID is not set"),
    ("GLUE_SECRET_CONTOSO", "", "source 'contoso': GLUE_SECRET_CONTOSO is not set"),
    ("GLUE_SYNC_PROCESSES", "many", "GLUE_SYNC_PROCESSES='many' is not a positive whole number"),
])
def test_a_bad_setting_is_named_before_and_by_the_run(name: str, value: str, message: str,
                                                     deployment_env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        check_settings()
    with pytest.raises(ConfigError, match=message), ready_resources():
        pass
