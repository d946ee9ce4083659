"""The `glue-pipeline` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TextIO

import click

from glue_pipeline.render import echo, markdown_table, terminal_text
from glue_pipeline.sandbox.world import WorldError
from glue_pipeline.settings import ConfigError, default_var_dir, store_url_from_env

if TYPE_CHECKING:
    import pandas as pd

    from glue_pipeline.report import SyncSummary
    from glue_pipeline.runner import RunOutcome
    from glue_pipeline.sandbox.world import World
    from glue_pipeline.store.engine import Engine


def _fail(message: str) -> NoReturn:
    raise click.ClickException(terminal_text(message, multiline=True))


class _Failure(click.ClickException):
    """A known failure: one message naming the setting and the fix; `detail` (the raw cause)
    is shown only under --verbose."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(terminal_text(message, multiline=True))
        self.detail = detail

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        if self.detail:
            echo(f"cause (--verbose):\n{self.detail.rstrip()}", err=True)


def _verbose() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("verbose"))


def _cause(exc: BaseException | None) -> str | None:
    """The raw cause with its traceback, under --verbose only."""
    return "".join(traceback.format_exception(exc)) if exc is not None and _verbose() else None


class _Cli(click.Group):
    """The one place where known failures (a wrong setting, a store that cannot be reached,
    written or found) become one message naming the setting and the fix, without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise _Failure(str(exc), _cause(exc.__cause__)) from None
        except Exception as exc:
            from glue_pipeline.store.engine import store_error

            error = store_error(exc, store_url_from_env())
            if error is None:
                raise
            raise _Failure(str(error), _cause(exc)) from None


class _OneLine(logging.Formatter):
    """A log record as one line, without its traceback (that is for --verbose)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record comes (click's test runner swaps it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _log_to_terminal(verbose: bool) -> None:
    """The package's warnings and errors reach the terminal for the command's duration, with
    their tracebacks only under --verbose."""
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose else _OneLine())
    package = logging.getLogger("glue_pipeline")
    package.addHandler(handler)
    click.get_current_context().call_on_close(lambda: package.removeHandler(handler))


@click.group(cls=_Cli, help="Microsoft 365 to IT-documentation sync on Dagster.")
@click.option("--verbose", is_flag=True,
              help="On an error, also show its raw cause (the library's message and traceback).")
def main(verbose: bool) -> None:
    _log_to_terminal(verbose)


# --- sandbox -------------------------------------------------------------------------------
@main.group(help="The local Microsoft 365 sandbox (identity platform + Graph over HTTPS).")
def sandbox() -> None:
    pass


@sandbox.command("world", help="Generate a world file from a seed.")
@click.option("--seed", default=7, show_default=True)
@click.option("--tenants", default=24, show_default=True)
@click.option("--users", default=1500, show_default=True)
@click.option("--revoked", default=1, show_default=True, help="Tenants whose consent is revoked.")
@click.option("--direct", default=0, show_default=True, help="Tenants with a direct-login app.")
@click.option("--renamed", default=0, show_default=True,
              help="Organizations spelled differently from their tenant (suggestions).")
