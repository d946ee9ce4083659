"""A tenant as a person names it on the command line or in a Launchpad: its id (case ignored),
its partition key as the Dagster UI lists it (`Contoso Ltd (3f2a9c1e)`), or its display name
(case and spaces ignored) when that names exactly one tenant. One resolver for every command and
job that takes a tenant."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from glue_pipeline.matching.organizations import normalize_name
from glue_pipeline.render import terminal_text
from glue_pipeline.store.rows import Row, all_rows
from glue_pipeline.store.schema import tenants


class TenantRefError(ValueError):
    """A tenant reference that names no tenant, or several; the message says what to give instead."""


def matching_tenants(conn: Connection, ref: str) -> list[Row]:
    """The tenants `ref` names: the one with that id or partition key, else those with that name."""
    wanted = ref.strip()
    exact = all_rows(conn, select(tenants).where((func.lower(tenants.c.tenant_id) == wanted.lower())
                                                 | (tenants.c.partition_key == wanted)))
    if exact:
        return exact
    name = normalize_name(wanted)
    return [t for t in all_rows(conn, select(tenants)) if name and normalize_name(t["display_name"]) == name]


def find_tenant(conn: Connection, ref: str) -> Row:
    """The one tenant `ref` names; a TenantRefError naming the fix when it names none or several."""
    found = matching_tenants(conn, ref)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(sorted(t["tenant_id"] for t in found))
        raise TenantRefError(f"{len(found)} tenants are named '{terminal_text(ref)}' ({ids}): give the tenant id")
    raise TenantRefError(f"no tenant '{terminal_text(ref)}' is known: give a tenant id, partition key or name as "
                         "`glue-pipeline status` shows them (tenants appear once discovery has found them)")
