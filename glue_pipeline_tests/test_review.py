"""The review_matches job after a real sync of the small world: picking a tenant's partition
pre-fills the Launchpad's config from the store (its best suggestion, its held users); launching it
records the decisions and the next sync writes the contacts, `sync_now` through the sensor
sync_after_review; edited lines are honoured and one failing decision stops no other; hostile
names change neither the config nor the log; the match_decision job logs words; and the
auto-accept policy (sync option accept_suggestions_at).

Partitions are keyed by the tenant's name (tenants.partition_key, migration 0005)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType
from dagster._grpc.impl import get_partition_config
from dagster_shared.yaml_utils import dump_run_config_yaml
from sqlalchemy import Engine, select, update

from glue_pipeline.defs.definitions import build_defs
from glue_pipeline.defs.review import OP, named_id, sync_after_review
from glue_pipeline.render import terminal_text
from glue_pipeline.runner import execute, get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.world import StoreOrganization, World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.partition_keys import partitions_of
from glue_pipeline.store.seed import seed_store
from glue_pipeline_tests.stores import table_rows

FABRIKAM = "Fabrikam Pty Ltd"
RENAMED = "Fabricam"  # Fabrikam's organization, renamed: suggested by name and domain, under 100
HOLDINGS = "Fabrikam Group Holdings"  # a second organization, without contacts: a weaker suggestion
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
CONTROLS = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *map(chr, range(0x202A, 0x202F)),
            *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029"}
HOSTILE = "Evil | Org\n| forged |\r\x1b[2J\x1b]0;pwned\x07 \u202e[click](https://evil.example) a: b\n- c"


@dataclass
class Synced:
    engine: Engine
    instance: dg.DagsterInstance
    world: World

    def tenant(self, name: str) -> str:
        return next(t.id for t in self.world.tenants if t.display_name == name)

    def key(self, tenant_id: str) -> str:
        return partitions_of(self.engine, [tenant_id])[tenant_id]

    def organization(self, name: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema.organizations.c.id)
                                    .where(schema.organizations.c.name == name)).scalar_one())


@pytest.fixture
def synced(glue_env: dict, small_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Synced:
    """The small world discovered and synced once, Fabrikam's organization renamed (so the tenant
    is only suggested) and a second Fabrikam organization added."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    store = small_world.store.model_copy(deep=True)
    next(o for o in store.organizations if o.name == FABRIKAM).name = RENAMED
    store.organizations.append(StoreOrganization(id=max(o.id for o in store.organizations) + 1, name=HOLDINGS))
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, store)
    instance = get_instance()
    assert run_discovery(instance).success
    run_sync(instance)
    yield Synced(engine, instance, small_world)
    instance.dispose()


def _prefilled(synced: Synced, tenant_id: str) -> dict[str, Any]:
    """The run config the code location hands the Launchpad when the tenant's partition is picked."""
    snap = get_partition_config(build_defs().get_repository_def(), "review_matches", synced.key(tenant_id))
    assert hasattr(snap, "run_config"), snap
    return dict(snap.run_config)


