"""Settings from environment variables: where Microsoft (or the sandbox) is, the partner
app's credentials, the store and the data folder.

Secrets are held in `Secret`, whose repr and str never show the value, so a settings object
can be logged or put in an exception safely.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from pydantic import ValidationError

MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"
MICROSOFT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting that is missing or wrong; the message names the variable and the fix."""


def describe_invalid(exc: ValidationError, source: str, noun: str, fix: str) -> str:
    """One message for a validation failure: where, the bad field, why, and the fix."""
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0]["loc"]) or "(top level)"
    more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{source}: {noun} '{where}' is invalid: {errors[0]['msg']}{'; ' + fix if fix else ''}{more}"


def folder_problem(folder: Path, exc: OSError) -> str:
    """Why `folder` could not be made or written, in words: mkdir says "File exists" when a
    part of the path is a file."""
    for part in [folder, *folder.parents]:
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
        if part.exists():
            break
    return f"{exc.filename or folder}: {exc.strerror or exc}"


def decode_utf8(data: bytes, source: str, fix: str, secret: bool = False) -> str:
    """`data` as text; a ConfigError naming `source`, where the first byte that is not UTF-8 is
    (offset from 0, line and column from 1) and the fix. A secret's bytes are never shown."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        byte = "" if secret else f" (0x{data[exc.start]:02x})"
        raise ConfigError(f"{source} is not UTF-8 text: the byte at offset {exc.start}{byte}, line {line} "
                          f"column {column}, is not valid UTF-8: {fix}") from (None if secret else exc)


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_var_dir() -> Path:
    return Path(os.environ.get("GLUE_VAR_DIR", PROJECT_ROOT / "var"))


@dataclass(frozen=True)
class GraphSettings:
    partner_tenant_id: str
    client_id: str
    client_secret: Secret = field(repr=False)
    authority_host: str = MICROSOFT_AUTHORITY_HOST
    graph_url: str = MICROSOFT_GRAPH_URL
    # CA bundle to trust instead of the system CAs (the sandbox's own CA); None = system CAs.
    ca_file: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 5
    max_retry_wait_s: float = 60.0
    page_size: int = 999
    # Graph requests in flight at once: across all tenants, and within one tenant.
    concurrency: int = 16
    tenant_concurrency: int = 2

    @property
    def is_microsoft(self) -> bool:
        return self.authority_host.rstrip("/") == MICROSOFT_AUTHORITY_HOST


@dataclass(frozen=True)
class Settings:
    graph: GraphSettings
    store_url: str
    data_dir: Path
    cache_dir: Path
    # Worker processes a large sync spreads its tenants over (see workers.py).
    sync_processes: int = 1


def _env(name: str, fix: str, environ: dict[str, str]) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {fix}")
    return value


def _client_secret(environ: dict[str, str]) -> Secret:
    path = environ.get("GLUE_CLIENT_SECRET_FILE", "").strip()
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"GLUE_CLIENT_SECRET_FILE={path} cannot be read ({exc.strerror}): "
                              "point it at a readable file holding only the secret value") from None
        return Secret(decode_utf8(data, f"GLUE_CLIENT_SECRET_FILE={path}", "save it as UTF-8, holding "
                                  "only the secret value", secret=True).strip())
    return Secret(_env("GLUE_CLIENT_SECRET",
                       "set it (or GLUE_CLIENT_SECRET_FILE) to the partner app's client secret value",
                       environ))


def _positive_int(name: str, default: int, environ: dict[str, str]) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r} is not a positive whole number: set it to e.g. {default}")
    return int(raw)


def _https_url(name: str, default: str, environ: dict[str, str]) -> str:
    value = environ.get(name, "").strip() or default
    if not value.startswith("https://"):
        raise ConfigError(f"{name}={value!r} must be an https:// URL (the identity platform and Graph "
                          "are only reached over TLS)")
    return value.rstrip("/")


def graph_settings_from_env(environ: dict[str, str] | None = None) -> GraphSettings:
    environ = dict(os.environ if environ is None else environ)
    ca_file = environ.get("GLUE_CA_FILE", "").strip() or None
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"GLUE_CA_FILE={ca_file} does not exist: point it at the CA bundle to trust "
                          "(the sandbox prints its path), or unset it to use the system CAs")
    return GraphSettings(
        partner_tenant_id=_env("GLUE_PARTNER_TENANT_ID",
                               "set it to the partner (MSP) tenant id, a GUID", environ),
        client_id=_env("GLUE_CLIENT_ID", "set it to the partner app's application (client) id", environ),
        client_secret=_client_secret(environ),
        authority_host=_https_url("GLUE_AUTHORITY_HOST", MICROSOFT_AUTHORITY_HOST, environ),
        graph_url=_https_url("GLUE_GRAPH_URL", MICROSOFT_GRAPH_URL, environ),
        ca_file=ca_file,
        concurrency=_positive_int("GLUE_GRAPH_CONCURRENCY", 16, environ),
        tenant_concurrency=_positive_int("GLUE_GRAPH_TENANT_CONCURRENCY", 2, environ),
    )


def store_url_from_env(environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ if environ is None else environ)
    return environ.get("GLUE_STORE_URL", "").strip() or f"sqlite:///{default_var_dir() / 'store.db'}"


def data_dir_from_env(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ if environ is None else environ)
    return Path(environ.get("GLUE_DATA_DIR", "").strip() or default_var_dir() / "tables")


def cache_dir_from_env(environ: dict[str, str] | None = None) -> Path:
    environ = dict(os.environ if environ is None else environ)
    return Path(environ.get("GLUE_CACHE_DIR", "").strip() or default_var_dir() / "cache")


def heartbeat_seconds_from_env(environ: dict[str, str] | None = None) -> int:
    """GLUE_HEARTBEAT_SECONDS: how often a run's process records that it is alive (heartbeat.py)."""
    return _positive_int("GLUE_HEARTBEAT_SECONDS", 30, dict(os.environ if environ is None else environ))


def sync_processes_from_env(environ: dict[str, str] | None = None) -> int:
    """GLUE_SYNC_PROCESSES: the worker processes a large sync spreads its tenants over."""
    return _positive_int("GLUE_SYNC_PROCESSES", os.cpu_count() or 1, dict(os.environ if environ is None else environ))


def clock_from_env(environ: dict[str, str] | None = None) -> Callable[[], datetime]:
    """GLUE_CLOCK: the sync's clock, the time Microsoft's data is judged at (sync.SyncContext.clock),
    pinned to one moment for tests and reproducible runs; unset: the current time."""
    raw = dict(os.environ if environ is None else environ).get("GLUE_CLOCK", "").strip()
    if not raw:
        return partial(datetime.now, UTC)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"GLUE_CLOCK={raw!r} is not an ISO-8601 time with its offset: set it to e.g. "
                          "2026-12-01T00:00:00+00:00, or unset it to judge Microsoft's data at the current time")
    return lambda: moment


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    return Settings(
        graph=graph_settings_from_env(environ),
        store_url=store_url_from_env(environ),
        data_dir=data_dir_from_env(environ),
        cache_dir=cache_dir_from_env(environ),
        sync_processes=sync_processes_from_env(environ),
    )
