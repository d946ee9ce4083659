"""Security: secrets and access tokens are never emitted, TLS is always verified, names are data
and never SQL, and bad configuration or world files are refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster._serdes import serialize_value
from sqlalchemy import inspect, select

from glue_pipeline.cli import main
from glue_pipeline.demo import sandbox_env
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.graph.errors import CertificateError
from glue_pipeline.options import SyncOptions
from glue_pipeline.runner import get_instance, run_discovery
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import (
    AssignedLicense,
    ContactEmail,
    StoreContact,
    StoreOrganization,
    User,
    World,
    save_world,
)
from glue_pipeline.settings import ConfigError, GraphSettings, Secret, graph_settings_from_env
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import discover_into, recorded_run, sync_context

# Three base64url parts, the first two JSON objects ('{"' encodes as eyJ): any JWT, signed or not.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*")


def settings_for(sandbox: Sandbox, world: World, **overrides: object) -> GraphSettings:
    values: dict = dict(partner_tenant_id=world.partner.tenant_id, client_id=world.app.client_id,
                        client_secret=Secret(world.app.client_secret), authority_host=sandbox.authority_host,
                        graph_url=sandbox.graph_url, ca_file=str(sandbox.ca_file), max_retries=1)
    values.update(overrides)
    return GraphSettings(**values)


# --------------------------------------------------------------------------- secrets and tokens


def _files_text(root: Path) -> tuple[list[str], dict[str, int]]:
    """Every file under root: its raw bytes as text, and Parquet files also decoded (their pages
    may be compressed)."""
    parts, counts = [], {"files": 0, "parquet": 0, "sqlite": 0}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        counts["files"] += 1
        parts.append(f"{path}\n" + raw.decode("latin-1"))
        if path.suffix == ".parquet":
            counts["parquet"] += 1
            parts.append(pd.read_parquet(path).to_json(orient="records", default_handler=str))
        if raw.startswith(b"SQLite format 3"):
            counts["sqlite"] += 1
    return parts, counts


def test_no_secret_and_no_access_token_appears_in_anything_the_pipeline_emits(
        glue_env: dict, sandbox: Sandbox, small_world: World, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    secret = small_world.app.client_secret
    wrong_secret = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("GLUE_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    caplog.set_level(logging.DEBUG)
    world_file = tmp_path / "world.json"
    save_world(small_world, world_file)

    # The tokens the sandbox issues are JWTs: acquire one per tenant (msal, through the pipeline's
    # client) to know what they look like.
    client = GraphClient(settings_for(sandbox, small_world))
    issued = [client.token(t.id) for t in small_world.tenants if t.consent == "granted"]
    assert issued and all(JWT.fullmatch(t) for t in issued), "the pattern finds the sandbox's tokens"
    world_file.unlink()  # the world file holds the secret by design; it is input, not output

    sandbox.faults.expire_tokens_after_requests = 25  # tokens refreshed mid-run as well
    runner = CliRunner()
    outputs = []
    save_world(small_world, world_file)
    store_init = runner.invoke(main, ["store", "init", "--world", str(world_file)])
    world_file.unlink()
    assert store_init.exit_code == 0, store_init.output
    revoked = next(t.id for t in small_world.tenants if t.consent == "revoked")
    for args in (["sync"], ["status"], ["sync", "--tenant", revoked], ["doctor"], ["match", "list"],
                 ["match", "held"]):
        outputs.append(runner.invoke(main, args))
    monkeypatch.setenv("GLUE_CLIENT_SECRET", wrong_secret)
    outputs.append(runner.invoke(main, ["sync"]))
    outputs.append(runner.invoke(main, ["doctor"]))
    assert outputs[0].exit_code == 1 and "AADSTS700016" in outputs[0].output, "the revoked tenant failed"
    assert "AADSTS7000215" in outputs[-2].output, "the wrong secret was refused"
    assert sandbox.stats.tokens_refused >= 1

    texts = [r.output for r in [store_init, *outputs]]
    texts += [repr(r.exception) for r in outputs if r.exception is not None]
    instance = get_instance()
    try:
        runs = instance.get_runs()
        assert len(runs) >= 6
        for run in runs:
            texts.append(serialize_value(run))
            for entry in instance.all_logs(run.run_id):
                texts += [str(entry), serialize_value(entry)]
        for key in instance.all_asset_keys():
            texts.append(serialize_value(instance.get_latest_materialization_event(key)))
        materializations = sum("ASSET_MATERIALIZATION" in t for t in texts)
    finally:
        instance.dispose()
    assert materializations > 0, "asset metadata was scanned"
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            texts += [repr(tuple(row)) for row in conn.execute(select(table))]
    engine.dispose()
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    assert len(caplog.records) > 0
    files, counts = _files_text(tmp_path)
    texts += files
    assert counts["parquet"] > 0 and counts["sqlite"] > 0, counts
    assert any((tmp_path / "cache").rglob("*.parquet")), "the cache folder was written and scanned"
    everything = "\n".join(texts)
    assert small_world.tenants[0].users[0].userPrincipalName.lower() in everything.lower(), "the scan sees data"

    assert secret not in everything
    assert wrong_secret not in everything
    for token in issued:
        assert token not in everything
    assert not JWT.findall(everything), f"a token-like string was emitted: {JWT.findall(everything)[0][:40]}..."


def test_errors_and_settings_never_carry_the_secret(sandbox: Sandbox, small_world: World) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    settings = settings_for(sandbox, small_world, client_secret=Secret(wrong))
    assert wrong not in repr(settings) and wrong not in str(settings)
    client = GraphClient(settings)
    with pytest.raises(Exception) as caught:
        client.token(small_world.tenants[0].id)
    text = f"{caught.value!s} {caught.value!r} {caught.value.args!r}"
    assert "AADSTS7000215" in text and wrong not in text


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def other_sandbox(small_world: World, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A second sandbox with a CA of its own."""
    with Sandbox(SandboxConfig(world=small_world.model_copy(deep=True)), state_dir=tmp_path / "other") as server:
        yield server