def _config(run_config: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = run_config["ops"][OP]["config"]
    return config


def _launch(synced: Synced, tenant_id: str, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    return build_defs().resolve_job_def("review_matches").execute_in_process(
        run_config={**run_config, **QUIET}, instance=synced.instance, partition_key=synced.key(tenant_id),
        raise_on_error=False)


def _messages(synced: Synced, run_id: str) -> list[str]:
    """What the run's ops logged (not Dagster's own events)."""
    return [e.user_message for e in synced.instance.all_logs(run_id) if e.dagster_event is None]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message


def _audit(synced: Synced) -> list[dict[str, Any]]:
    return table_rows(synced.engine, schema.match_decisions)


def _match(synced: Synced, tenant_id: str) -> dict[str, Any]:
    (row,) = table_rows(synced.engine, schema.tenant_matches, schema.tenant_matches.c.tenant_id == tenant_id)
    return row


def _links(synced: Synced, tenant_id: str) -> dict[str, int]:
    """user id -> contact id of the tenant's linked users."""
    return {r["user_id"]: r["contact_id"] for r in
            table_rows(synced.engine, schema.contact_microsoft, schema.contact_microsoft.c.tenant_id == tenant_id)}


def _held(synced: Synced, tenant_id: str) -> list[dict[str, Any]]:
    rows = table_rows(synced.engine, schema.held_users, schema.held_users.c.tenant_id == tenant_id)
    return sorted(rows, key=lambda r: r["user_principal_name"])


def _sensor(synced: Synced, run_id: str) -> dg.RunRequest | dg.SkipReason:
    """sync_after_review evaluated on the finished run, as the daemon evaluates it."""
    run = synced.instance.get_run_by_id(run_id)
    assert run is not None
    (success,) = synced.instance.all_logs(run_id, of_type=DagsterEventType.RUN_SUCCESS)
    assert success.dagster_event is not None
    context = dg.build_run_status_sensor_context(sensor_name=sync_after_review.name,
                                                 dagster_event=success.dagster_event,
                                                 dagster_instance=synced.instance, dagster_run=run)
    result = sync_after_review(context)
    assert isinstance(result, dg.RunRequest | dg.SkipReason), result
    return result


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


# --------------------------------------------------------------------------- the pre-filled config


def test_the_prefilled_config_holds_the_best_suggestion_and_the_held_users(synced: Synced) -> None:
    fabrikam = synced.tenant(FABRIKAM)
    config = _config(_prefilled(synced, fabrikam))
    org = config["organization"]
    assert (org["action"], org["rank"], org["organization"]) == ("accept", 1, None)
    renamed, holdings = synced.organization(RENAMED), synced.organization(HOLDINGS)
    assert re.fullmatch(rf"1\. {RENAMED} \(id {renamed}\), score (9\d): similar name .*", org["suggestions"][0])
    assert org["suggestions"][1].startswith(f"2. {HOLDINGS} (id {holdings}), score ")
    assert org["now"].startswith("suggested: ")
    assert config["users"] == [], "a suggested tenant's users are one decision, not listed one by one"
    assert (config["sync_now"], config["decided_by"]) == (False, "dagster-ui")

    trey = synced.tenant("Trey Research")
    held = _held(synced, trey)
    assert len(held) == 2, "the generated store holds Trey Research people under another email format"
    config = _config(_prefilled(synced, trey))
    assert config["organization"]["action"] == "wait"
    assert config["organization"]["now"].startswith(
        f"already matched to organization Trey Research (id {synced.organization('Trey Research')}) (exact")
    names = {r["id"]: f"{r['first_name']} {r['last_name']}" for r in table_rows(synced.engine, schema.contacts)}
    assert config["users"] == [
        {"user": f"{h['user_principal_name']} (id {h['user_id']})", "action": "link",
         "contact": f"{names[int(h['candidate_contact_ids'])]} (id {h['candidate_contact_ids']})",
         "why": h["reason"]} for h in held]


def test_a_partition_no_tenant_has_says_so(synced: Synced) -> None:
    snap = get_partition_config(build_defs().get_repository_def(), "review_matches", "Nobody (00000000)")
    assert not hasattr(snap, "run_config")
    assert "no tenant of the store has the partition 'Nobody (00000000)'" in snap.error.to_string()


# --------------------------------------------------------------------------- launching it


def test_launching_the_prefilled_config_records_the_match_and_sync_now_syncs(synced: Synced) -> None:
    fabrikam = synced.tenant(FABRIKAM)
    config = _prefilled(synced, fabrikam)
    _config(config)["sync_now"] = True  # the analyst's one edit
    result = _launch(synced, fabrikam, config)
    assert result.success
    renamed = synced.organization(RENAMED)
    (audit,) = _audit(synced)
    assert (audit["action"], audit["organization_id"], audit["decided_by"]) == ("accept", renamed, "dagster-ui")
    score = next(s["score"] for s in table_rows(synced.engine, schema.tenant_suggestions) if s["rank"] == 1)
    assert _messages(synced, result.run_id) == [
        f"{FABRIKAM}: matched to organization {RENAMED} (id {renamed}), accepting suggestion 1 (score {score}). "
        "The next sync of the tenant writes its contacts into that organization; sync_tenants starts for this "
        "partition once this run succeeds (sync_now: true)."]
    assert not _links(synced, fabrikam), "recorded only: the sync writes the contacts"

    request = _sensor(synced, result.run_id)
    assert isinstance(request, dg.RunRequest) and request.partition_key == synced.key(fabrikam)
    sync_run = execute(synced.instance, build_defs().resolve_job_def(request.job_name or "sync_tenants"),
                       tags=request.tags, partition_key=request.partition_key)
    assert synced.instance.get_run_by_id(sync_run).status == dg.DagsterRunStatus.SUCCESS
    assert _links(synced, fabrikam), "the sync after the decision writes the tenant's contacts"
    assert _match(synced, fabrikam)["organization_id"] == renamed


def test_launching_the_prefilled_config_links_the_held_users_and_the_next_sync_writes_them(synced: Synced) -> None:
    trey = synced.tenant("Trey Research")
    held = _held(synced, trey)
    result = _launch(synced, trey, _prefilled(synced, trey))
    assert result.success
    assert sorted((a["action"], a["user_id"], a["contact_id"]) for a in _audit(synced)) == sorted(
        ("link_user", h["user_id"], int(h["candidate_contact_ids"])) for h in held)
    messages = _messages(synced, result.run_id)
    assert len(messages) == 2 and all(
        m.startswith(f"Trey Research: user {h['user_principal_name']} (id {h['user_id']}) linked to contact ")
        and m.endswith(f"(id {h['candidate_contact_ids']}). The next sync of the tenant writes the user into that "
                       "contact; launch sync_tenants for this partition, or set sync_now: true.")
        for m, h in zip(messages, held, strict=True))
    assert isinstance(_sensor(synced, result.run_id), dg.SkipReason), "sync_now: false starts no sync"

    assert all(o.success for o in run_sync(synced.instance, [trey]))
    links = _links(synced, trey)
    assert all(links[h["user_id"]] == int(h["candidate_contact_ids"]) for h in held)
    assert not _held(synced, trey)


def test_edited_lines_are_honoured_and_a_failing_decision_stops_no_other(synced: Synced) -> None:
    fabrikam = synced.tenant(FABRIKAM)
    config = _prefilled(synced, fabrikam)
    _config(config)["organization"]["rank"] = 2
    assert _launch(synced, fabrikam, config).success
    assert _match(synced, fabrikam)["organization_id"] == synced.organization(HOLDINGS)

    gdi = synced.tenant("Graphic Design Institute Corp")
    held = _held(synced, gdi)
    assert len(held) == 3
    config = _prefilled(synced, gdi)
    users = _config(config)["users"]
    users[0]["contact"] = "Nobody (id 999999)"  # fails: not a contact of the organization
    users[1]["action"] = "create"
    del users[2]  # stays held
    result = _launch(synced, gdi, config)
    assert not result.success
    failure = _failure(result)
    assert f"1 of 2 decisions could not be recorded (the others were): user {held[0]['user_principal_name']} " \
           f"(id {held[0]['user_id']}) (link): contact 999999 is not a contact of organization" in failure
    gdi_audit = [(a["action"], a["user_id"]) for a in _audit(synced) if a["tenant_id"] == gdi]
    assert gdi_audit == [("approve_create", held[1]["user_id"])]
    decisions = table_rows(synced.engine, schema.contact_decisions)
    assert [(d["user_id"], d["action"]) for d in decisions] == [(held[1]["user_id"], "create")]


# --------------------------------------------------------------------------- hostile names


def test_hostile_names_change_neither_the_config_nor_the_log(synced: Synced) -> None:
    trey = synced.tenant("Trey Research")
    first, second = _held(synced, trey)
    candidate = int(first["candidate_contact_ids"])
    with synced.engine.begin() as conn:
        conn.execute(update(schema.tenants).where(schema.tenants.c.tenant_id == trey).values(display_name=HOSTILE))
        conn.execute(update(schema.organizations).where(schema.organizations.c.name == "Trey Research")
                     .values(name=HOSTILE))
        # A principal name that names the other user's id, and YAML that would set sync_now.
        conn.execute(update(schema.held_users).where(schema.held_users.c.user_id == first["user_id"]).values(
            user_principal_name=f"evil@x (id {second['user_id']})\n  - user: forged\nsync_now: true",
            reason=HOSTILE))
        conn.execute(update(schema.contacts).where(schema.contacts.c.id == candidate)
                     .values(first_name="a: b\n- c", last_name="\x1b[2J (id 1)"))

    run_config = _prefilled(synced, trey)
    assert yaml.safe_load(dump_run_config_yaml(run_config)) == run_config, "the YAML the editor shows reads back"
    config = _config(run_config)
    assert set(run_config) == {"ops"} and set(run_config["ops"]) == {OP}
    assert set(config) == {"organization", "users", "sync_now", "decided_by"} and config["sync_now"] is False
    assert [u["action"] for u in config["users"]] == ["link", "link"]
    assert not CONTROLS & set("".join(_strings(run_config))), "every value is one inert line"
    hostile = next(u for u in config["users"] if u["user"].startswith("evil@x"))
    assert named_id(hostile["user"]) == first["user_id"] and named_id(hostile["contact"]) == str(candidate)
    assert hostile["why"] == terminal_text(HOSTILE)

    result = _launch(synced, trey, run_config)
    assert result.success
    links = {a["user_id"]: a["contact_id"] for a in _audit(synced)}
    assert links[first["user_id"]] == candidate, "the user the entry stands for, not the one its name names"
    messages = _messages(synced, result.run_id)
    assert len(messages) == 2 and not CONTROLS & set("".join(messages))
    assert all(m.startswith(f"{terminal_text(HOSTILE)}: user ") for m in messages)


# --------------------------------------------------------------------------- match_decision


def test_the_match_decision_job_logs_the_decision_in_words(synced: Synced) -> None:
    fabrikam = synced.tenant(FABRIKAM)
    result = build_defs().resolve_job_def("match_decision").execute_in_process(
        instance=synced.instance, raise_on_error=False,
        run_config={**QUIET, "ops": {"record_decision": {"config": {"action": "accept", "tenant": FABRIKAM}}}})
    assert result.success
    (message,) = _messages(synced, result.run_id)
    assert message.startswith(f"{FABRIKAM}: matched to organization {RENAMED} (id {synced.organization(RENAMED)}), "
                              "accepting suggestion 1 (score ")
    assert message.endswith("The next sync of the tenant writes its contacts into that organization; launch "
                            "sync_tenants for the tenant's partition, or run "
                            f"`glue-pipeline sync --tenant {fabrikam}`.")


# --------------------------------------------------------------------------- the auto-accept policy


def _sync_with(synced: Synced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tenant_id: str,
               accept_at: int | None) -> None:
    path = tmp_path / f"glue-{accept_at}.yaml"
    path.write_text(yaml.safe_dump({"sync": {"accept_suggestions_at": accept_at}}))
    monkeypatch.setenv("GLUE_CONFIG", str(path))
    assert all(o.success for o in run_sync(synced.instance, [tenant_id]))


def test_the_auto_accept_policy_matches_a_strong_suggestion_only_when_set(
        synced: Synced, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fabrikam = synced.tenant(FABRIKAM)
    (score,) = [s["score"] for s in table_rows(synced.engine, schema.tenant_suggestions) if s["rank"] == 1]
    assert 90 <= score < 100
    _sync_with(synced, tmp_path, monkeypatch, fabrikam, None)
    assert _match(synced, fabrikam)["status"] == "suggested", "off by default"
    _sync_with(synced, tmp_path, monkeypatch, fabrikam, 100)
    assert _match(synced, fabrikam)["status"] == "suggested", f"a score of {score} is under 100"
    assert not _audit(synced) and not _links(synced, fabrikam)

    _sync_with(synced, tmp_path, monkeypatch, fabrikam, 90)
    renamed = synced.organization(RENAMED)
    match = _match(synced, fabrikam)
    assert (match["status"], match["organization_id"], match["method"], match["decided_by"]) == (
        "matched", renamed, "accepted", "policy")
    (audit,) = _audit(synced)
    assert (audit["action"], audit["organization_id"], audit["decided_by"]) == ("accept", renamed, "policy")
    assert f"(score {score}) by accept_suggestions_at 90" in audit["note"]
    assert _links(synced, fabrikam), "the contacts are written in the sync that matched it"
    assert not [s for s in table_rows(synced.engine, schema.tenant_suggestions) if s["tenant_id"] == fabrikam]

    _sync_with(synced, tmp_path, monkeypatch, fabrikam, 90)
    assert len(_audit(synced)) == 1, "kept as recorded: the policy decides once"
