"""A full sync through Dagster at scale: run_discovery + run_sync on a real instance in a
temporary DAGSTER_HOME, against the sandbox in its own process with 50 ms per request.

    .venv/bin/python benchmarks/sync.py                      # 200 tenants, ~20,000 users, SQLite
    .venv/bin/python benchmarks/sync.py --tenants 1000       # ~100,000 users, a few tenants over 2,000
    .venv/bin/python benchmarks/sync.py --postgres --concurrency 16 --profile /tmp/sync.svg

Figures: wall seconds of the sync (discovery and the one run over every tenant), CPU seconds of
the pipeline process and its worker processes (getrusage self + children, imports excluded),
their summed peak RSS, the Graph requests the sandbox served, the network floor (requests x
latency / Graph concurrency) and wall/floor, and the sandbox process's CPU seconds. Targets on a
2-core machine: 1,000 tenants in <= 3 min wall and <= 2 GiB peak RSS. Ends with one JSON line.
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


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args()
    concurrency = concurrency_of(args)
    with bench_world(args) as (sandbox, ws):
        env = pipeline_env(sandbox, ws, args.concurrency)
        print(f"sync: GLUE_GRAPH_CONCURRENCY {concurrency}")
        r = measured_sync(sandbox, env, concurrency, args, profile=args.profile)
        describe_sync("full sync", r)
        counts = {} if r.get("timeout") else store_counts(ws.store_url, [run["run_id"] for run in r["runs"]])
        if counts:
            print(f"    store: {counts}")
        figures = {
            "benchmark": "sync", "tenants": args.tenants, "users": sandbox.info["users"],
            "devices": sandbox.info["devices"],
            "store": "postgresql" if args.postgres else "sqlite", "latency_ms": args.latency_ms,
            "concurrency": concurrency, "wall_s": r["wall_s"], "timeout": bool(r.get("timeout")),
        }
        if not r.get("timeout"):
            figures.update({
                "discovery_s": r["discovery_s"], "sync_run_s": r["sync_s"], "cpu_s": r["cpu_s"],
                "import_cpu_s": r["import_cpu_s"], "peak_rss_mib": r["peak_rss_mib"],
                "sandbox_cpu_s": r["sandbox_cpu_s"], "graph_requests": r["graph_requests"],
                "all_requests": r["all_requests"], "floor_s": r["floor_s"],
                "wall_over_floor": r["wall_over_floor"], "peak_in_flight": r["peak_in_flight"],
                "runs_succeeded": all(run["success"] for run in r["runs"]) and bool(r["runs"]),
                "contacts": counts.get("contacts"), "contacts_created": counts.get("created"),
                "configurations": counts.get("configurations"),
                "tenants_failed": counts.get("tenants_failed", 0),
            })
        emit({k: rounded(v) for k, v in figures.items()})


if __name__ == "__main__":
    main()
