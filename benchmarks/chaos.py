"""Chaos benchmark: many syncs of a faulty, changing Microsoft 365, some killed mid-run, then a
clean run compared with a clean sync of the same final world into a fresh store.

    python benchmarks/chaos.py [--seed 5] [--tenants 16] [--users 600] [--runs 16] [--kills 4]

A sandbox serves a generated world over HTTPS with faults on: 429 with Retry-After, 5xx,
dropped connections, tokens expiring after a random number of requests, one tenant whose
consent is revoked and given back halfway, one tenant that vanishes (first right after a
discovery, then for the discoveries too) and returns, now and then a tenant whose users'
@odata.nextLink loops or never ends, and a spoiled mailbox report. The syncs run through the runner
(run_discovery / run_sync) on a temporary Dagster instance and a temporary SQLite store; some
run as `glue-pipeline sync` in a subprocess that is killed with SIGKILL once it has written a
random number of tenants. Between some runs the world changes (users edited, added, removed).

At the end the faults are switched off, one clean run is made, and the store is compared with a
clean sync of the final world into a fresh store:

- contacts lost: users with a contact in the reference that have none in the chaos store (and
  are not held there for an analyst, with the reason);
- contacts duplicated: Microsoft users linked to more than one contact, plus contacts created
  with the same primary email as another created contact of the same organization.

Both must be 0 (the exit status says so). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, and_, func, select

from glue_pipeline.demo import sandbox_env, sandbox_settings
from glue_pipeline.graph.client import GraphClient
from glue_pipeline.options import SyncOptions
from glue_pipeline.runner import get_instance, run_discovery, run_sync
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store import schema
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store
from glue_pipeline.sync import discover_into, recorded_run, sync_context

KILL_DEADLINE_S = 180  # a killed run that never reaches its kill point is killed anyway


def log(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- reading the stores


def _plain_sqlite(path: Path) -> sqlite3.Connection:
    """A plain (deferred) reader: the store's engine begins every transaction IMMEDIATE, which
    would queue behind a writer in another process."""
    return sqlite3.connect(str(path), timeout=30)


def _latest_run(path: Path) -> tuple[str | None, int]:
    """The newest sync run and how many tenants it has finished."""
    with _plain_sqlite(path) as conn:
        row = conn.execute("SELECT run_id FROM sync_runs ORDER BY started_at DESC LIMIT 1").fetchone()
        if row is None:
            return None, 0
        done = conn.execute("SELECT count(*) FROM sync_results WHERE run_id = ?", (row[0],)).fetchone()[0]
    return row[0], done


def linked_users(engine: Engine) -> dict[tuple[str, str], dict]:
    """(tenant id, user id) -> the linked contact's fields."""
    cm, contacts = schema.contact_microsoft, schema.contacts
    with engine.connect() as conn:
        rows = conn.execute(select(cm.c.tenant_id, cm.c.user_id, cm.c.status, cm.c.user_principal_name,
                                   cm.c.licenses, *(cm.c[c] for c in MAILBOX),
                                   contacts.c.organization_id, contacts.c.first_name, contacts.c.last_name,
                                   contacts.c.title, contacts.c.location)
                            .join(contacts, contacts.c.id == cm.c.contact_id)).all()
    return {(r.tenant_id, r.user_id): dict(r._mapping) for r in rows}