def test_tls_is_verified_against_the_configured_ca_only(
        sandbox: Sandbox, other_sandbox: Sandbox, small_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = small_world.tenants[0].id
    assert GraphClient(settings_for(sandbox, small_world)).token(tenant), "with its CA the sandbox is trusted"

    without_ca = GraphClient(settings_for(sandbox, small_world, ca_file=None))
    with pytest.raises(CertificateError) as caught:
        without_ca.token(tenant)
    assert caught.value.code == "SSLError" and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)

    # Trusting one sandbox's CA does not trust another's, even if REQUESTS_CA_BUNDLE says so.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_sandbox.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    wrong_ca = GraphClient(settings_for(other_sandbox, small_world, ca_file=str(sandbox.ca_file)))
    with pytest.raises(CertificateError) as caught:
        wrong_ca.token(tenant)
    assert caught.value.code == "SSLError" and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_a_sync_without_the_sandbox_ca_fails_on_tls_and_writes_nothing(
        glue_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLUE_CA_FILE")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    config = tmp_path / "glue.yaml"
    config.write_text("sync: {}\n")
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    instance = get_instance()
    try:
        discovery = run_discovery(instance)
    finally:
        instance.dispose()
    assert not discovery.success
    assert "SSLError" in (discovery.error or "") and "CERTIFICATE_VERIFY_FAILED" in (discovery.error or "")
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    with engine.connect() as conn:
        assert not conn.execute(select(schema.tenants)).first(), "no tenant was recorded"
    engine.dispose()


def test_plain_http_is_refused_for_every_endpoint() -> None:
    base = {"GLUE_PARTNER_TENANT_ID": str(uuid.uuid4()), "GLUE_CLIENT_ID": "app", "GLUE_CLIENT_SECRET": "x"}
    for name in ("GLUE_AUTHORITY_HOST", "GLUE_GRAPH_URL"):
        with pytest.raises(ConfigError, match=f"{name}=.*must be an https:// URL"):
            graph_settings_from_env({**base, name: "http://127.0.0.1:1"})


def test_the_pipeline_never_switches_tls_verification_off() -> None:
    root = Path(__file__).resolve().parent.parent / "glue_pipeline"
    offending = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|"
                              r"disable_warnings|PYTHONHTTPSVERIFY", line)]
    assert not offending


# --------------------------------------------------------------------------- names are data


