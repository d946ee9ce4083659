"""Match decisions end to end: a renamed organization gets a suggestion; creating a duplicate is
refused; accepting it lets the next sync write the tenant's contacts; the match survives a rename;
held likely-duplicates are linked or approved, or created by duplicate_policy create (their risk
still reported, a link decision still followed); ignore and un-ignore; the overview's checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from glue_pipeline.cli import main
from glue_pipeline.decisions import DecisionError, apply_decision
from glue_pipeline.runner import get_instance, run_discovery, run_overview, run_sync
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store

RENAMED = "Fabrikam Proprietary Limited"


@pytest.fixture
def synced(glue_env: dict, small_world: World, tmp_path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, dg.DagsterInstance, World]:
    """The small world synced once, with one organization renamed so its tenant is only suggested."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    store = small_world.store.model_copy(deep=True)
    org = next(o for o in store.organizations if o.name == "Fabrikam Pty Ltd")
    org.name = RENAMED
    engine = make_engine(glue_env["GLUE_STORE_URL"])
    seed_store(engine, store)
    instance = get_instance()
    assert run_discovery(instance).success
    run_sync(instance)
    yield engine, instance, small_world
    instance.dispose()


def _tenant(world: World, name: str):  # type: ignore[no-untyped-def]
    return next(t for t in world.tenants if t.display_name == name)


def _match_row(engine: Engine, tenant_id: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(schema.tenant_matches)
                                 .where(schema.tenant_matches.c.tenant_id == tenant_id)).one()._mapping)


def _linked_users(engine: Engine, tenant_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.contact_microsoft.c.user_id)
                                .where(schema.contact_microsoft.c.tenant_id == tenant_id)).scalars())


def test_suggestion_accept_then_sync_writes_the_tenant(synced) -> None:  # type: ignore[no-untyped-def]
    engine, instance, world = synced
    tenant = _tenant(world, "Fabrikam Pty Ltd")
    row = _match_row(engine, tenant.id)
    assert row["status"] == "suggested" and row["organization_id"] is None
    assert not _linked_users(engine, tenant.id), "a suggested tenant's users are held back"

    runner = CliRunner()
    listing = runner.invoke(main, ["match", "list", "--open"])
    assert RENAMED in listing.output and "suggested" in listing.output

    refused = runner.invoke(main, ["match", "create-org", tenant.display_name])
    assert refused.exit_code != 0 and "a strong suggestion exists" in refused.output

    accepted = runner.invoke(main, ["match", "accept", tenant.display_name, "--by", "ana"])
    assert accepted.exit_code == 0, accepted.output
    assert accepted.output.startswith(f"{tenant.display_name}: matched to organization {RENAMED} (id "), \
        "the command says in words what was decided"
    assert f"run `glue-pipeline sync --tenant {tenant.id}`" in accepted.output
    row = _match_row(engine, tenant.id)
    assert (row["status"], row["method"], row["decided_by"]) == ("matched", "accepted", "ana")

    assert all(r.success for r in run_sync(instance, [tenant.id]))
    assert _linked_users(engine, tenant.id), "after the decision the next sync writes the contacts"

    # Kept by tenant id: renaming the organization does not unmatch the tenant.
    with engine.begin() as conn:
        conn.execute(update(schema.organizations).where(schema.organizations.c.id == row["organization_id"])
                     .values(name="Something Else Entirely"))
    run_sync(instance, [tenant.id])
    assert _match_row(engine, tenant.id)["organization_id"] == row["organization_id"]
    with engine.connect() as conn:
        audit = conn.execute(select(schema.match_decisions.c.action)).scalars().all()
    assert audit == ["accept"]


def test_create_organization_when_nothing_resembles_the_tenant(synced) -> None:  # type: ignore[no-untyped-def]
    engine, instance, world = synced
    tenant = _tenant(world, "Fabrikam Pty Ltd")
    with pytest.raises(DecisionError, match="strong suggestion"):
        apply_decision(engine, "create_organization", tenant.id)
    result = apply_decision(engine, "create_organization", tenant.id, force=True, by="ana")
    with engine.connect() as conn:
        names = conn.execute(select(schema.organizations.c.name)).scalars().all()
    assert names.count("Fabrikam Pty Ltd") == 1 and result["organization"] == "Fabrikam Pty Ltd"
    with pytest.raises(DecisionError, match="already has this name"):
        apply_decision(engine, "create_organization", tenant.id)


