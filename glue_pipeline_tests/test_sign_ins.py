"""A user's last sign-in is shown for 30 days: the sandbox's times count back from the world's
reference date, which a world file records, and the sync judges them at its clock (pinned here,
and through GLUE_CLOCK for runs through Dagster)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from glue_pipeline.demo import sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.mapping import SIGN_IN_SHOWN_FOR, recent_sign_in
from glue_pipeline.options import SyncOptions
from glue_pipeline.runner import run_sync
from glue_pipeline.sandbox.generate import generate_world, iso_z
from glue_pipeline.sandbox.server import ENTRA_PREMIUM_SKUS, Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import (
    FIRST_REFERENCE_DATE,
    SignInActivity,
    Sku,
    User,
    World,
    WorldError,
    load_world,
    save_world,
)
from glue_pipeline.settings import ConfigError, clock_from_env
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import discover_into, recorded_run, sync_context
from glue_pipeline_tests.served import served_world
from glue_pipeline_tests.stores import matched_world, table_rows

NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(("age", "shown"), [
    (timedelta(0), True),
    (SIGN_IN_SHOWN_FOR, True),
    (SIGN_IN_SHOWN_FOR + timedelta(seconds=1), False),
    (timedelta(days=45), False),
])
def test_a_last_sign_in_is_shown_for_30_days(age: timedelta, shown: bool) -> None:
    text = iso_z(NOW - age)
    assert recent_sign_in({"last_sign_in": text}, NOW) == (text if shown else None)


def test_a_world_file_records_its_reference_date_and_an_older_file_still_loads(tmp_path: Path) -> None:
    world = generate_world(seed=4, tenants=2, users=20, revoked=0, reference_date=NOW)
    path = tmp_path / "world.json"
    save_world(world, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["reference_date"] == "2026-12-02T09:30:00Z"
    assert load_world(path) == world

    del raw["reference_date"]  # as written before worlds recorded it
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert load_world(path).reference_date == FIRST_REFERENCE_DATE == datetime(2026, 11, 1, tzinfo=UTC)

    raw["reference_date"] = "2026-12-02T09:30:00"  # no offset: which day it is depends on where
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(WorldError, match="reference_date"):
        load_world(path)


def _signed_in(user: User, moment: datetime) -> None:
    text = iso_z(moment)
    user.signInActivity = SignInActivity(lastSignInDateTime=text, lastNonInteractiveSignInDateTime=text,
                                         lastSuccessfulSignInDateTime=text)


def _signed_in_world() -> tuple[World, User, User]:
    """A one-tenant world whose users all become contacts, with a user who signed in 3 days
    before its reference date and one who signed in 45 days before."""
    world = matched_world(seed=51, tenants=1, users=12)
    tenant = world.tenants[0]
    if not any(s.skuPartNumber in ENTRA_PREMIUM_SKUS for s in tenant.skus):  # signInActivity needs P1/P2
        tenant.skus.append(Sku(skuId="078d2b04-f1bd-4111-bbd4-b4b1b354cef4", skuPartNumber="AAD_PREMIUM",
                               enabled=len(tenant.users)))
    world.store.contacts = []  # every synced user becomes a new contact: none is held as a likely duplicate
    recent, old = [u for u in tenant.users if u.userType == "Member" and u.accountEnabled and u.assignedLicenses][:2]
    _signed_in(recent, world.reference_date - timedelta(days=3))
    _signed_in(old, world.reference_date - timedelta(days=45))
    return world, recent, old


def _shown_sign_ins(engine: Engine) -> dict[str, str | None]:
    """Each synced user's last sign-in as the store shows it."""
    return {r["user_id"]: r["last_sign_in"] for r in table_rows(engine, schema.contact_microsoft)}


def test_a_sign_in_within_30_days_is_shown_and_an_older_one_is_left_empty(sandbox_state: Path,
                                                                         tmp_path: Path) -> None:
    world, recent, old = _signed_in_world()
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    seed_store(engine, world.store)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        client = GraphClient(sandbox_settings(sandbox, world))
        tenant_ids = discover_into(engine, client)

        def last_sign_ins(at: datetime) -> dict[str, str | None]:
            """A sync with its clock `at`: each synced user's last sign-in as the store shows it."""
            ctx = sync_context(client, engine, f"test-{uuid.uuid4().hex[:12]}", SyncOptions(), clock=lambda: at)
            assert [o.status for o in recorded_run(ctx, tenant_ids, 2)] == ["synced"]
            return _shown_sign_ins(engine)

        shown = last_sign_ins(world.reference_date)
        assert shown[recent.id] == iso_z(world.reference_date - timedelta(days=3))
        assert shown[old.id] is None
        later = last_sign_ins(world.reference_date + timedelta(days=28))
        assert later[recent.id] is None and later[old.id] is None, "31 days on, no longer shown"
    engine.dispose()


def test_runs_through_dagster_judge_sign_ins_at_glue_clock(sandbox_state: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    world, recent, old = _signed_in_world()
    with served_world(world, tmp_path, sandbox_state, monkeypatch) as served:
        assert os.environ["GLUE_CLOCK"] == world.reference_date.isoformat(), "served at the reference date"
        [run] = run_sync(served.instance)
        assert run.success, run.error
        shown = _shown_sign_ins(served.engine)
        assert shown[recent.id] == iso_z(world.reference_date - timedelta(days=3))
        assert shown[old.id] is None

        monkeypatch.setenv("GLUE_CLOCK", (world.reference_date + timedelta(days=60)).isoformat())
        [later] = run_sync(served.instance)
        assert later.success, later.error
        shown = _shown_sign_ins(served.engine)
        assert shown[recent.id] is None and shown[old.id] is None, "60 days on, no longer shown"


@pytest.mark.parametrize("value", ["yesterday", "2026-12-02", "2026-12-02T09:30:00"])
def test_glue_clock_is_refused_unless_an_iso_time_with_its_offset(value: str) -> None:
    with pytest.raises(ConfigError, match=r"GLUE_CLOCK=.* is not an ISO-8601 time with its offset: set it to e\.g\. "):
        clock_from_env({"GLUE_CLOCK": value})


def test_glue_clock_pins_the_sync_clock_and_unset_it_is_now() -> None:
    assert clock_from_env({"GLUE_CLOCK": "2026-12-02T09:30:00Z"})() == NOW
    assert clock_from_env({"GLUE_CLOCK": "2026-12-02T10:30:00+01:00"})() == NOW
    before = datetime.now(UTC)
    assert before <= clock_from_env({})() <= datetime.now(UTC)
