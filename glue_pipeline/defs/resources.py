"""The pipeline's Dagster resources: the store, Microsoft Graph, and how tenants are synced.

Every setting is an environment variable (README "Configuration"). A variable that is set becomes
`dg.EnvVar(NAME)` in its resource's config: Dagster reads it in the process that runs the step,
and the UI shows its name, never its value. A variable that is not set leaves its field at the
default. An EnvVar cannot be optional, so which fields are EnvVars is decided when the resources
are built (`glue_resources`): when the code location loads, or when a command runs a job.

Each resource checks its settings once per run, in `setup_for_execution`, with the functions and
messages of settings.py, options.py and sources.py, given its fields as the variables they hold.
A command checks the same on the environment itself first (`check_settings`), so that a bad
setting is refused before the store is touched; outside a run, `ready_resources` sets them up.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr, create_model
from pydantic.fields import FieldInfo

from glue_pipeline.graph.client import GraphClient
from glue_pipeline.heartbeat import Heartbeat
from glue_pipeline.options import SyncOptions, config_path, load_options, parse_options, read_config_file
from glue_pipeline.settings import (
    MICROSOFT_AUTHORITY_HOST,
    MICROSOFT_GRAPH_URL,
    ConfigError,
    GraphSettings,
    cache_dir_from_env,
    data_dir_from_env,
    graph_settings_from_env,
    store_url_from_env,
    sync_processes_from_env,
)
from glue_pipeline.sources import (
    PARTNER_SOURCE,
    DirectSource,
    direct_credentials,
    disconnected_sources,
    load_direct_sources,
)
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.migrate import check_store

T = TypeVar("T")
Variables = dict[str, str]  # variable -> value, as settings.py reads the environment


def _environ(environ: Mapping[str, str] | None) -> Variables:
    return dict(os.environ if environ is None else environ)


CONFIG_FILE = {"config_file": "GLUE_CONFIG"}  # the sync options and the direct-login sources
GRAPH_VARIABLES = {
    "partner_tenant_id": "GLUE_PARTNER_TENANT_ID",
    "client_id": "GLUE_CLIENT_ID",
    "client_secret": "GLUE_CLIENT_SECRET",
    "client_secret_file": "GLUE_CLIENT_SECRET_FILE",
    "authority_host": "GLUE_AUTHORITY_HOST",
    "graph_url": "GLUE_GRAPH_URL",
    "ca_file": "GLUE_CA_FILE",
    "concurrency": "GLUE_GRAPH_CONCURRENCY",
    "tenant_concurrency": "GLUE_GRAPH_TENANT_CONCURRENCY",
    **CONFIG_FILE,
}
SYNC_VARIABLES = {
    "data_dir": "GLUE_DATA_DIR",
    "cache_dir": "GLUE_CACHE_DIR",
    "processes": "GLUE_SYNC_PROCESSES",
    **CONFIG_FILE,
}


def _ready(value: T | None, resource: str) -> T:
    if value is None:
        raise RuntimeError(f"the {resource} resource is used before it was set up")
    return value


def _variables(resource: dg.ConfigurableResource[Any], fields: Mapping[str, str]) -> Variables:
    """The resource's fields (field -> variable) that hold a value, as the variables they mirror."""
    values = {name: getattr(resource, field) for field, name in fields.items()}
    return {name: value for name, value in values.items() if value is not None}


def configured_sources(variables: Mapping[str, str] | None = None) -> list[DirectSource]:
    """The configuration file's direct-login sources, their secrets from `variables` (default:
    this process's environment)."""
    env = _environ(variables)
    return load_direct_sources(config_path(env), env)


def _sync_processes(variables: Variables) -> int:
    return sync_processes_from_env(variables)


class StoreResource(dg.ConfigurableResource["StoreResource"]):
    """The documentation store: checked, and brought to the schema's head revision, once per run.
    While a run uses it, the run's heartbeat beats in the store (heartbeat.py)."""

    url: str = Field(description="GLUE_STORE_URL: the store's SQLAlchemy URL (SQLite or PostgreSQL).")

    _engine: Engine | None = PrivateAttr(default=None)
    _heartbeat: Heartbeat | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = check_store(self.url)
        run = context.dagster_run
        if run is not None:
            self._heartbeat = Heartbeat(self._engine, run.run_id, run.job_name).start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        return _ready(self._engine, "store")


