"""World files that Microsoft could not hold are refused by the CLI with the exact field, where a
duplicate's first use is, and the fix; nothing is written and no traceback is shown."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from glue_pipeline.cli import main
from glue_pipeline.sandbox.generate import generate_world
from glue_pipeline.sandbox.world import load_world, save_world

Raw = dict[str, Any]
GUID_FIX = "is not a GUID (8-4-4-4-12 hex digits"


def _base() -> Raw:
    world = generate_world(seed=4, tenants=3, users=30, revoked=0, direct=1)
    return json.loads(world.model_dump_json(exclude_none=True))


def _tenant_with_users(raw: Raw, count: int) -> int:
    return next(i for i, t in enumerate(raw["tenants"]) if len(t["users"]) >= count)


def _append(rows: list[Raw], row: Raw) -> int:
    rows.append(row)
    return len(rows) - 1


# --- each case edits a valid raw world and returns (field the message must name, what it must say)

def _user_id_twice_in_a_tenant(raw: Raw) -> tuple[str, str]:
    t = _tenant_with_users(raw, 3)
    users = raw["tenants"][t]["users"]
    users[2]["id"] = users[0]["id"]
    return f"tenants.{t}.users.2.id", f"is already used at 'tenants.{t}.users.0.id'"


def _user_id_in_two_tenants(raw: Raw) -> tuple[str, str]:
    first = raw["tenants"][0]["users"][0]
    copy = {**first, "id": first["id"].upper(), "userPrincipalName": "copy@elsewhere.example"}
    j = _append(raw["tenants"][2]["users"], copy)
    return f"tenants.2.users.{j}.id", "is already used at 'tenants.0.users.0.id'"


def _contact_id_twice(raw: Raw) -> tuple[str, str]:
    contacts = raw["store"]["contacts"]
    j = _append(contacts, {**contacts[0], "first_name": "Other"})
    return f"store.contacts.{j}.id", "is already used at 'store.contacts.0.id'"


def _organization_id_twice(raw: Raw) -> tuple[str, str]:
    organizations = raw["store"]["organizations"]
    j = _append(organizations, {"id": organizations[0]["id"], "name": "Another Name Ltd"})
    return f"store.organizations.{j}.id", "is already used at 'store.organizations.0.id'"


def _domain_in_two_tenants(raw: Raw) -> tuple[str, str]:
    name = raw["tenants"][0]["domains"][1]["name"]
    j = _append(raw["tenants"][2]["domains"], {"name": name.upper(), "is_verified": True})
    return f"tenants.2.domains.{j}.name", "is already used at 'tenants.0.domains.1.name'"


def _tenant_id_twice(raw: Raw) -> tuple[str, str]:
    raw["tenants"][2]["id"] = raw["tenants"][0]["id"]
    return "tenants.2.id", "is already used at 'tenants.0.id'"


def _client_id_twice(raw: Raw) -> tuple[str, str]:
    raw["direct_apps"][0]["client_id"] = raw["app"]["client_id"]
    return "direct_apps.0.client_id", "is already used at 'app.client_id'"


def _not_a_guid(*path: str | int) -> Callable[[Raw], tuple[str, str]]:
    def edit(raw: Raw) -> tuple[str, str]:
        *parents, last = path
        node = raw
        for key in parents:
            node = node[key]
        node[last] = "not-a-guid"
        return ".".join(map(str, path)), f"'not-a-guid' {GUID_FIX}"
    return edit


def _licensed_user_sku_not_a_guid(raw: Raw) -> tuple[str, str]:
    t, j = next((t, j) for t, tenant in enumerate(raw["tenants"])
                for j, user in enumerate(tenant["users"]) if user.get("assignedLicenses"))
    return _not_a_guid("tenants", t, "users", j, "assignedLicenses", 0, "skuId")(raw)


BAD_WORLDS: dict[str, Callable[[Raw], tuple[str, str]]] = {
    "user id twice in a tenant": _user_id_twice_in_a_tenant,
    "user id in two tenants (other case)": _user_id_in_two_tenants,
    "store contact id twice": _contact_id_twice,
    "store organization id twice": _organization_id_twice,
    "domain verified in two tenants (other case)": _domain_in_two_tenants,
    "tenant id twice": _tenant_id_twice,
    "client_id of two apps": _client_id_twice,
    "tenant id not a GUID": _not_a_guid("tenants", 1, "id"),
    "user id not a GUID": _not_a_guid("tenants", 1, "users", 0, "id"),
    "partner tenant_id not a GUID": _not_a_guid("partner", "tenant_id"),
    "app client_id not a GUID": _not_a_guid("app", "client_id"),
    "direct app tenant_id not a GUID": _not_a_guid("direct_apps", 0, "tenant_id"),
    "direct app client_id not a GUID": _not_a_guid("direct_apps", 0, "client_id"),
    "sku skuId not a GUID": _not_a_guid("tenants", 0, "skus", 0, "skuId"),
    "assigned license skuId not a GUID": _licensed_user_sku_not_a_guid,
}
FIX = "fix it to match the world schema in README.md (section 'World files')"


def _invoke(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setenv("GLUE_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("GLUE_VAR_DIR", str(tmp_path / "var"))
    return CliRunner().invoke(main, args)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port already listened on: should a bad world load, `sandbox serve` fails to bind it
    instead of serving until interrupted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("problem", sorted(BAD_WORLDS))
@pytest.mark.parametrize("command", [["store", "init"], ["sandbox", "serve"]], ids=" ".join)
def test_a_world_microsoft_could_not_hold_is_refused_with_the_field_and_the_fix(
        problem: str, command: list[str], busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _base()
    field, wrong = BAD_WORLDS[problem](raw)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    port = ["--port", str(busy_port)] if command[0] == "sandbox" else []
    result = _invoke([*command, "--world", str(bad), *port], tmp_path, monkeypatch)
    assert result.exit_code == 1, result.output
    # An exception the command did not turn into a message would be held here instead.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert f"{bad}: field '{field}' is invalid: " in result.output, result.output
    assert wrong in result.output and FIX in result.output, result.output
    assert "give one of them another" in result.output or "uuid.uuid4()" in result.output, result.output
    assert not (tmp_path / "store.db").exists(), "the store was not created"
    assert not (tmp_path / "var").exists(), "the sandbox wrote nothing"


def test_a_generated_world_still_loads_and_seeds_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = generate_world(seed=4, tenants=3, users=30, revoked=0, direct=1)
    path = tmp_path / "world.json"
    save_world(world, path)
    assert load_world(path) == world
    result = _invoke(["store", "init", "--world", str(path)], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "store.db").exists(), "the store was created"
