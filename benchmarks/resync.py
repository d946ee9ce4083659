"""Re-syncs of the same world: a full sync, the same sync again with nothing changed, then again
after 1% of the users changed (Sandbox.mutate), then after `concentrated` changes (5% of the
tenants, 10% of their users each: several per tenant). Phase `settled` (not run by default) is one more
sync with nothing changed after the others: the first re-sync after a full sync plans again the
few tenants without a match whose suggestions weigh an organization that the full sync gave its
first contact domain; the settled one shows the hours after. Each sync runs in a fresh pipeline process, as
the hourly schedule's runs do, on the same store, Dagster instance and Graph cache
(GLUE_CACHE_DIR: users through Graph delta queries, the mailbox report once a day).

    .venv/bin/python benchmarks/resync.py                    # 200 tenants
    .venv/bin/python benchmarks/resync.py --tenants 1000 --changed 0.01

Figures: wall seconds, CPU and Graph requests of each sync; the ratios to the full sync's wall
time; the CPU per unchanged tenant (the nothing-changed sync's CPU / tenants) and per changed user
(a changed sync's CPU above the nothing-changed sync's / the users changed). Targets: nothing
changed <= 0.10 of the full sync, 1% changed <= 0.25 (cost proportional to change). Ends with one
JSON line.
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

PHASES = ["full", "nochange", "changed", "concentrated", "settled"]
TARGETS = {"nochange": 0.10, "changed": 0.25}  # wall, as a share of the full sync's


def main() -> None:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__,
                                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--changed", type=float, default=0.01,
                        help="fraction of each tenant's users changed before the last sync "
                             "(at least one per tenant)")
    parser.add_argument("--concentrated-tenants", type=float, default=0.05,
                        help="phase concentrated: the share of tenants changed")
    parser.add_argument("--concentrated-changed", type=float, default=0.10,
                        help="phase concentrated: the share of each of those tenants' users changed")
    parser.add_argument("--profile-phase", choices=PHASES, default="nochange",
                        help="which sync --profile records")
    parser.add_argument("--phases", default="full,nochange,changed,concentrated",
                        help=f"syncs to run, in this order (a subset of {','.join(PHASES)})")
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
        changed_users: dict[str, int] = {}
        for phase in phases:
            if phase in ("changed", "concentrated"):
                changes = {"fraction": args.changed, "seed": args.seed} if phase == "changed" else {
                    "fraction": args.concentrated_changed, "seed": args.seed + 1,
                    "tenants": args.concentrated_tenants}
                mutated = sandbox.call("mutate", **changes)
                print(f"sandbox.mutate({changes}): {mutated['changed']:,} users changed")
                changed_users[phase] = mutated["changed"]
                figures[f"{phase}_users_changed"] = mutated["changed"]
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
        figures.update(_ratios(results, changed_users, args.tenants))
    emit({k: rounded(v, 3) for k, v in figures.items()})


def _ratios(results: dict[str, dict], changed_users: dict[str, int], tenants: int) -> dict[str, float]:
    """Each sync's wall time as a share of the full sync's, and the CPU per unchanged tenant and
    per changed user; printed as they are worked out."""
    figures: dict[str, float] = {}
    done = {phase: r for phase, r in results.items() if not r.get("timeout")}
    full, nochange = done.get("full"), done.get("nochange")
    for phase, r in done.items():
        if full and phase != "full":
            share = figures[f"{phase}_over_full_wall"] = r["wall_s"] / full["wall_s"]
            target = f" (target <= {TARGETS[phase]:.2f})" if phase in TARGETS else ""
            print(f"{phase} / full: wall {share:.2f}{target}, Graph requests "
                  f"{r['graph_requests'] / full['graph_requests']:.2f}")
    if nochange:
        figures["cpu_ms_per_unchanged_tenant"] = 1000 * nochange["cpu_s"] / tenants
        print(f"CPU per unchanged tenant (nothing changed): {figures['cpu_ms_per_unchanged_tenant']:.1f} ms")
        for phase, users in changed_users.items():
            if phase in done and users:
                per_user = figures[f"{phase}_cpu_ms_per_changed_user"] = \
                    1000 * (done[phase]["cpu_s"] - nochange["cpu_s"]) / users
                print(f"CPU per changed user ({phase}, above the nothing-changed sync): {per_user:.1f} ms")
    return figures


if __name__ == "__main__":
    main()