def held(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        return {(r.tenant_id, r.user_id): r.reason for r in conn.execute(select(schema.held_users))}


def duplicated(engine: Engine) -> tuple[int, int]:
    """(Microsoft users linked to more than one contact, extra contacts created with the primary
    email of another created contact of the same organization)."""
    cm, contacts, emails = schema.contact_microsoft, schema.contacts, schema.contact_emails
    with engine.connect() as conn:
        linked_twice = conn.execute(select(func.count()).select_from(
            select(cm.c.tenant_id, cm.c.user_id).group_by(cm.c.tenant_id, cm.c.user_id)
            .having(func.count() > 1).subquery())).scalar_one()
        created = conn.execute(
            select(contacts.c.organization_id, func.lower(emails.c.value))
            .join(emails, and_(emails.c.contact_id == contacts.c.id, emails.c.is_primary.is_(True)))
            .where(contacts.c.created_by == "microsoft")).all()
    counts = Counter((org, email) for org, email in created)
    return linked_twice, sum(n - 1 for n in counts.values() if n > 1)


def failed_and_recovered(engine: Engine) -> tuple[set[str], set[str]]:
    """Tenants that failed in some run, and those of them synced (or held) in a later run."""
    results, runs = schema.sync_results, schema.sync_runs
    with engine.connect() as conn:
        rows = conn.execute(select(results.c.tenant_id, results.c.status)
                            .join(runs, runs.c.run_id == results.c.run_id)
                            .order_by(runs.c.started_at, results.c.finished_at)).all()
    failed: set[str] = set()
    recovered: set[str] = set()
    for tenant_id, status in rows:
        if status == "failed":
            failed.add(tenant_id)
            recovered.discard(tenant_id)
        elif tenant_id in failed:
            recovered.add(tenant_id)
    return failed, recovered


# --------------------------------------------------------------------------- the runs


def reference_sync(world: World, initial_store, sandbox: Sandbox, path: Path) -> Engine:  # type: ignore[no-untyped-def]
    """A clean sync of the world as it is now into a fresh store seeded like the chaos store."""
    engine = make_engine(f"sqlite:///{path}")
    seed_store(engine, initial_store)
    client = GraphClient(sandbox_settings(sandbox, world))
    tenant_ids = discover_into(engine, client)
    run_id = f"reference-{uuid.uuid4().hex[:8]}"
    outcomes = recorded_run(sync_context(client, engine, run_id, SyncOptions()), tenant_ids, 4)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise SystemExit(f"the reference sync failed for {len(failed)} tenants: {failed[0].error}")
    return engine


def killed_run(store_path: Path, tenants: int, rng: random.Random) -> dict:
    """`glue-pipeline sync` in a subprocess, killed with SIGKILL once its sync run has finished a
    random number of tenants (it may finish first: then it simply completed)."""
    before, _ = _latest_run(store_path)
    kill_after = rng.randint(1, max(1, tenants - 2))
    cli = Path(sys.executable).with_name("glue-pipeline")
    command = [str(cli), "sync"] if cli.exists() else [sys.executable, "-m", "glue_pipeline.cli", "sync"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + KILL_DEADLINE_S
    done = 0
    while proc.poll() is None:
        run_id, done = _latest_run(store_path)
        if (run_id != before and done >= kill_after) or time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    return {"kind": "killed" if killed else "subprocess", "tenants_done": done, "success": None}


def set_faults(sandbox: Sandbox, rng: random.Random, index: int, tenant_ids: list[str]) -> None:
    """Random rates for this run, plus a paging fault or a spoiled mailbox report now and then."""
    faults = sandbox.faults
    faults.rate_429 = rng.choice([0.02, 0.04, 0.06])
    faults.rate_5xx = rng.choice([0.02, 0.04, 0.06])
    faults.reset_rate = rng.choice([0.01, 0.02, 0.03])
    faults.retry_after_s = 1
    faults.expire_tokens_after_requests = rng.randint(20, 200)
    faults.next_link_loop.clear()
    faults.next_link_endless.clear()
    faults.report_csv.clear()
    if index % 4 == 1:
        (faults.next_link_loop if index % 8 == 1 else faults.next_link_endless).add(rng.choice(tenant_ids))


def forget_mailbox_reports(cache_dir: Path, tenant_id: str = "*") -> None:
    """The pipeline fetches a tenant's mailbox report once a day; forgetting the cached one is what
    the next day brings."""
    for path in (cache_dir / "mailbox_usage").glob(f"{tenant_id}.parquet"):
        path.unlink()


MAILBOX = ("mailbox_storage_used_bytes", "mailbox_item_count", "mailbox_quota_bytes", "mailbox_last_activity")


def mailbox_values(engine: Engine, tenant_id: str) -> dict[str, tuple]:
    cm = schema.contact_microsoft
    with engine.connect() as conn:
        return {r.user_id: tuple(r)[1:] for r in conn.execute(
            select(cm.c.user_id, *(cm.c[c] for c in MAILBOX)).where(cm.c.tenant_id == tenant_id))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--tenants", type=int, default=16)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--runs", type=int, default=16, help="faulty runs before the final clean run")
    parser.add_argument("--kills", type=int, default=4, help="how many of them run in a subprocess and are killed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    started = time.monotonic()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="glue-chaos-"))
    world = generate_world(seed=args.seed, tenants=args.tenants, users=args.users, revoked=0)
    initial_store = world.store.model_copy(deep=True)
    sandbox = Sandbox(SandboxConfig(world=world, latency_ms=2, fault_seed=args.seed), state_dir=root / "sandbox")
    sandbox.start()
    store_path = root / "store.db"
    config = root / "glue.yaml"
    config.write_text("sync: {}\n")
    os.environ.pop("DAGSTER_PG_URL", None)
    os.environ.update({**sandbox_env(sandbox, world), "GLUE_STORE_URL": f"sqlite:///{store_path}",
                       "GLUE_DATA_DIR": str(root / "tables"), "GLUE_VAR_DIR": str(root / "var"),
                       "GLUE_CACHE_DIR": str(root / "var" / "cache"), "GLUE_CONFIG": str(config),
                       "GLUE_GRAPH_CONCURRENCY": "4", "DAGSTER_HOME": str(root / "dagster_home")})
    engine = make_engine(f"sqlite:///{store_path}")
    seed_store(engine, world.store)
    instance = get_instance()
    tenant_ids = [t.id for t in world.tenants]
    revoked, vanishing = rng.sample(tenant_ids, 2)
    kills = set(rng.sample(range(1, args.runs), min(args.kills, args.runs - 1)))
    log(f"chaos: {len(world.tenants)} tenants, {world.user_count} users, {args.runs} faulty runs "
        f"({len(kills)} killed mid-run), folder {root}")
    log(f"revoked until halfway: {revoked}; vanishing tenant: {vanishing}")
    sandbox.faults.revoked.add(revoked)
    runs: list[dict] = []
    cache_dir = root / "var" / "cache"
    mailbox_erased = 0
    try:
        for index in range(args.runs):
            if index == args.runs // 2:
                sandbox.faults.revoked.discard(revoked)
                log("consent given back to the revoked tenant")
            if index == 3:
                sandbox.remove_tenant(vanishing)  # gone for the discoveries of runs 3 and 4 too
            if index == 5:
                sandbox.restore_tenant(vanishing)
                log("the vanished tenant is back")
            if index > 0 and index % 3 == 0:
                changes = sandbox.mutate(fraction=0.05, seed=index, added=0.03, removed=0.02)
                log(f"world changed: {sum(len(c.changed) for c in changes.values())} edited, "
                    f"{sum(len(c.added) for c in changes.values())} added, "
                    f"{sum(len(c.removed) for c in changes.values())} removed users")
            set_faults(sandbox, rng, index, tenant_ids)
            spoiled = None
            if index % 5 == 2 and index not in kills:  # a new report day, and the report is spoiled
                spoiled, mode = rng.choice(tenant_ids), rng.choice(["truncated", "malformed", "empty", "no_bom"])
                sandbox.faults.report_csv[spoiled] = mode
                forget_mailbox_reports(cache_dir, spoiled)
                mailboxes_before = mailbox_values(engine, spoiled)
            tick = time.monotonic()
            if index in kills:
                outcome = killed_run(store_path, len(tenant_ids), rng)
            else:
                discovery = run_discovery(instance)
                if index == 2:  # discovery listed it; it vanishes before its extraction
                    sandbox.remove_tenant(vanishing)
                synced = run_sync(instance) if discovery.success else []
                outcome = {"kind": "in-process", "success": bool(synced) and all(r.success for r in synced),
                           "discovery": discovery.success}
            outcome["seconds"] = round(time.monotonic() - tick, 1)
            if spoiled:
                after = mailbox_values(engine, spoiled)
                erased = [u for u, v in mailboxes_before.items()
                          if v[0] is not None and u in after and after[u][0] is None]
                outcome["report"] = f"{mode}: {len(erased)} users' mailbox fields erased"
                mailbox_erased += len(erased)
            runs.append(outcome)
            log(f"run {index + 1:2d}: {outcome}")

        sandbox.faults.clear()
        sandbox.restore_tenant(vanishing)
        forget_mailbox_reports(cache_dir)  # the next day: every report is fetched again
        assert run_discovery(instance).success, "the clean discovery failed"
        [final] = run_sync(instance)
        runs.append({"kind": "clean", "success": final.success})
        log(f"clean run: success {final.success}" + ("" if final.success else f": {final.error}"))
        stats = sandbox.stats.snapshot()
        reference = reference_sync(sandbox.world, initial_store, sandbox, root / "reference.db")
    finally:
        instance.dispose()
        sandbox.stop()

    expected, got, held_back = linked_users(reference), linked_users(engine), held(engine)
    lost = [k for k in expected if k not in got and k not in held_back]
    held_instead = [k for k in expected if k not in got and k in held_back]
    differing = [k for k in expected if k in got and {f: got[k][f] for f in expected[k]} != expected[k]]
    linked_twice, created_twice = duplicated(engine)
    failed, recovered = failed_and_recovered(engine)
    summary = {
        "runs": len(runs),
        "runs_killed": sum(r["kind"] == "killed" for r in runs),
        "faults_injected": stats["faults_injected"],
        "faults": {k: stats[k] for k in ("throttled", "server_errors", "resets", "tokens_refused",
                                         "paging_faults", "report_faults")},
        "tenants_failed": len(failed),
        "tenants_recovered": len(recovered),
        "tenants_still_failed": sorted(failed - recovered),
        "final_run_succeeded": bool(final.success),
        "reference_contacts": len(expected),
        "chaos_contacts": len(got),
        "contacts_lost": len(lost),
        "contacts_duplicated": linked_twice + created_twice,
        "held_instead_of_written": len(held_instead),
        "contacts_differing_from_reference": len(differing),
        "mailbox_fields_erased_by_spoiled_reports": mailbox_erased,
        "seconds": round(time.monotonic() - started, 1),
    }
    log(f"runs: {summary['runs']} ({summary['runs_killed']} killed mid-run)")
    log(f"faults injected: {summary['faults_injected']} {summary['faults']}")
    log(f"tenants failed: {summary['tenants_failed']}, recovered: {summary['tenants_recovered']}")
    log(f"contacts: reference {len(expected)}, chaos store {len(got)}; lost {len(lost)}, duplicated "
        f"{summary['contacts_duplicated']} ({linked_twice} users linked twice, {created_twice} created twice)")
    if mailbox_erased:
        log(f"spoiled mailbox reports erased the mailbox fields of {mailbox_erased} users (they should "
            "have kept their last values)")
    if held_instead:
        log(f"held for an analyst instead of written: {len(held_instead)}, e.g. "
            f"{held_back[held_instead[0]][:160]}")
    if differing:
        k = differing[0]
        log(f"linked in both but differing: {len(differing)}, e.g. {k}: {got[k]} vs {expected[k]}")
    for key in lost[:5]:
        log(f"lost: tenant {key[0]} user {key[1]} ({expected[key]['user_principal_name']})")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 1 if summary["contacts_lost"] or summary["contacts_duplicated"] else 0


if __name__ == "__main__":
    sys.exit(main())