HOSTILE = {
    "organization": "'); DROP TABLE contacts;--",
    "first": "Robert'); DROP TABLE organizations;--",
    "last": "\"; DELETE FROM contact_microsoft; --",
    "title": "1' OR '1'='1",
    "location": "%' OR name LIKE '%",
    "display": "x\\'; SELECT pg_sleep(10); --",
}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sql_looking_names_are_stored_as_text(backend: str, sandbox_state: Path, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    world = generate_world(seed=8, tenants=3, users=60, revoked=0)
    tenant = world.tenants[0]
    tenant.display_name = HOSTILE["organization"]
    org_id = max(o.id for o in world.store.organizations) + 1
    world.store.organizations.append(StoreOrganization(id=org_id, name=HOSTILE["organization"]))
    domain = tenant.default_domain
    world.store.contacts.append(StoreContact(
        id=80_001, organization_id=org_id, first_name=HOSTILE["first"], last_name=HOSTILE["last"],
        # On another domain: the same name with an address on a tenant domain would hold the user as a
        # likely duplicate of this contact.
        title=HOSTILE["title"], emails=[ContactEmail(value="o'brien.seeded@partner.example", primary=True)]))
    sku = next(s for s in tenant.skus if s.appliesTo == "User" and s.capabilityStatus == "Enabled")
    sku.enabled += 2
    users = [User(id=str(uuid.uuid4()), userPrincipalName=f"o'brien@{domain}", displayName=HOSTILE["display"],
                  givenName=HOSTILE["first"], surname=HOSTILE["last"], jobTitle=HOSTILE["title"],
                  officeLocation=HOSTILE["location"], assignedLicenses=[AssignedLicense(skuId=sku.skuId)]),
             User(id=str(uuid.uuid4()), userPrincipalName=f"bobby.tables@{domain}", displayName="Bobby Tables",
                  givenName="Bobby", surname="'; TRUNCATE sync_log; --",
                  assignedLicenses=[AssignedLicense(skuId=sku.skuId)])]
    tenant.users.extend(users)
    url = request.getfixturevalue("pg_database") if backend == "postgres" else f"sqlite:///{tmp_path / 's.db'}"
    engine = make_engine(url)
    seed_store(engine, world.store)
    tables_before = set(inspect(engine).get_table_names())
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        client = GraphClient(settings_for(sandbox, world))
        tenant_ids = discover_into(engine, client)
        ctx = sync_context(client, engine, "run-hostile", SyncOptions())
        outcomes = {o.tenant_id: o for o in recorded_run(ctx, tenant_ids, 2)}
    assert outcomes[tenant.id].status == "synced", outcomes[tenant.id].error
    assert outcomes[tenant.id].match and outcomes[tenant.id].match.method == "exact"

    assert set(inspect(engine).get_table_names()) == tables_before, "no table was dropped"
    cm, contacts = schema.contact_microsoft, schema.contacts
    with engine.connect() as conn:
        assert conn.execute(select(schema.organizations.c.name).where(schema.organizations.c.id == org_id)
                            ).scalar_one() == HOSTILE["organization"]
        assert conn.execute(select(schema.tenants.c.display_name).where(schema.tenants.c.tenant_id == tenant.id)
                            ).scalar_one() == HOSTILE["organization"]
        seeded = conn.execute(select(contacts).where(contacts.c.id == 80_001)).one()
        written = {r.user_id: r for r in conn.execute(
            select(cm.c.user_id, cm.c.user_principal_name, contacts.c.first_name, contacts.c.last_name,
                   contacts.c.title, contacts.c.location, contacts.c.organization_id)
            .join(contacts, contacts.c.id == cm.c.contact_id).where(cm.c.tenant_id == tenant.id))}
        seeded_count = conn.execute(select(contacts.c.id).where(contacts.c.created_by == "store")).all()
        log_rows = conn.execute(select(schema.sync_log.c.id)).all()
    assert (seeded.first_name, seeded.last_name, seeded.title) == (HOSTILE["first"], HOSTILE["last"], HOSTILE["title"])
    hostile = written[users[0].id]
    assert (hostile.user_principal_name, hostile.first_name, hostile.last_name, hostile.title, hostile.location,
            hostile.organization_id) == (users[0].userPrincipalName, HOSTILE["first"], HOSTILE["last"],
                                         HOSTILE["title"], HOSTILE["location"], org_id)
    assert written[users[1].id].last_name == "'; TRUNCATE sync_log; --"
    assert len(seeded_count) == len(world.store.contacts), "every seeded contact is still there"
    assert log_rows, "the sync log was not emptied"
    engine.dispose()


# --------------------------------------------------------------------------- bad input is refused


BAD_WORLDS = {
    # what is wrong -> (edit of the raw world JSON, the field the message must name)
    "user type": (lambda w: w["tenants"][1]["users"][0].update(userType="Admin"), "tenants.1.users.0.userType"),
    "relationship": (lambda w: w["tenants"][0].update(relationship="partner"), "tenants.0.relationship"),
    "two initial domains": (lambda w: [d.update(is_initial=True) for d in w["tenants"][0]["domains"]],
                            "tenants.0"),
    "no secret": (lambda w: w["app"].pop("client_secret"), "app.client_secret"),
    "contact of no organization": (lambda w: w["store"]["contacts"][0].update(organization_id=99_999), "store"),
    "unknown field": (lambda w: w["tenants"][0].update(colour="blue"), "tenants.0.colour"),
}


@pytest.mark.parametrize("problem", sorted(BAD_WORLDS))
def test_a_bad_world_file_is_refused_with_the_field_named_and_nothing_written(
        problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit, field = BAD_WORLDS[problem]
    raw = json.loads(generate_world(seed=4, tenants=3, users=30, revoked=0).model_dump_json())
    if len(raw["tenants"][0]["domains"]) < 2:
        raw["tenants"][0]["domains"].append({"name": "extra.example", "is_default": False, "is_initial": False,
                                             "is_verified": True})
    edit(raw)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    store = tmp_path / "store.db"
    monkeypatch.setenv("GLUE_STORE_URL", f"sqlite:///{store}")
    monkeypatch.setenv("GLUE_VAR_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    for args in (["store", "init", "--world", str(bad)], ["sandbox", "serve", "--world", str(bad)]):
        result = runner.invoke(main, args)
        assert result.exit_code != 0, result.output
        assert f"field '{field}' is invalid" in result.output and "README.md" in result.output, result.output
    assert not store.exists(), "the store was not created"
    assert not (tmp_path / "var").exists(), "the sandbox wrote nothing"


BAD_CONFIGS = {
    # what is wrong -> (glue.yaml content, extra environment, what the message must name)
    "guest selection": ({"sync": {"users": {"include_guests": "sometimes"}}}, {}, "option 'users.include_guests'"),
    "mapping": ({"sync": {"mapping": {"title": "favouriteColour"}}}, {}, "option 'mapping.title'"),
    "duplicate policy": ({"sync": {"duplicate_policy": "merge"}}, {}, "option 'duplicate_policy'"),
    "unknown section": ({"schedule": {"every": "hour"}}, {}, "unknown section(s) schedule"),
    "concurrency": ({}, {"GLUE_GRAPH_CONCURRENCY": "0"}, "GLUE_GRAPH_CONCURRENCY='0'"),
    "plain http": ({}, {"GLUE_GRAPH_URL": "http://127.0.0.1:1/v1.0"}, "GLUE_GRAPH_URL="),
    "source tenant": ({"sources": [{"name": "direct-a", "tenant_id": "not-a-guid", "client_id": "x",
                                    "client_secret_env": "DIRECT_A_SECRET"}]}, {}, "not-a-guid"),
}


@pytest.mark.parametrize("problem", sorted(BAD_CONFIGS))
def test_a_bad_configuration_is_refused_with_the_setting_named_and_nothing_written(
        problem: str, sandbox: Sandbox, small_world: World, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    content, extra_env, named = BAD_CONFIGS[problem]
    config = tmp_path / "glue.yaml"
    config.write_text(json.dumps(content))  # JSON is YAML
    store = tmp_path / "store.db"
    for key, value in {**sandbox_env(sandbox, small_world), "GLUE_CONFIG": str(config),
                       "GLUE_STORE_URL": f"sqlite:///{store}", "GLUE_VAR_DIR": str(tmp_path / "var"),
                       "GLUE_DATA_DIR": str(tmp_path / "tables"),
                       "DAGSTER_HOME": str(tmp_path / "dagster_home"), **extra_env}.items():
        monkeypatch.setenv(key, value)
    sandbox.stats.reset()
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code != 0
    assert named in result.output, result.output
    assert sandbox.stats.snapshot()["requests"] == {}, "nothing was asked of Microsoft"
    assert not store.exists(), "the store was not created"
    assert not (tmp_path / "dagster_home").exists() and not (tmp_path / "tables").exists(), "no run was made"
