"""Re-running one failed tenant alone, as an operator would: the tenant's consent is revoked in
the sandbox during the full sync (so its partition fails), then restored, and
`glue-pipeline sync --tenant ID` runs in a subprocess (the installed CLI, the same DAGSTER_HOME
and store).

    .venv/bin/python benchmarks/rerun.py                     # 200 tenants; the largest and a median one
    .venv/bin/python benchmarks/rerun.py --tenants 1000

Figures: wall seconds from the command's start to its contacts written (the tenant_contacts
materialization of the partition, read back from the Dagster instance) and to the command's exit
(which also refreshes the overview tables and prints the summary); the contacts it wrote. Target:
<= 10 s. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from _common import (
    PROJECT_ROOT,
    VENV_BIN,
    bench_world,
    common_arguments,
    concurrency_of,
    describe_sync,
    emit,
    measured_sync,
    pipeline_env,
    rounded,
)


def tenant_result(store_url: str, tenant_id: str) -> dict:
    """The tenant's latest sync_results row."""
    from sqlalchemy import select

    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.schema import sync_results

    engine = make_engine(store_url)
    with engine.connect() as conn:
        row = conn.execute(select(sync_results).where(sync_results.c.tenant_id == tenant_id)
                           .order_by(sync_results.c.finished_at.desc()).limit(1)).first()
    engine.dispose()
    return dict(row._mapping) if row else {}


def matched_tenants(tenants: list[dict], store_url: str) -> list[dict]:
    """The tenants whose display name is exactly one organization's name in the store."""
    from collections import Counter

    from sqlalchemy import select

    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.schema import organizations

    def norm(name: str) -> str:
        return " ".join(name.split()).casefold()

    engine = make_engine(store_url)
    with engine.connect() as conn:
        names = Counter(norm(n) for n in conn.execute(select(organizations.c.name)).scalars())
    engine.dispose()
    return [t for t in tenants if names.get(norm(t["name"])) == 1]


def contacts_written_at(env: dict[str, str], tenant_id: str) -> float | None:
    """Unix time of the latest tenant_contacts materialization of the tenant's partition (keyed by
    the tenant's partition key, store/partition_keys.py)."""
    import dagster as dg

    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.partition_keys import partitions_of

    engine = make_engine(env["GLUE_STORE_URL"])
    key = partitions_of(engine, [tenant_id])[tenant_id]
    engine.dispose()
    os.environ.update({k: v for k, v in env.items() if k in ("DAGSTER_HOME", "DAGSTER_PG_URL")})
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("tenant_contacts"), asset_partitions=[key]),
            limit=1).records
    return records[0].timestamp if records else None


def rerun(env: dict[str, str], store_url: str, tenant: dict) -> dict:
    started = time.time()
    done = subprocess.run([str(VENV_BIN / "glue-pipeline"), "sync", "--tenant", tenant["id"]],
                          cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600)
    exit_s = time.time() - started
    written_at = contacts_written_at(env, tenant["id"])
    row = tenant_result(store_url, tenant["id"])
    out = {"tenant_users": tenant["users"], "exit_code": done.returncode, "exit_s": exit_s,
           "wall_s": (written_at - started) if written_at and written_at > started else None,
           "status": row.get("status"), "created": row.get("created"), "updated": row.get("updated"),
           "unchanged": row.get("unchanged"), "held": row.get("held"), "output": done.stdout.strip(),
           "stderr_tail": done.stderr.strip()[-2000:]}
    return out


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--pick", default="largest,median",
                        help="which tenants fail and are re-run, in order: largest, median (comma-separated)")
    args = parser.parse_args()
    concurrency = concurrency_of(args)
    figures: dict = {"benchmark": "rerun", "tenants": args.tenants,
                     "store": "postgresql" if args.postgres else "sqlite", "latency_ms": args.latency_ms}
    with bench_world(args) as (sandbox, ws):
        env = pipeline_env(sandbox, ws, args.concurrency)
        # Tenants whose name is an organization's in the store are matched, so their re-run writes
        # contacts (an unmatched tenant's users are held back).
        by_size = sorted(matched_tenants(sandbox.tenants, ws.store_url), key=lambda t: t["users"], reverse=True)
        choices = {"largest": by_size[0], "median": by_size[len(by_size) // 2]}
        picks = [(p.strip(), choices[p.strip()]) for p in args.pick.split(",") if p.strip()]
        for _label, tenant in picks:
            sandbox.call("revoke", tenant_id=tenant["id"])
        r = measured_sync(sandbox, env, concurrency, args)
        describe_sync(f"full sync with {len(picks)} tenant(s) revoked", r)
        for label, tenant in picks:
            before = tenant_result(ws.store_url, tenant["id"])
            print(f"{label} tenant {tenant['name']} ({tenant['id']}, {tenant['users']} users): "
                  f"{before.get('status')} in the full sync: {before.get('error')}")
            sandbox.call("restore", tenant_id=tenant["id"])
        for index, (label, tenant) in enumerate(picks):
            sandbox.call("reset_stats")
            result = rerun(env, ws.store_url, tenant)
            stats = sandbox.call("stats")
            wall = result["wall_s"]
            print(f"re-run {label} tenant ({tenant['users']} users): `glue-pipeline sync --tenant {tenant['id']}` "
                  f"exit {result['exit_code']}: contacts written {wall if wall is None else round(wall, 2)} s "
                  f"after the command started, command done in {result['exit_s']:.2f} s; status "
                  f"{result['status']}, contacts created {result['created']}, updated {result['updated']}, "
                  f"unchanged {result['unchanged']}, held {result['held']}; Graph requests "
                  f"{stats['requests'].get('graph', 0)}")
            print("    " + result["output"].replace("\n", "\n    "))
            if result["exit_code"] != 0:
                print(f"    stderr: {result['stderr_tail']}")
            prefix = "" if index == 0 else f"{label}_"
            figures.update({f"{prefix}tenant_users": tenant["users"], f"{prefix}wall_s": wall,
                            f"{prefix}exit_s": result["exit_s"], f"{prefix}exit_code": result["exit_code"],
                            f"{prefix}status": result["status"],
                            f"{prefix}contacts_written": (result["created"] or 0) + (result["updated"] or 0),
                            f"{prefix}contacts_created": result["created"],
                            f"{prefix}contacts_updated": result["updated"],
                            f"{prefix}graph_requests": stats["requests"].get("graph", 0)})
        figures["full_sync_wall_s"] = r["wall_s"]
    emit({k: rounded(v) for k, v in figures.items()})


if __name__ == "__main__":
    main()
