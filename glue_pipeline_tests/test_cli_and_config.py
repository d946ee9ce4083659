"""Bad input gets a clear error naming the cause and the fix; the CLI commands do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from glue_pipeline.cli import main
from glue_pipeline.sandbox.world import WorldError, load_world
from glue_pipeline.settings import ConfigError, graph_settings_from_env

GOOD_ENV = {"GLUE_PARTNER_TENANT_ID": "00000000-0000-0000-0000-000000000001",
            "GLUE_CLIENT_ID": "app", "GLUE_CLIENT_SECRET": "s3cret-value"}


def test_missing_variable_is_named_with_the_fix() -> None:
    env = {k: v for k, v in GOOD_ENV.items() if k != "GLUE_CLIENT_ID"}
    with pytest.raises(ConfigError, match="GLUE_CLIENT_ID is not set: set it to the partner app"):
        graph_settings_from_env(env)


def test_http_authority_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"GLUE_AUTHORITY_HOST=.*must be an https:// URL"):
        graph_settings_from_env({**GOOD_ENV, "GLUE_AUTHORITY_HOST": "http://127.0.0.1:1"})


def test_missing_ca_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"GLUE_CA_FILE=/nowhere/ca\.pem does not exist"):
        graph_settings_from_env({**GOOD_ENV, "GLUE_CA_FILE": "/nowhere/ca.pem"})


def test_secret_never_prints_itself() -> None:
    settings = graph_settings_from_env(GOOD_ENV)
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings.client_secret)
    assert settings.client_secret.reveal() == "s3cret-value"


def test_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file\n")
    env = {k: v for k, v in GOOD_ENV.items() if k != "GLUE_CLIENT_SECRET"}
    settings = graph_settings_from_env({**env, "GLUE_CLIENT_SECRET_FILE": str(path)})
    assert settings.client_secret.reveal() == "from-file"


def test_world_file_errors_name_the_field(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "world.json"
    result = runner.invoke(main, ["sandbox", "world", "--tenants", "3", "--users", "40", "--out", str(out)])
    assert result.exit_code == 0, result.output
    raw = json.loads(out.read_text())
    raw["tenants"][1]["users"][0]["accountEnabled"] = "maybe"
    out.write_text(json.dumps(raw))
    with pytest.raises(WorldError, match=r"field 'tenants\.1\.users\.0\.accountEnabled' is invalid"):
        load_world(out)
    out.write_text("{ not json")
    with pytest.raises(WorldError, match="not valid JSON"):
        load_world(out)


def test_store_init_refuses_a_bad_world_and_writes_nothing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store.db"
    monkeypatch.setenv("GLUE_STORE_URL", f"sqlite:///{store}")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 1, "tenants": []}))
    result = CliRunner().invoke(main, ["store", "init", "--world", str(bad)])
    assert result.exit_code != 0 and "field 'partner' is invalid" in result.output
    assert not store.exists()


def test_status_before_any_sync_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    CliRunner().invoke(main, ["store", "init"])
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code != 0 and "no sync has run yet" in result.output


def test_sync_without_credentials_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLUE_PARTNER_TENANT_ID", "GLUE_CLIENT_ID", "GLUE_CLIENT_SECRET", "GLUE_CLIENT_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code != 0 and "GLUE_PARTNER_TENANT_ID is not set" in result.output


def test_the_example_configuration_is_valid_and_holds_the_defaults() -> None:
    from glue_pipeline.options import SyncOptions, load_options
    from glue_pipeline.settings import PROJECT_ROOT
    from glue_pipeline.sources import load_direct_sources

    example = PROJECT_ROOT / "glue.example.yaml"
    assert load_options(example) == SyncOptions()
    assert load_direct_sources(example) == []


def test_unknown_option_and_section_are_named(tmp_path: Path) -> None:
    from glue_pipeline.options import load_options

    path = tmp_path / "glue.yaml"
    path.write_text("sync:\n  users:\n    include_robots: true\n")
    with pytest.raises(ConfigError, match=r"option 'users\.include_robots' is invalid"):
        load_options(path)
    path.write_text("sink: {}\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_options(path)


def test_direct_source_needs_its_secret_variable(tmp_path: Path) -> None:
    from glue_pipeline.sources import load_direct_sources

    path = tmp_path / "glue.yaml"
    path.write_text("sources:\n  - name: contoso\n    tenant_id: 6f9969bc-3fcd-4a5e-9a3e-e9850fdc3174\n"
                    "    client_id: app\n    client_secret_env: GLUE_SECRET_CONTOSO\n")
    with pytest.raises(ConfigError, match="GLUE_SECRET_CONTOSO is not set"):
        load_direct_sources(path, {})
    (source,) = load_direct_sources(path, {"GLUE_SECRET_CONTOSO": "value"})
    assert source.tenant_id == "6f9969bc-3fcd-4a5e-9a3e-e9850fdc3174" and "value" not in repr(source)
