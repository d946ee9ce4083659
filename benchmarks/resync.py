"""Re-syncs of the same world: a full sync, the same sync again with nothing changed, then again
after 1% of the users changed (Sandbox.mutate). Phase `settled` (not run by default) is one more
sync with nothing changed after the others: the first re-sync after a full sync plans again the
few tenants without a match whose suggestions weigh an organization that the full sync gave its
first contact domain; the settled one shows the hours after. Each sync runs in a fresh pipeline process, as
the hourly schedule's runs do, on the same store, Dagster instance and Graph cache
(GLUE_CACHE_DIR: users through Graph delta queries, the mailbox report once a day).

    .venv/bin/python benchmarks/resync.py                    # 200 tenants
    .venv/bin/python benchmarks/resync.py --tenants 1000 --changed 0.01

Figures: wall seconds and Graph requests of each sync, and the ratios nochange/full (and
settled/full). Target:
the sync with nothing changed takes <= 1/5 of the full sync's wall time. Ends with one JSON line.
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

PHASES = ["full", "nochange", "changed", "settled"]


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--changed", type=float, default=0.01,
                        help="fraction of each tenant's users changed before the last sync "
                             "(at least one per tenant)")
    parser.add_argument("--profile-phase", choices=PHASES, default="nochange",
                        help="which sync --profile records")
    parser.add_argument("--phases", default="full,nochange,changed",
                        help="syncs to run, in this order (a subset of full,nochange,changed,settled)")
    args = parser.parse_args()
    concurrency = concurrency_of(args)
    figures: dict = {"benchmark": "resync", "tenants": args.tenants,
                     "store": "postgresql" if args.postgres else "sqlite", "latency_ms": args.latency_ms,
                     "concurrency": concurrency}
    with bench_world(args) as (sandbox, ws):
        figures["users"] = sandbox.info["users"]
        figures["devices"] = sandbox.info["devices"]
        env = pipeline_env(sandbox, ws, args.concurrency)
        results = {}
        phases = [p.strip() for p in args.phases.split(",") if p.strip() in PHASES]
        for phase in phases:
            if phase == "changed":
                mutated = sandbox.call("mutate", fraction=args.changed, seed=args.seed)
                print(f"sandbox.mutate({args.changed}): {mutated['changed']:,} users changed")
                figures["users_changed"] = mutated["changed"]
            r = measured_sync(sandbox, env, concurrency, args,
                              profile=args.profile if phase == args.profile_phase else None)
            describe_sync(f"{phase} sync", r)
            results[phase] = r
            figures[f"{phase}_wall_s"] = r["wall_s"]
            if r.get("timeout"):
                figures["timeout"] = phase
                break
            counts = store_counts(ws.store_url, [run["run_id"] for run in r["runs"]])
            print(f"    store: {counts}")
            figures.update({
                f"{phase}_graph_requests": r["graph_requests"], f"{phase}_all_requests": r["all_requests"],
                f"{phase}_cpu_s": r["cpu_s"], f"{phase}_peak_rss_mib": r["peak_rss_mib"],
                f"{phase}_sandbox_cpu_s": r["sandbox_cpu_s"], f"{phase}_floor_s": r["floor_s"],
                f"{phase}_delta_requests": r["delta_requests"],
                f"{phase}_updated": counts.get("updated"), f"{phase}_created": counts.get("created"),
                f"{phase}_configurations_written": counts.get("configurations_written"),
                f"{phase}_ok": all(run["success"] for run in r["runs"]) and bool(r["runs"]),
            })
        full, nochange = results.get("full"), results.get("nochange")
        if full and nochange and not nochange.get("timeout"):
            figures["nochange_over_full_wall"] = nochange["wall_s"] / full["wall_s"]
            figures["nochange_over_full_requests"] = nochange["graph_requests"] / full["graph_requests"]
            print(f"nothing changed / full: wall {figures['nochange_over_full_wall']:.2f} (target <= 0.20), "
                  f"Graph requests {figures['nochange_over_full_requests']:.2f}")
        settled = results.get("settled")
        if full and settled and not settled.get("timeout"):
            figures["settled_over_full_wall"] = settled["wall_s"] / full["wall_s"]
            print(f"settled (nothing changed, again) / full: wall {figures['settled_over_full_wall']:.2f}")
    emit({k: rounded(v, 3) for k, v in figures.items()})


if __name__ == "__main__":
    main()
