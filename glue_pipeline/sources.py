"""Data sources: the partner app (customers through DAP contracts and GDAP relationships), and
direct-login sources - an app registered inside one customer's own tenant, with its own client id
and secret. A tenant reached both ways is synced once, through its direct-login app.

Direct-login sources are listed in the configuration file's `sources` section; each secret comes
from the environment variable the source names. Disconnecting a source (recorded in the store)
stops its syncs and keeps its data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from glue_pipeline.options import read_config_file
from glue_pipeline.settings import ConfigError, Secret, describe_invalid
from glue_pipeline.store.engine import Engine
from glue_pipeline.store.sources import disconnected_sources, record_connection

# The names other code imports from here, wherever they are defined.
__all__ = ["PARTNER_SOURCE", "DirectSource", "direct_credentials", "disconnected_sources", "load_direct_sources",
           "set_connected"]

PARTNER_SOURCE = "partner"  # the partner app's own name as a data source
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
REMOVE_PRIVILEGES = ("the app keeps its admin privileges in the customer tenant until they are removed "
                     "by hand: in that tenant's Entra admin center, delete the app's enterprise "
                     "application (or revoke its admin consent)")


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    tenant_id: str
    client_id: str
    client_secret_env: str

    @field_validator("tenant_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not GUID.match(value):
            raise ValueError(f"'{value}' is not a tenant id (a GUID)")
        return value.lower()


@dataclass(frozen=True)
class DirectSource:
    name: str
    tenant_id: str
    client_id: str
    client_secret: Secret = field(repr=False)
    secret_variable: str = ""


def load_direct_sources(path: Path | None, environ: dict[str, str] | None = None) -> list[DirectSource]:
    environ = dict(os.environ if environ is None else environ)
    raw = read_config_file(path).get("sources") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{path} section 'sources' must be a list of sources")
    sources: list[DirectSource] = []
    for position, item in enumerate(raw):
        try:
            config = SourceConfig.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(describe_invalid(exc, f"{path} section 'sources' item {position}", "field",
                                               "fix it as README.md 'Data sources' describes")) from None
        secret = environ.get(config.client_secret_env, "").strip()
        if not secret:
            raise ConfigError(f"source '{config.name}': {config.client_secret_env} is not set: set it to "
                              "the client secret value of the app registered in that customer's tenant")
        if config.name == PARTNER_SOURCE or any(s.name == config.name for s in sources):
            raise ConfigError(f"{path}: two sources are named '{config.name}': give each its own name")
        sources.append(DirectSource(config.name, config.tenant_id, config.client_id, Secret(secret),
                                    config.client_secret_env))
    return sources


def set_connected(engine: Engine, name: str, connected: bool) -> str:
    """Record a source as connected or disconnected; returns what the operator must still do."""
    record_connection(engine, name, connected)
    if connected:
        return f"source '{name}' is connected: its tenant is synced again from the next sync on"
    return (f"source '{name}' is disconnected: it is no longer synced and its data is kept. "
            f"Note: {REMOVE_PRIVILEGES}")


def direct_credentials(sources: list[DirectSource]) -> dict[str, tuple[str, Secret, str]]:
    """tenant id -> (client id, secret, the variable holding it), as the Graph client takes them."""
    return {s.tenant_id: (s.client_id, s.client_secret, s.secret_variable) for s in sources}