class GraphResource(dg.ConfigurableResource["GraphResource"]):
    """Microsoft Graph: the partner app's settings and the run's Graph client, built once per run
    with the credentials of the direct-login sources that are connected. Its config comes from
    the environment only: secrets never pass through run config."""

    partner_tenant_id: str | None = Field(default=None, description="GLUE_PARTNER_TENANT_ID (required).")
    client_id: str | None = Field(default=None, description="GLUE_CLIENT_ID (required).")
    client_secret: str | None = Field(default=None, description="GLUE_CLIENT_SECRET (or the next).")
    client_secret_file: str | None = Field(default=None, description="GLUE_CLIENT_SECRET_FILE.")
    authority_host: str = Field(default=MICROSOFT_AUTHORITY_HOST, description="GLUE_AUTHORITY_HOST.")
    graph_url: str = Field(default=MICROSOFT_GRAPH_URL, description="GLUE_GRAPH_URL.")
    ca_file: str | None = Field(default=None, description="GLUE_CA_FILE; unset: the system CAs.")
    concurrency: str = Field(default=str(GraphSettings.concurrency), description="GLUE_GRAPH_CONCURRENCY.")
    tenant_concurrency: str = Field(default=str(GraphSettings.tenant_concurrency),
                                    description="GLUE_GRAPH_TENANT_CONCURRENCY.")
    config_file: str | None = Field(default=None, description="GLUE_CONFIG, whose `sources` section lists the "
                                                              "direct-login sources; unset: glue.yaml if present.")
    source_secrets: dict[str, str] = Field(default_factory=dict, description="The variables holding the "
                                           "direct-login sources' secrets.")
    store: dg.ResourceDependency[StoreResource]

    _settings: GraphSettings | None = PrivateAttr(default=None)
    _client: GraphClient | None = PrivateAttr(default=None)
    _sources: list[DirectSource] | None = PrivateAttr(default=None)
    _partner: bool | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        variables = {**_variables(self, GRAPH_VARIABLES), **self.source_secrets}
        self._settings = graph_settings_from_env(variables)
        off = disconnected_sources(self.store.engine)
        self._sources = [s for s in configured_sources(variables) if s.name not in off]
        self._partner = PARTNER_SOURCE not in off
        self._client = GraphClient(self._settings, direct_credentials=direct_credentials(self._sources))

    @property
    def settings(self) -> GraphSettings:
        return _ready(self._settings, "graph")

    @property
    def client(self) -> GraphClient:
        return _ready(self._client, "graph")

    @property
    def sources(self) -> list[DirectSource]:
        """The direct-login sources that are connected."""
        return _ready(self._sources, "graph")

    @property
    def direct_logins(self) -> list[tuple[str, str]]:
        """(source name, tenant id) of each connected direct-login source."""
        return [(s.name, s.tenant_id) for s in self.sources]

    @property
    def partner_connected(self) -> bool:
        return _ready(self._partner, "graph")


