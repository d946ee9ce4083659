"""One very large tenant through the whole pipeline: a world of a single tenant with 50,000 users
(and about one Intune device each), a full sync through Dagster, then a re-sync with nothing
changed, as the hourly schedule would run it. The sandbox's paging of such a tenant is tested
elsewhere; this measures the pipeline's memory and time on it.

    .venv/bin/python benchmarks/large_tenant.py                  # 50,000 users, SQLite
    .venv/bin/python benchmarks/large_tenant.py --users 20000 --postgres

Figures: wall seconds, CPU seconds and peak RSS (the pipeline process and its workers) of each
sync, and the Graph requests. Target: peak RSS <= 1 GiB. Ends with one JSON line.
"""

from __future__ import annotations

import argparse

from _common import (
    bench_world,
    common_arguments,
    concurrency_of,
    describe_sync,
    emit,
    measured_sync,
    pipeline_env,
    rounded,
    store_counts,
)

PEAK_RSS_TARGET_MIB = 1024


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter),
                              tenants=1)
    parser.add_argument("--users", type=int, default=50_000, help="users of the one tenant")
    args = parser.parse_args()
    args.tenants, args.users_per_tenant = 1, args.users
    concurrency = concurrency_of(args)
    figures: dict = {"benchmark": "large_tenant", "store": "postgresql" if args.postgres else "sqlite",
                     "latency_ms": args.latency_ms, "concurrency": concurrency}
    with bench_world(args) as (sandbox, ws):
        figures.update(users=sandbox.info["users"], devices=sandbox.info["devices"])
        env = pipeline_env(sandbox, ws, args.concurrency)
        for phase in ("full", "nochange"):
            r = measured_sync(sandbox, env, concurrency, args,
                              profile=args.profile if phase == "full" else None)
            describe_sync(f"{phase} sync", r)
            if r.get("timeout"):
                figures["timeout"] = phase
                break
            counts = store_counts(ws.store_url, [run["run_id"] for run in r["runs"]])
            print(f"    store: {counts}")
            figures.update({f"{phase}_wall_s": r["wall_s"], f"{phase}_cpu_s": r["cpu_s"],
                            f"{phase}_peak_rss_mib": r["peak_rss_mib"],
                            f"{phase}_graph_requests": r["graph_requests"],
                            f"{phase}_contacts": counts.get("contacts"),
                            f"{phase}_ok": all(run["success"] for run in r["runs"]) and bool(r["runs"])})
        peak = max(figures.get("full_peak_rss_mib", 0), figures.get("nochange_peak_rss_mib", 0))
        print(f"peak RSS {peak:,.0f} MiB (target <= {PEAK_RSS_TARGET_MIB:,} MiB)")
    emit({k: rounded(v, 3) for k, v in figures.items()})


if __name__ == "__main__":
    main()
