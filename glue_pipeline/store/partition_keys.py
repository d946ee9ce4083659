"""Each tenant's partition key: the name an analyst finds it by in the Dagster UI.

A key is the tenant's name when discovery first found it, then the first 8 characters of its
tenant id in parentheses: `Contoso Ltd (3f2a9c1e)`. It is given once (tenants.partition_key)
and never changes, so a tenant's history stays on one partition when the customer renames its
tenant (the current name shows in customer_tenants, tenant_status and `glue-pipeline status`).

The name comes from the customer and is untrusted. It keeps letters, digits, spaces and
`. - & ' + @`; everything else becomes a space (so a name cannot end in a forged "(id)", nor
hold what Dagster or its UI read in a key: commas, brackets, `...`, slashes, control
characters; dots in a row are one), and it is cut at NAME_LENGTH. Two tenants whose ids share 8 characters get the
whole id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable

from sqlalchemy import Connection, Engine, select, update

from glue_pipeline.store.schema import tenants

NAME_LENGTH = 40
SHORT_ID = 8
_KEPT_PUNCTUATION = set(".-&'+@ ")


def _clean_name(name: str | None) -> str:
    text = unicodedata.normalize("NFKC", name or "")
    kept = "".join(c if c in _KEPT_PUNCTUATION or unicodedata.category(c)[0] in "LNM" else " " for c in text)
    words = re.sub(r"\.{2,}", ".", re.sub(r"\s+", " ", kept)).strip(" .-&'+@")  # Dagster reads "..."
    return words[:NAME_LENGTH].rstrip(" .-&'+@") or "tenant"


def partition_key(name: str | None, tenant_id: str, taken: Collection[str] = ()) -> str:
    """The key for a tenant named `name`: the whole id instead of its first 8 characters when
    that key is `taken`."""
    short = f"{_clean_name(name)} ({tenant_id[:SHORT_ID]})"
    return short if short not in taken else f"{_clean_name(name)} ({tenant_id})"


def assign_partition_keys(conn: Connection) -> dict[str, str]:
    """Give each tenant without a key its key (in the order they were first seen); every
    tenant's key, by tenant id."""
    rows = conn.execute(select(tenants.c.tenant_id, tenants.c.display_name, tenants.c.partition_key)
                        .order_by(tenants.c.first_seen_at, tenants.c.tenant_id)).all()
    keys = {r.tenant_id: r.partition_key for r in rows if r.partition_key}
    taken = set(keys.values())
    for row in rows:
        if row.tenant_id not in keys:
            key = partition_key(row.display_name, row.tenant_id, taken)
            conn.execute(update(tenants).where(tenants.c.tenant_id == row.tenant_id).values(partition_key=key))
            keys[row.tenant_id] = key
            taken.add(key)
    return keys


def keys_of(conn: Connection, tenant_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Tenant id -> partition key, of these tenants (default: all) that have one."""
    query = select(tenants.c.tenant_id, tenants.c.partition_key).where(tenants.c.partition_key.is_not(None))
    if tenant_ids is not None:
        query = query.where(tenants.c.tenant_id.in_(list(tenant_ids)))
    return {r.tenant_id: r.partition_key for r in conn.execute(query)}


def tenants_of(conn: Connection, keys: Iterable[str]) -> dict[str, str]:
    """Partition key -> tenant id, of these keys (a key no tenant has is left out)."""
    query = select(tenants.c.tenant_id, tenants.c.partition_key).where(tenants.c.partition_key.in_(list(keys)))
    return {r.partition_key: r.tenant_id for r in conn.execute(query)}


def partitions_of(engine: Engine, tenant_ids: Iterable[str] | None = None) -> dict[str, str]:
    """keys_of, in a connection of its own."""
    with engine.connect() as conn:
        return keys_of(conn, tenant_ids)


def tenants_by_partition(engine: Engine, keys: Iterable[str]) -> dict[str, str]:
    """tenants_of, in a connection of its own."""
    with engine.connect() as conn:
        return tenants_of(conn, keys)


def reports_concealed(engine: Engine, keys: Iterable[str]) -> dict[str, bool]:
    """Partition key -> whether the tenant's reports conceal user names, as its last sync read
    them (a tenant not read yet counts as not concealing)."""
    query = select(tenants.c.partition_key, tenants.c.reports_concealed).where(tenants.c.partition_key.in_(list(keys)))
    with engine.connect() as conn:
        return {r.partition_key: bool(r.reports_concealed) for r in conn.execute(query)}