def dagster_config(model: type[BaseModel]) -> type[dg.Config]:
    """`model` as a Dagster config class: the same fields, defaults and descriptions (nested models
    converted too), so that the UI shows them and run config is checked against them. The model
    itself stays free of Dagster; its validators run when the resource is set up."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = dagster_config(annotation)
            info = FieldInfo.merge_field_infos(info, default_factory=annotation)
        fields[name] = (annotation, info)
    return create_model(model.__name__, __base__=dg.Config, __doc__=model.__doc__, **fields)


SyncOptionsConfig = dagster_config(SyncOptions)


@dataclass(frozen=True)
class SyncSettings:
    options: SyncOptions
    processes: int  # worker processes for a large sync
    tables: Path  # the Parquet tables for analysts
    cache: Path  # users snapshots, mailbox reports, OpenID configurations


class SyncResource(dg.ConfigurableResource["SyncResource"]):
    """How tenants are synced: the sync options, the folders for analysts' tables and the Graph
    cache, worker processes, and progress on the terminal."""

    options: SyncOptionsConfig | None = Field(  # type: ignore[valid-type]  # a class built at import
        default=None, description="Sync options (README 'Sync options'); "
        "unset: the configuration file's `sync` section, else the defaults.")
    config_file: str | None = Field(default=None, description="GLUE_CONFIG; unset: glue.yaml if present.")
    data_dir: str | None = Field(default=None, description="GLUE_DATA_DIR: the Parquet tables for analysts.")
    cache_dir: str | None = Field(default=None, description="GLUE_CACHE_DIR: users snapshots, mailbox reports "
                                                            "and OpenID configurations.")
    processes: str | None = Field(default=None, description="GLUE_SYNC_PROCESSES: worker processes for a large "
                                                            "sync; unset: the number of cores.")
    concurrency: int | None = Field(default=None, description="Graph requests in flight for this sync, "
                                                              "instead of GLUE_GRAPH_CONCURRENCY.")
    show_progress: bool = Field(default=False, description="Print each tenant on stderr as it finishes.")

    _settings: SyncSettings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        variables = _variables(self, SYNC_VARIABLES)
        options = (load_options(config_path(variables)) if self.options is None
                   else parse_options(self.options.model_dump(), "run config resources.sync.config.options"))
        self._settings = SyncSettings(options=options,
                                      processes=_sync_processes(variables), tables=data_dir_from_env(variables),
                                      cache=cache_dir_from_env(variables))

    @property
    def settings(self) -> SyncSettings:
        return _ready(self._settings, "sync")


def _is_set(environ: Variables, name: str) -> bool:
    return bool(environ.get(name, "").strip())  # a blank variable counts as unset, as in settings.py


def _set_variables(environ: Variables, fields: Mapping[str, str]) -> dict[str, Any]:
    """field -> EnvVar for each variable (field -> name) that is set."""
    return {field: dg.EnvVar(name) for field, name in fields.items() if _is_set(environ, name)}


def _bound(environ: Variables, defaults: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """`defaults`, with an EnvVar instead for each field (field -> variable) whose variable is set."""
    return {**defaults, **_set_variables(environ, fields)}


def _source_secrets(environ: Variables) -> dict[str, Any]:
    """An EnvVar for each secret variable the configuration file's direct-login sources name and
    the environment sets. The run's set-up validates the file; one it cannot read names none."""
    try:
        sources = read_config_file(config_path(environ)).get("sources")
    except ConfigError:
        return {}
    named = [s.get("client_secret_env") for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    return _set_variables(environ, {name: name for name in named if isinstance(name, str)})


def glue_resources(environ: Mapping[str, str] | None = None, show_progress: bool = False) -> dict[str, Any]:
    """The resources every job uses, from `environ` (default: this process's environment) as it
    is now. The store and sync resources are bound with `configure_at_launch`, so that run config
    may set one of their fields and keep the others, and so that the graph resource uses the
    run's own store rather than a copy set up beside it."""
    env = _environ(environ)
    store = StoreResource.configure_at_launch(**_bound(env, {"url": store_url_from_env(env)},
                                                       {"url": "GLUE_STORE_URL"}))
    graph = GraphResource(store=store, source_secrets=_source_secrets(env), **_set_variables(env, GRAPH_VARIABLES))
    folders = {"data_dir": str(data_dir_from_env(env)), "cache_dir": str(cache_dir_from_env(env))}
    sync = SyncResource.configure_at_launch(show_progress=show_progress, **_bound(env, folders, SYNC_VARIABLES))
    return {"store": store, "graph": graph, "sync": sync}


def check_settings(environ: Mapping[str, str] | None = None) -> None:
    """What the resources' set-up checks besides the store, checked on the environment itself,
    so that a command refuses a bad setting before it touches the store."""
    env = _environ(environ)
    graph_settings_from_env(env)
    configured_sources(env)
    load_options(config_path(env))
    _sync_processes(env)


@contextmanager
def ready_resources(resources: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """The resources set up as a run sets them up (and torn down afterwards), for a command that
    works outside a run; a setting's error is raised as itself, not wrapped by Dagster."""
    try:
        with dg.build_resources(glue_resources() if resources is None else resources) as ready:
            yield ready
    except dg.DagsterResourceFunctionError as exc:
        cause = exc.__cause__
        if cause is None:
            raise
        raise cause from cause.__cause__
