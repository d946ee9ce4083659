"""A world served to the pipeline as the command line meets it: the sandbox over HTTPS, the
pipeline's environment pointing at it (a store, tables, cache and DAGSTER_HOME under the test's
folder), the store seeded with the world's starting data, and the Dagster instance after one
discovery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import Engine

from glue_pipeline.demo import sandbox_env
from glue_pipeline.runner import get_instance, run_discovery
from glue_pipeline.sandbox.server import Sandbox, SandboxConfig
from glue_pipeline.sandbox.world import World
from glue_pipeline.store.engine import make_engine
from glue_pipeline.store.seed import seed_store


def clock_env(world: World) -> dict[str, str]:
    """The sync's clock at the world's reference date: the runs of one test show the same last
    sign-ins, however far apart they run."""
    return {"GLUE_CLOCK": world.reference_date.isoformat()}


def pipeline_env(tmp_path: Path, world: World, store_url: str | None = None) -> dict[str, str]:
    """The pipeline's folders under tmp_path, its store (default: SQLite there), and its clock at
    the world's reference date."""
    return {"GLUE_STORE_URL": store_url or f"sqlite:///{tmp_path / 'store.db'}",
            "GLUE_DATA_DIR": str(tmp_path / "tables"), "GLUE_VAR_DIR": str(tmp_path / "var"),
            "GLUE_CACHE_DIR": str(tmp_path / "cache"), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            **clock_env(world)}


@dataclass
class Served:
    world: World
    sandbox: Sandbox
    engine: Engine
    instance: dg.DagsterInstance


@contextmanager
def served_world(world: World, tmp_path: Path, sandbox_state: Path, monkeypatch: pytest.MonkeyPatch,
                 store_url: str | None = None, **extra_env: str) -> Iterator[Served]:
    """`world` served and discovered (its store seeded), with `extra_env` set too."""
    env = {**pipeline_env(tmp_path, world, store_url), **extra_env}
    engine = make_engine(env["GLUE_STORE_URL"])
    seed_store(engine, world.store)
    with Sandbox(SandboxConfig(world=world), state_dir=sandbox_state) as sandbox:
        for key, value in {**sandbox_env(sandbox, world), **env}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
        instance = get_instance()
        try:
            assert run_discovery(instance).success
            yield Served(world, sandbox, engine, instance)
        finally:
            instance.dispose()
            engine.dispose()
