"""`make demo`: a complete sync of a sandbox partner account through the Dagster instance under
var/dagster, with progress and a short summary. Running it again creates no contact."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from glue_pipeline.render import echo
from glue_pipeline.report import contact_count, format_summary, next_steps, summarize
from glue_pipeline.runner import get_instance, run_discovery, run_overview, run_sync
from glue_pipeline.sandbox.generate import generate_world, generation_day
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World, load_world, redated, save_world
from glue_pipeline.settings import GraphSettings, default_var_dir, graph_settings_from_env, store_url_from_env
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store


def sandbox_env(sandbox: Sandbox, world: World) -> dict[str, str]:
    """The environment that points the pipeline at a running sandbox."""
    return {
        "GLUE_AUTHORITY_HOST": sandbox.authority_host,
        "GLUE_GRAPH_URL": sandbox.graph_url,
        "GLUE_CA_FILE": str(sandbox.ca_file),
        "GLUE_PARTNER_TENANT_ID": world.partner.tenant_id,
        "GLUE_CLIENT_ID": world.app.client_id,
        "GLUE_CLIENT_SECRET": world.app.client_secret,
    }


def sandbox_settings(sandbox: Sandbox, world: World, **overrides: Any) -> GraphSettings:
    """Graph settings for a running sandbox, read the way the pipeline reads them (from the
    environment `sandbox_env` gives), with any field overridden."""
    return replace(graph_settings_from_env(sandbox_env(sandbox, world)), **overrides)


def demo_world(var_dir: Path, seed: int, tenants: int, users: int) -> World:
    """The demo's world: its file, generated once so that every demo run sees the same Microsoft,
    re-dated to today (the file is left as it is) so that its recent sign-ins stay recent."""
    path = var_dir / "demo" / "world.json"
    if not path.exists():
        # Three organizations spelled differently from their tenant show suggestions at work.
        save_world(generate_world(seed=seed, tenants=tenants, users=users, renamed=3), path)
    return redated(load_world(path), generation_day())


def run_demo(seed: int = 7, tenants: int = 24, users: int = 1500) -> int:
    var_dir = default_var_dir()
    world = demo_world(var_dir, seed, tenants, users)
    store_url = store_url_from_env()
    engine = make_engine(store_url)
    if seed_store(engine, world.store):
        echo(f"store: seeded {len(world.store.organizations)} organizations and "
             f"{len(world.store.contacts)} contacts")
    before = contact_count(engine)
    instance = get_instance()
    with Sandbox(SandboxConfig(world=world), state_dir=var_dir / "sandbox") as sandbox:
        os.environ.update(sandbox_env(sandbox, world))  # where the runs' resources find Graph
        echo(f"sandbox: {sandbox.base_url} ({len(world.tenants)} tenants, {world.user_count} users; "
             f"CA {sandbox.ca_file})")
        discovery = run_discovery(instance)
        if not discovery.success:
            echo(f"discovery failed (run {discovery.run_id}): {discovery.error}")
            return 1
        runs = run_sync(instance, show_progress=True)
    run_overview(instance)
    summary = summarize(engine, [r.run_id for r in runs])
    created = contact_count(engine) - before
    echo("\n== glue-pipeline demo summary ==")
    echo(format_summary(summary))
    if created == 0:
        echo("no contact was created: every tenant that synced was already in step with Microsoft "
             "(re-running the sync is idempotent)")
    for step in next_steps(engine):
        echo(f"next: {step}")
    echo(f"store: {store_url}")
    echo(f"Dagster instance: {instance.root_directory} (runs {', '.join(r.run_id for r in runs)})")
    echo("open the UI: make ui  (then http://127.0.0.1:3000)")
    return 0