def test_ignore_then_unignore(synced) -> None:  # type: ignore[no-untyped-def]
    engine, instance, world = synced
    tenant = _tenant(world, "Trey Research")
    before = _linked_users(engine, tenant.id)
    assert before
    apply_decision(engine, "ignore", tenant.display_name)
    run_sync(instance, [tenant.id])
    assert _match_row(engine, tenant.id)["status"] == "ignored"
    assert _linked_users(engine, tenant.id) == before, "ignoring writes nothing more and deletes nothing"
    apply_decision(engine, "unignore", tenant.id)
    run_sync(instance, [tenant.id])
    row = _match_row(engine, tenant.id)
    assert (row["status"], row["method"]) == ("matched", "exact")


def test_held_duplicates_are_linked_or_approved(synced) -> None:  # type: ignore[no-untyped-def]
    engine, instance, world = synced
    with engine.connect() as conn:
        held = conn.execute(select(schema.held_users).where(
            schema.held_users.c.reason.like("likely duplicate%"))).all()
    assert len(held) >= 2, "the generated store holds people under another email format"
    first, second = held[0], held[1]
    candidate = int(first.candidate_contact_ids.split(",")[0])
    apply_decision(engine, "link_user", first.tenant_id, user_id=first.user_id, contact_id=candidate)
    apply_decision(engine, "approve_create", second.tenant_id, user_id=second.user_id)
    with pytest.raises(DecisionError, match="neither held nor linked"):
        apply_decision(engine, "approve_create", second.tenant_id, user_id="not-a-user")
    run_sync(instance, sorted({first.tenant_id, second.tenant_id}))
    with engine.connect() as conn:
        links = dict(conn.execute(select(schema.contact_microsoft.c.user_id,
                                         schema.contact_microsoft.c.contact_id)).all())
        still_held = set(conn.execute(select(schema.held_users.c.user_id)).scalars())
    assert links[first.user_id] == candidate
    assert second.user_id in links and links[second.user_id] != int(second.candidate_contact_ids.split(",")[0])
    assert {first.user_id, second.user_id}.isdisjoint(still_held)


def test_duplicate_policy_create_creates_held_duplicates_but_follows_a_link(  # type: ignore[no-untyped-def]
        synced, glue_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, instance, world = synced
    with engine.connect() as conn:
        held = conn.execute(select(schema.held_users).where(
            schema.held_users.c.reason.like("likely duplicate%"))).all()
    assert len(held) >= 2, "the generated store holds people under another email format"
    linked, created = held[0], held[1:]
    candidate = int(linked.candidate_contact_ids.split(",")[0])
    apply_decision(engine, "link_user", linked.tenant_id, user_id=linked.user_id, contact_id=candidate)
    config = tmp_path / "glue.yaml"
    config.write_text(yaml.safe_dump({"sync": {"duplicate_policy": "create"}}))
    monkeypatch.setenv("GLUE_CONFIG", str(config))
    tenant_ids = sorted({h.tenant_id for h in held})
    assert all(r.success for r in run_sync(instance, tenant_ids))

    with engine.connect() as conn:
        links = dict(conn.execute(select(schema.contact_microsoft.c.user_id,
                                         schema.contact_microsoft.c.contact_id)).all())
        made_by = dict(conn.execute(select(schema.contacts.c.id, schema.contacts.c.created_by)).all())
        still_held = set(conn.execute(select(schema.held_users.c.user_id)).scalars())
    assert links[linked.user_id] == candidate, "the analyst's link wins over the policy"
    for user in created:
        assert made_by.get(links.get(user.user_id)) == "microsoft", f"{user.user_principal_name} gets a new contact"
    assert still_held.isdisjoint(h.user_id for h in held)

    tables = Path(glue_env["GLUE_DATA_DIR"]) / "duplicate_risk"
    risk = pd.concat([pd.read_parquet(tables / f"{t}.parquet") for t in tenant_ids])
    high = set(zip(risk.loc[risk["level"] == "high", "user_id"], risk.loc[risk["level"] == "high", "contact_id"],
                   strict=True))
    assert {(u.user_id, int(u.candidate_contact_ids.split(",")[0])) for u in created} <= high, \
        "each created user's likely duplicate is still reported"
    assert linked.user_id not in set(risk["user_id"]), "a linked user is no longer scored"


def test_overview_checks_report_what_needs_a_decision(synced) -> None:  # type: ignore[no-untyped-def]
    engine, instance, world = synced
    outcome = run_overview(instance)
    assert outcome.success
    checks = {e.dagster_event.asset_check_evaluation_data.check_name:
              e.dagster_event.asset_check_evaluation_data.passed
              for e in instance.all_logs(outcome.run_id)
              if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["no_conflicting_tenants"] is True
    assert checks["all_tenants_matched"] is False, "the suggested tenant waits for a decision"
    assert checks["no_likely_duplicates_held"] is False
    assert checks["no_duplicate_emails_in_an_organization"] is True
    assert "reports_not_concealed" in checks
