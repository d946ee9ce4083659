"""Figures for the sandbox at scale: world generation time, token endpoint and /users throughput.

    python -m glue_pipeline.sandbox.bench                          # one tenant of 50,000 users
    python -m glue_pipeline.sandbox.bench --tenants 1000 --users 100000 --spread longtail

The sandbox runs in a child process (it generates the same world from the seed), so that the
clients measured here do not share its interpreter lock. Clients are plain requests sessions
trusting the sandbox CA; tokens come from msal, as in the pipeline. Prints its figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import msal
import requests

from .generate import generate_world
from .server import Sandbox, SandboxConfig

NEXT_LINK = re.compile(rb'"@odata.nextLink":"([^"]+)"')
SELECT = ("id,userPrincipalName,displayName,givenName,surname,mail,jobTitle,businessPhones,mobilePhone,"
          "officeLocation,accountEnabled,userType,proxyAddresses,assignedLicenses,createdDateTime,"
          "lastPasswordChangeDateTime")


def _serve(args: dict[str, Any], ready: Any, stop: Any) -> None:
    world = generate_world(seed=args["seed"], tenants=args["tenants"], users=args["users"], revoked=0,
                           spread=args["spread"])
    gc.freeze()  # as serve_forever (`glue-pipeline sandbox serve`) does once the world is loaded
    with Sandbox(SandboxConfig(world=world)) as sandbox:
        ready.put({"base": sandbox.base_url, "ca": str(sandbox.ca_file), "partner": world.partner.tenant_id,
                   "client_id": world.app.client_id, "secret": world.app.client_secret,
                   "tenants": [t.id for t in world.tenants]})
        stop.wait()


@contextmanager
def _sandbox_process(args: dict[str, Any]) -> Iterator[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    process = ctx.Process(target=_serve, args=(args, ready, stop), daemon=True)
    process.start()
    try:
        yield ready.get(timeout=600)
    finally:
        stop.set()
        process.join(timeout=15)


def _session(ca: str, pool: int) -> requests.Session:
    session = requests.Session()
    session.verify = ca
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool)
    session.mount("https://", adapter)
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--spread", default="lognormal", choices=["lognormal", "longtail"])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--top", type=int, default=999)
    args = parser.parse_args()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they would replace the sandbox CA
        os.environ.pop(name, None)

    started = time.perf_counter()
    world = generate_world(seed=args.seed, tenants=args.tenants, users=args.users, revoked=0, spread=args.spread)
    generation_s = time.perf_counter() - started
    sizes = sorted((len(t.users) for t in world.tenants), reverse=True)
    print(f"generate_world(tenants={args.tenants}, users={args.users}, spread={args.spread}): {generation_s:.2f} s; "
          f"largest tenants {sizes[:5]}, median {sizes[len(sizes) // 2]}, over 2,000: {sum(s > 2000 for s in sizes)}")
    del world

    with _sandbox_process(vars(args)) as info:
        session = _session(info["ca"], args.threads * 2)

        def token(tenant_id: str) -> str:
            app = msal.ConfidentialClientApplication(
                info["client_id"], client_credential=info["secret"], authority=f"{info['base']}/{tenant_id}",
                instance_discovery=False, azure_region=False, http_client=session)
            return app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]

        started = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            tokens = dict(zip(info["tenants"], pool.map(token, info["tenants"]), strict=True))
        token_s = time.perf_counter() - started
        print(f"tokens: {len(tokens)} msal apps (discovery + token) in {token_s:.2f} s "
              f"= {len(tokens) / token_s:.0f} tenants/s with {args.threads} threads")

        def walk(tenant_id: str, parse: bool = True) -> tuple[int, int, int]:
            pages = users = size = 0
            url: str | None = f"{info['base']}/v1.0/users?$top={args.top}&$select={SELECT}"
            headers = {"Authorization": f"Bearer {tokens[tenant_id]}"}
            while url:
                response = session.get(url, headers=headers, timeout=60)
                response.raise_for_status()
                content = response.content
                if parse:
                    body = response.json()
                    count, url = len(body["value"]), body.get("@odata.nextLink")
                else:  # the sandbox writes @odata.nextLink before value: no need to parse the page
                    count = content.count(b'"userPrincipalName":')
                    link = NEXT_LINK.search(content[:2048])
                    url = link.group(1).decode() if link else None
                pages, users, size = pages + 1, users + count, size + len(content)
            return pages, users, size

        walks = info["tenants"] * max(1, -(-args.threads // len(info["tenants"])))
        runs = [("first pass: the sandbox encodes the JSON; the client reads bytes only", False),
                ("second pass: JSON cached; the client reads bytes only", False),
                ("third pass: JSON cached; the client parses every page", True)]
        for label, parse in runs:
            started = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                results = list(pool.map(lambda t, parse=parse: walk(t, parse), walks))
            elapsed = time.perf_counter() - started
            pages, users, size = (sum(r[i] for r in results) for i in range(3))
            print(f"/users $top={args.top}, {label}: {pages} pages, {users} users in {elapsed:.2f} s = "
                  f"{pages / elapsed:.0f} requests/s, {users / elapsed:,.0f} users/s, "
                  f"{size / elapsed / 2**20:.0f} MiB/s ({args.threads} client threads, latency 0)")


if __name__ == "__main__":
    main()
