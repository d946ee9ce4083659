"""The `glue-pipeline` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from glue_pipeline.sandbox.world import WorldError
from glue_pipeline.settings import ConfigError, default_var_dir, store_url_from_env


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group(help="Microsoft 365 to IT-documentation sync on Dagster.")
def main() -> None:
    pass


# --- sandbox -------------------------------------------------------------------------------
@main.group(help="The local Microsoft 365 sandbox (identity platform + Graph over HTTPS).")
def sandbox() -> None:
    pass


@sandbox.command("world", help="Generate a world file from a seed.")
@click.option("--seed", default=7, show_default=True)
@click.option("--tenants", default=24, show_default=True)
@click.option("--users", default=1500, show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True)
def sandbox_world(seed: int, tenants: int, users: int, out: str) -> None:
    from glue_pipeline.sandbox.generate import generate_world
    from glue_pipeline.sandbox.world import save_world

    world = generate_world(seed=seed, tenants=tenants, users=users)
    save_world(world, out)
    click.echo(f"wrote {out}: {len(world.tenants)} tenants, {world.user_count} users, "
               f"{len(world.store.organizations)} organizations, {len(world.store.contacts)} contacts")


def _load_or_generate(world_path: str | None, seed: int, tenants: int, users: int):  # type: ignore[no-untyped-def]
    from glue_pipeline.sandbox.generate import generate_world
    from glue_pipeline.sandbox.world import load_world

    try:
        return load_world(world_path) if world_path else generate_world(seed=seed, tenants=tenants,
                                                                          users=users)
    except WorldError as exc:
        _fail(str(exc))


@sandbox.command("serve", help="Serve a world until interrupted; writes an env file to source.")
@click.option("--world", "world_path", type=click.Path(dir_okay=False), help="World JSON file.")
@click.option("--seed", default=7, show_default=True)
@click.option("--tenants", default=24, show_default=True)
@click.option("--users", default=1500, show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--latency-ms", default=0.0, show_default=True)
@click.option("--rate-429", default=0.0, show_default=True, help="Fraction of Graph requests throttled.")
@click.option("--rate-5xx", default=0.0, show_default=True, help="Fraction of Graph requests failing.")
@click.option("--revoke", multiple=True, help="Tenant id whose consent is revoked (repeatable).")
def sandbox_serve(world_path: str | None, seed: int, tenants: int, users: int, port: int,
                  latency_ms: float, rate_429: float, rate_5xx: float, revoke: tuple[str, ...]) -> None:
    from glue_pipeline.demo import sandbox_env
    from glue_pipeline.sandbox.server import Sandbox, SandboxConfig

    world = _load_or_generate(world_path, seed, tenants, users)
    config = SandboxConfig(world=world, latency_ms=latency_ms, rate_429=rate_429, rate_5xx=rate_5xx,
                           revoked=set(revoke))
    state_dir = default_var_dir() / "sandbox"
    server = Sandbox(config, state_dir=state_dir, port=port)
    server.start()
    env_file = state_dir / "env"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in sandbox_env(server, world).items()))
    env_file.chmod(0o600)
    click.echo(f"sandbox serving {len(world.tenants)} tenants, {world.user_count} users at {server.base_url}")
    click.echo(f"CA file: {server.ca_file}")
    click.echo(f"point the pipeline at it: source {env_file}   (Ctrl-C stops the sandbox)")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# --- store ---------------------------------------------------------------------------------
@main.group(help="The documentation store.")
def store() -> None:
    pass


@store.command("init", help="Create the tables; load a world's starting organizations and contacts.")
@click.option("--world", "world_path", type=click.Path(dir_okay=False))
def store_init(world_path: str | None) -> None:
    from glue_pipeline.sandbox.world import StoreSeed, load_world
    from glue_pipeline.store.schema import make_engine
    from glue_pipeline.store.seed import seed_store

    try:
        seed = load_world(world_path).store if world_path else StoreSeed()
    except WorldError as exc:
        _fail(str(exc))
    loaded = seed_store(make_engine(store_url_from_env()), seed)
    click.echo(f"store ready at {store_url_from_env()}"
               + ("" if loaded or not world_path else " (it already held data: nothing loaded)"))


# --- sync ----------------------------------------------------------------------------------
@main.command(help="Discover tenants and sync them all in one run, or sync the given tenants.")
@click.option("--tenant", "tenant_ids", multiple=True, help="Sync only this tenant id (repeatable).")
def sync(tenant_ids: tuple[str, ...]) -> None:
    from glue_pipeline.report import format_summary, summarize
    from glue_pipeline.runner import get_instance, run_discovery, run_sync
    from glue_pipeline.settings import settings_from_env
    from glue_pipeline.store.schema import make_engine

    try:
        settings = settings_from_env()
    except ConfigError as exc:
        _fail(str(exc))
    instance = get_instance()
    if not tenant_ids:
        discovery = run_discovery(instance)
        if not discovery.success:
            _fail(f"discovery failed (run {discovery.run_id}): {discovery.error}")
    try:
        runs = run_sync(instance, list(tenant_ids) or None, show_progress=True)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(format_summary(summarize(make_engine(settings.store_url), [r.run_id for r in runs])))
    if not all(r.success for r in runs):
        sys.exit(1)


@main.command(help="What the last sync did, and which tenants failed.")
def status() -> None:
    from glue_pipeline.report import format_summary, last_run_id, summarize
    from glue_pipeline.store.schema import make_engine

    engine = make_engine(store_url_from_env())
    run_id = last_run_id(engine)
    if run_id is None:
        _fail("no sync has run yet against this store: run `glue-pipeline sync` or `make demo`")
    click.echo(f"last sync run {run_id}")
    click.echo(format_summary(summarize(engine, [run_id])))


@main.command(help="Run the demo: a full sync against the sandbox, then a summary.")
@click.option("--seed", default=7, show_default=True)
@click.option("--tenants", default=24, show_default=True)
@click.option("--users", default=1500, show_default=True)
def demo(seed: int, tenants: int, users: int) -> None:
    from glue_pipeline.demo import run_demo

    try:
        sys.exit(run_demo(seed=seed, tenants=tenants, users=users))
    except (ConfigError, WorldError) as exc:
        _fail(str(exc))


@main.command(help="Open the Dagster UI on the project's instance, with the demo sandbox running.")
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    from glue_pipeline.demo import demo_world, sandbox_env
    from glue_pipeline.runner import ensure_dagster_home
    from glue_pipeline.sandbox.server import Sandbox, SandboxConfig

    var_dir = default_var_dir()
    world = demo_world(var_dir, 7, 24, 1500)
    home = ensure_dagster_home()
    root = Path(__file__).resolve().parent.parent
    with Sandbox(SandboxConfig(world=world), state_dir=var_dir / "sandbox") as server:
        env = {**os.environ, **sandbox_env(server, world), "DAGSTER_HOME": str(home)}
        click.echo(f"sandbox at {server.base_url}; Dagster UI at http://127.0.0.1:{port} (Ctrl-C stops both)")
        try:
            subprocess.run([sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"),
                            "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=root, check=False)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