@click.option("--spread", type=click.Choice(["lognormal", "longtail"]), default="lognormal", show_default=True)
@click.option("--devices-per-user", default=1.0, show_default=True, help="Intune managed devices per user.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True)
def sandbox_world(seed: int, tenants: int, users: int, revoked: int, direct: int, renamed: int, spread: str,
                  devices_per_user: float, out: str) -> None:
    from glue_pipeline.sandbox.generate import generate_world
    from glue_pipeline.sandbox.world import save_world

    try:
        world = generate_world(seed=seed, tenants=tenants, users=users, revoked=revoked, direct=direct,
                               renamed=renamed, spread=spread,  # type: ignore[arg-type]  # click.Choice limits it to Spread
                               devices_per_user=devices_per_user)
    except ValueError as exc:
        _fail(str(exc))
    save_world(world, out)
    echo(f"wrote {out}: {len(world.tenants)} tenants, {world.user_count} users, "
         f"{len(world.store.organizations)} organizations, {len(world.store.contacts)} contacts")


def _load_or_generate(world_path: str | None, seed: int, tenants: int, users: int) -> World:
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
    echo(f"sandbox serving {len(world.tenants)} tenants, {world.user_count} users at {server.base_url}")
    echo(f"CA file: {server.ca_file}")
    echo(f"point the pipeline at it: source {env_file}   (Ctrl-C stops the sandbox)")
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


@store.command("init", help="Create the tables or bring them to this release's schema; load a world's "
               "starting organizations and contacts.")
@click.option("--world", "world_path", type=click.Path(dir_okay=False))
def store_init(world_path: str | None) -> None:
    from glue_pipeline.sandbox.world import StoreSeed, load_world
    from glue_pipeline.store.seed import seed_store

    try:
        seed = load_world(world_path).store if world_path else StoreSeed()
    except WorldError as exc:
        _fail(str(exc))
    loaded = seed_store(_engine(writes=True), seed)
    echo(f"store ready at {store_url_from_env()}"
         + ("" if loaded or not world_path else " (it already held data: nothing loaded)"))


@store.command("upgrade", help="Bring the store's tables to this release's schema revision (every run and "
               "command does it first too).")
def store_upgrade() -> None:
    from glue_pipeline.store.engine import make_engine, store_setting
    from glue_pipeline.store.migrate import upgrade_store

    url = store_url_from_env()
    before = upgrade_store(make_engine(url))
    if before.pending:
        echo(f"store upgraded from {before.described} to {before.head} ({store_setting(url)})")
    else:
        echo(f"store already at the head revision {before.head}: nothing to do ({store_setting(url)})")


@store.command("status", help="The store's schema revision, this release's head, and whether an upgrade "
               "is pending.")
def store_status() -> None:
    from glue_pipeline.store.engine import make_engine, store_setting
    from glue_pipeline.store.migrate import store_revision

    url = store_url_from_env()
    standing = store_revision(make_engine(url))
    echo(f"store: {store_setting(url)}\nrevision: {standing.described}\nhead: {standing.head}\n"
         f"upgrade pending: {'yes' if standing.pending else 'no'}")
    if standing.pending:
        echo("next: `glue-pipeline store upgrade` (any run or command also upgrades it first)")


# --- sync ----------------------------------------------------------------------------------
@main.command(help="Discover tenants and sync them all in one run, or sync the given tenants.")
@click.option("--tenant", "tenant_refs", multiple=True,
              help="Sync only this tenant: id, partition key or name (repeatable).")
def sync(tenant_refs: tuple[str, ...]) -> None:
    from glue_pipeline.defs.resources import check_settings
    from glue_pipeline.report import format_summary, next_steps, summarize
    from glue_pipeline.runner import get_instance, run_discovery, run_overview, run_sync
    from glue_pipeline.store.engine import store_identity

    check_settings()  # as the runs will check them, before anything is written
    engine = _engine(writes=True)
    tenant_ids = _tenant_ids(engine, tenant_refs)
    store_url = store_url_from_env()
    identity = store_identity(store_url)
    instance = get_instance()
    if not tenant_ids:
        discovery = run_discovery(instance)
        if not discovery.success:
            _confirm_store(store_url, identity, [])
            raise _Failure(f"discovery failed (run {discovery.run_id}): {discovery.error}",
                           discovery.detail if _verbose() else None)
    try:
        runs = run_sync(instance, list(tenant_ids) or None, show_progress=True)
    except ValueError as exc:
        _fail(str(exc))
    _confirm_store(store_url, identity, runs)
    run_overview(instance)
    summary = summarize(engine, [r.run_id for r in runs])
    echo(format_summary(summary))
    for step in next_steps(engine):
        echo(f"next: {step}")
    _echo_run_errors(runs, summary)
    if not all(r.success for r in runs):
        sys.exit(1)


def _tenant_ids(engine: Engine, refs: tuple[str, ...]) -> list[str]:
    """The tenant each reference names (id, partition key or name); the command fails on one
    that names none or several."""
    from glue_pipeline.store.tenant_refs import TenantRefError, find_tenant

    try:
        with engine.connect() as conn:
            return list(dict.fromkeys(find_tenant(conn, ref)["tenant_id"] for ref in refs))
    except TenantRefError as exc:
        _fail(str(exc))


@contextmanager
def _resources() -> Iterator[Any]:
    """The runs' resources, set up here as a run sets them up; every other setting is checked
    first, so that a bad one is refused before the store is touched."""
    from glue_pipeline.defs.resources import check_settings, ready_resources

    check_settings()
    with ready_resources() as ready:
        yield ready


def _echo_run_errors(runs: list[RunOutcome], summary: SyncSummary) -> None:
    """A run that failed before any tenant finished says why (tenant errors are in the summary)."""
    if summary.tenants == 0:
        for run in runs:
            if run.error:
                echo(f"run {run.run_id} failed: {run.error}", err=True)
                if run.detail and _verbose():
                    echo(f"cause (--verbose):\n{run.detail.rstrip()}", err=True)


def _confirm_store(url: str, identity: object, runs: list[RunOutcome]) -> None:
    """A store deleted, dropped or unreachable while the runs went on ends the sync with that
    cause and the tenants it did not get (their summary, kept in the store, is out of reach)."""
    from glue_pipeline.store.engine import confirm_same_store

    try:
        confirm_same_store(url, identity)
    except ConfigError as exc:
        missing = [t for run in runs for t in run.tenant_ids if t not in run.materialized]
        total = sum(len(run.tenant_ids) for run in runs)
        lines = [f"the store went away while the sync ran: {exc}"]
        if runs:
            lines.append(f"{len(missing)} of {total} tenants were not written: they failed because the store "
                         "went away (their partitions are marked failed)"
                         + "".join(f"\n  - {tenant_id}" for tenant_id in missing))
        lines.append("once the store is back, run `glue-pipeline sync` again: it writes what is missing")
        raise _Failure("\n".join(lines), _cause(exc.__cause__)) from None


# --- match decisions -------------------------------------------------------------------------
@main.group(help="Organization matches and match decisions (honoured by every later sync).")
def match() -> None:
    pass


def _engine(writes: bool = False) -> Engine:
    """The store, checked once (it answers, has its tables, and takes writes when the command
    writes): a ConfigError naming GLUE_STORE_URL, what failed and the fix otherwise."""
    from glue_pipeline.store.migrate import check_store

    return check_store(store_url_from_env(), writes=writes)


def _table(frame: pd.DataFrame) -> str:
    return markdown_table(frame, aligned=True)


def _decide(action: str, **kwargs: object) -> None:
    from glue_pipeline.decisions import DecisionError, apply_decision, decision_text

    try:
        result = apply_decision(_engine(writes=True), action, **kwargs)  # type: ignore[arg-type]  # each command passes its own fields
    except DecisionError as exc:
        _fail(terminal_text(exc))  # one line, naming tenants and organizations
    echo(decision_text(action, result, then=f"run `glue-pipeline sync --tenant {result['tenant_id']}`"))


@match.command("list", help="Every tenant's match, best suggestion and conflicts.")
@click.option("--open", "only_open", is_flag=True, help="Only tenants waiting for a decision.")
def match_list(only_open: bool) -> None:
    from glue_pipeline.matching.organizations import OPEN_STATUSES
    from glue_pipeline.overview import organization_overview

    frame = organization_overview(_engine())
    if only_open:
        frame = frame[frame["status"].isin(OPEN_STATUSES)]
    columns = ["tenant_name", "tenant_id", "status", "method", "organization_id", "organization_name",
               "best_suggestion", "suggestion_score", "conflict"]
    echo(_table(frame[columns]) if len(frame) else "no tenants yet")


@match.command("held", help="Users held for a decision (ambiguous, likely duplicates).")
def match_held() -> None:
    from glue_pipeline.overview import held_overview

    frame = held_overview(_engine())
    echo(_table(frame) if len(frame) else "no user is held")


@match.command("held-devices", help="Intune devices held for a decision (ambiguous, likely duplicates).")
def match_held_devices() -> None:
    from glue_pipeline.overview import held_devices_overview

    frame = held_devices_overview(_engine())
    echo(_table(frame) if len(frame) else "no device is held")


@match.command("accept", help="Match TENANT to its suggestion (best first).")
@click.argument("tenant")
@click.option("--rank", default=1, show_default=True)
@click.option("--by", default=None, help="Who decides (default: the OS user).")
def match_accept(tenant: str, rank: int, by: str | None) -> None:
    _decide("accept", tenant=tenant, rank=rank, by=by)


@match.command("set", help="Match (or re-match) TENANT to ORGANIZATION (id or name).")
@click.argument("tenant")
@click.argument("organization")
@click.option("--by", default=None)
def match_set(tenant: str, organization: str, by: str | None) -> None:
    _decide("match", tenant=tenant, organization=organization, by=by)


@match.command("ignore", help="Ignore TENANT: its users are never written.")
@click.argument("tenant")
@click.option("--by", default=None)
def match_ignore(tenant: str, by: str | None) -> None:
    _decide("ignore", tenant=tenant, by=by)


@match.command("unignore", help="Give TENANT back to the matching rules.")
@click.argument("tenant")
@click.option("--by", default=None)
def match_unignore(tenant: str, by: str | None) -> None:
    _decide("unignore", tenant=tenant, by=by)


@match.command("create-org", help="Create an organization from TENANT and match it.")
@click.argument("tenant")
@click.option("--force", is_flag=True, help="Create it even if a same-named organization or a strong "
                                            "suggestion exists.")
@click.option("--by", default=None)
def match_create_org(tenant: str, force: bool, by: str | None) -> None:
    _decide("create_organization", tenant=tenant, force=force, by=by)


@match.command("link", help="Link held user USER_ID of TENANT to contact CONTACT_ID.")
@click.argument("tenant")
@click.argument("user_id")
@click.argument("contact_id", type=int)
@click.option("--by", default=None)
def match_link(tenant: str, user_id: str, contact_id: int, by: str | None) -> None:
    _decide("link_user", tenant=tenant, user_id=user_id, contact_id=contact_id, by=by)


@match.command("approve", help="Create a contact for held user USER_ID of TENANT anyway.")
@click.argument("tenant")
@click.argument("user_id")
@click.option("--by", default=None)
def match_approve(tenant: str, user_id: str, by: str | None) -> None:
    _decide("approve_create", tenant=tenant, user_id=user_id, by=by)


@match.command("link-device", help="Link held device DEVICE_ID of TENANT to configuration CONFIGURATION_ID.")
@click.argument("tenant")
@click.argument("device_id")
@click.argument("configuration_id", type=int)
@click.option("--by", default=None)
def match_link_device(tenant: str, device_id: str, configuration_id: int, by: str | None) -> None:
    _decide("link_device", tenant=tenant, device_id=device_id, configuration_id=configuration_id, by=by)


@match.command("approve-device", help="Create a configuration for held device DEVICE_ID of TENANT anyway.")
@click.argument("tenant")
@click.argument("device_id")
@click.option("--by", default=None)
def match_approve_device(tenant: str, device_id: str, by: str | None) -> None:
    _decide("approve_device", tenant=tenant, device_id=device_id, by=by)


# --- data sources and diagnostics ------------------------------------------------------------
@main.group(help="Data sources: the partner app and direct-login apps (glue.yaml 'sources').")
def source() -> None:
    pass


@source.command("list", help="Every data source and whether it is connected.")
def source_list() -> None:
    from glue_pipeline.defs.resources import configured_sources
    from glue_pipeline.sources import PARTNER_SOURCE, disconnected_sources

    sources = configured_sources()
    off = disconnected_sources(_engine())
    echo(f"{PARTNER_SOURCE}: partner app ({'disconnected' if PARTNER_SOURCE in off else 'connected'})")
    for item in sources:
        state = "disconnected" if item.name in off else "connected"
        echo(f"{item.name}: direct login to tenant {item.tenant_id} ({state})")


@source.command("disconnect", help="Stop syncing a data source; its data is kept.")
@click.argument("name")
def source_disconnect(name: str) -> None:
    from glue_pipeline.sources import set_connected

    echo(set_connected(_engine(writes=True), _known_source(name), connected=False))


@source.command("connect", help="Sync a disconnected data source again.")
@click.argument("name")
def source_connect(name: str) -> None:
    from glue_pipeline.sources import set_connected

    echo(set_connected(_engine(writes=True), _known_source(name), connected=True))


def _known_source(name: str) -> str:
    from glue_pipeline.defs.resources import configured_sources
    from glue_pipeline.sources import PARTNER_SOURCE

    names = [PARTNER_SOURCE] + [s.name for s in configured_sources()]
    if name not in names:
        _fail(f"no data source is named '{name}': the sources are {', '.join(names)}")
    return name


@main.command(help="Check credentials, permissions, reports and endpoints for every tenant.")
def doctor() -> None:
    from glue_pipeline.defs.doctor import doctor_report

    with _resources() as ready:
        report = doctor_report(ready.graph, ready.sync)
    problems = report[report["status"] != "OK"]
    echo(_table(report.drop(columns=["tenant_id"])))
    echo(f"\n{len(problems)} problem(s) in {len(report)} checks"
         + ("" if problems.empty else ": fix them before the next sync"))
    if len(problems):
        sys.exit(1)


@main.command(help="Every tenant's state (Paused, Syncing…, Error, Unmatched, Held, OK, New), organization, "
              "last successful sync (UTC), users and the contacts its last sync created and updated; then "
              "what the last sync run did. Exits 0 even when tenants are in Error (read --json to monitor).")
@click.option("--failed", is_flag=True, help="Only tenants in Error.")
@click.option("--tenant", "tenant_refs", multiple=True, help="A tenant id or display name (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of one object a tenant, without the run totals.")
def status(failed: bool, tenant_refs: tuple[str, ...], as_json: bool) -> None:
    import json

    from glue_pipeline.report import format_summary, last_run_id, summarize
    from glue_pipeline.store.status import record, status_frame, tenant_statuses
    from glue_pipeline.store.tenant_refs import TenantRefError, find_tenant

    engine = _engine()
    tenant_ids = None
    if tenant_refs:
        try:
            with engine.connect() as conn:
                tenant_ids = [find_tenant(conn, ref)["tenant_id"] for ref in tenant_refs]
        except TenantRefError as exc:
            _fail(str(exc))
    rows = [r for r in tenant_statuses(engine, tenant_ids, _run_tenants) if not failed or r.status == "error"]
    if as_json:
        click.echo(json.dumps([record(r) for r in rows], indent=2))  # ASCII only: control characters escaped
        return
    run_id = last_run_id(engine)
    if run_id is None and not rows and not tenant_refs:
        _fail("no sync has run yet against this store: run `glue-pipeline sync` or `make demo`")
    if rows:
        echo(_status_table(status_frame(rows)))
    else:
        echo("no tenant is in Error" if failed else "no tenant is known yet")
    echo("")
    if run_id is None:
        echo("no sync has run yet: run `glue-pipeline sync`")
        return
    echo(f"last sync run {run_id}")
    echo(format_summary(summarize(engine, [run_id])))


def _status_table(frame: pd.DataFrame) -> str:
    """An aligned markdown table whose last column (the detail, an error can be long) is not
    padded: each line is as long as its own detail."""
    from glue_pipeline.render import markdown_cell

    last = frame.columns[-1]
    lines = _table(frame.drop(columns=[last])).split("\n")
    cells = [markdown_cell(last), "---", *(markdown_cell(value) for value in frame[last])]
    return "\n".join(f"{line} {cell} |" if i != 1 else f"{line}{cell}|" for i, (line, cell) in
                     enumerate(zip(lines, cells, strict=True)))


def _run_tenants(run_ids: Sequence[str]) -> dict[str, Collection[str] | None]:
    """The tenants each of these sync runs covers, from the Dagster instance. The instance only
    narrows which tenants a run covers: out of reach, every run covers every tenant."""
    from glue_pipeline.defs.overview import run_tenants
    from glue_pipeline.runner import get_instance

    try:
        instance = get_instance()
    except Exception:
        return {}
    try:
        return run_tenants(instance, _engine(), run_ids)
    finally:
        instance.dispose()


# --- tenants ---------------------------------------------------------------------------------
@main.group(help="Pause a tenant (it is not synced until resumed) or resume it.")
def tenant() -> None:
    pass


def _pause_or_resume(ref: str, paused: bool, by: str | None, reason: str | None = None) -> None:
    from glue_pipeline.decisions import default_actor
    from glue_pipeline.store.tenant_control import set_paused
    from glue_pipeline.store.tenant_refs import TenantRefError

    engine = _engine(writes=True)
    try:
        change = set_paused(engine, ref, paused, by or default_actor(), reason)
    except TenantRefError as exc:
        _fail(str(exc))
    echo(change.message())
    from glue_pipeline.defs.tenant_control import record_pause
    from glue_pipeline.runner import get_instance

    instance = get_instance()  # the partition's page shows it too
    try:
        record_pause(instance, engine, change)
    finally:
        instance.dispose()


@tenant.command("pause", help="Pause TENANT (id, or a display name that names one tenant): no sync touches it "
                "until `glue-pipeline tenant resume`; its contacts and results stay as they are.")
@click.argument("tenant_ref", metavar="TENANT")
@click.option("--reason", default=None, help="Why, shown by `glue-pipeline status`.")
@click.option("--by", default=None, help="Who pauses it (default: the OS user).")
def tenant_pause(tenant_ref: str, reason: str | None, by: str | None) -> None:
    _pause_or_resume(tenant_ref, True, by, reason)


@tenant.command("resume", help="Resume a paused TENANT: the next sync includes it again.")
@click.argument("tenant_ref", metavar="TENANT")
@click.option("--by", default=None, help="Who resumes it (default: the OS user).")
def tenant_resume(tenant_ref: str, by: str | None) -> None:
    _pause_or_resume(tenant_ref, False, by)


@main.command(help="The sync log: what the sync did to each tenant, newest first. Filters combine. "
              "Times are UTC.")
@click.option("--tenant", "tenant_refs", multiple=True, metavar="TENANT",
              help="A tenant id or display name (repeatable).")
@click.option("--run", "run_ref", metavar="RUN_ID", help="A sync run id (or its start), or `last` for the newest run.")
@click.option("--level", metavar="LEVEL", help="info, warning or error: entries of that level or worse.")
@click.option("--action", "action_words", multiple=True, metavar="ACTION",
              help="An action, e.g. contact_created, contact_held, tenant_failed (repeatable; README lists them).")
@click.option("--since", metavar="WHEN", help="Entries from this long ago (90s, 30m, 2h, 7d) or from this "
              "ISO-8601 time on (UTC unless it names a zone).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="At most this many entries, the newest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
@click.option("--follow", is_flag=True, help="Follow a running run (--run, or the newest running one): print "
              "its entries, then new ones as they come, oldest first, until the run ends.")
def logs(tenant_refs: tuple[str, ...], run_ref: str | None, level: str | None, action_words: tuple[str, ...],
         since: str | None, limit: int, as_json: bool, follow: bool) -> None:
    import dataclasses
    import json
    import time
    from datetime import UTC, datetime

    from glue_pipeline.store import logs as log_store

    def show(entry: log_store.LoggedEntry) -> None:
        if as_json:
            fields = {**dataclasses.asdict(entry), "at": entry.at.isoformat()}
            click.echo(json.dumps(fields))  # ASCII only: escapes every control character
            return
        who = "-" if entry.tenant_id is None else terminal_text(
            f"{entry.tenant_name} ({entry.tenant_id[:8]})" if entry.tenant_name else entry.tenant_id)
        ids = [f"contact {entry.contact_id}"] * (entry.contact_id is not None) \
            + [f"user {terminal_text(entry.user_id)}"] * (entry.user_id is not None) \
            + [f"configuration {entry.configuration_id}"] * (entry.configuration_id is not None) \
            + [f"device {terminal_text(entry.device_id)}"] * (entry.device_id is not None)
        echo(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.level:<7}  {who}  {terminal_text(entry.action)}  "
             f"{terminal_text(entry.message)}" + (f"  [{', '.join(ids)}]" if ids else ""))

    engine = _engine()
    try:
        filters = log_store.LogFilter(
            tenant_ids=log_store.resolve_tenants(engine, tenant_refs),
            run_id=log_store.resolve_run(engine, run_ref) if run_ref else None,
            level=log_store.parse_level(level) if level else None,
            actions=log_store.parse_actions(action_words),
            since=log_store.parse_since(since, datetime.now(UTC)) if since is not None else None)
        if follow and filters.run_id is None:
            newest = log_store.newest_running_run(engine)
            if newest is None:
                raise log_store.LogQueryError(
                    "no sync run is running, so there is nothing to follow: `glue-pipeline logs` shows the "
                    "log of past runs (`--run last` the newest one); `glue-pipeline sync` starts a run")
            filters = log_store.LogFilter(filters.tenant_ids, newest, filters.level, filters.actions,
                                          filters.since)
    except log_store.LogQueryError as exc:
        _fail(str(exc))
    page = log_store.read_log(engine, filters, limit)
    if page.total > len(page.entries):
        echo(f"showing {len(page.entries):,} of {page.total:,} entries: narrow with --since/--tenant/--run or "
             "raise --limit", err=True)
    elif not page.entries and not follow:
        echo("no log entry matches", err=True)
    if not follow:
        for entry in page.entries:
            show(entry)
        return
    assert filters.run_id is not None
    try:
        for entry in reversed(page.entries):
            show(entry)
        follower = log_store.LogFollower(engine, filters, page.entries)
        followed = follower.running()
        if followed:
            echo(f"following run {filters.run_id} until it ends (Ctrl-C stops)", err=True)
        while True:
            running = follower.running()  # before the poll: an ended run's last poll sees all it wrote
            for entry in follower.poll(last=not running):
                show(entry)
            if not running:
                status = log_store.run_status(engine, filters.run_id) or "gone from the store"
                echo(f"run {filters.run_id} ended: {status}" if followed
                     else f"run {filters.run_id} is not running ({status}): nothing more to follow", err=True)
                return
            time.sleep(log_store.FOLLOW_INTERVAL_S)
    except KeyboardInterrupt:
        return


@main.command(help="Run the demo: a full sync against the sandbox, then a summary.")
@click.option("--seed", default=7, show_default=True)
@click.option("--tenants", default=24, show_default=True)
@click.option("--users", default=1500, show_default=True)
def demo(seed: int, tenants: int, users: int) -> None:
    from glue_pipeline.demo import run_demo

    _engine(writes=True).dispose()
    try:
        sys.exit(run_demo(seed=seed, tenants=tenants, users=users))
    except WorldError as exc:
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
        echo(f"sandbox at {server.base_url}; Dagster UI at http://127.0.0.1:{port} (Ctrl-C stops both)")
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run([sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"),
                            "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=root, check=False)


if __name__ == "__main__":
    main()
