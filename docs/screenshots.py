"""Screenshots of the analyst's view for the README: the Dagster UI on the demo instance (run
`make demo` first), read in headless Chromium (Debian's `chromium`, driven by Playwright).

    make screenshots        # or: .venv/bin/python docs/screenshots.py [--port 3111]

Writes docs/partitions.png (customers by name, filtered), docs/partition.png (one customer's
tables), docs/preview.png (a preview opened), docs/checks.png (the checks of a customer's
partition) and docs/review.png (review_matches' Launchpad, pre-filled for an open customer)."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
WIDTH, HEIGHT = 1600, 1000
LOAD_S = 120


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("Chromium is missing: install Debian's package (`apt-get install -y chromium`), then run again")
    return found


@contextmanager
def webserver(port: int) -> Iterator[str]:
    """`dagster-webserver` on the demo instance (GLUE_VAR_DIR, default var/), until the block ends."""
    from glue_pipeline.runner import ensure_dagster_home

    env = {**os.environ, "DAGSTER_HOME": str(ensure_dagster_home())}
    log = open(_log(), "wb")  # noqa: SIM115 (the process keeps it)
    process = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", str(ROOT / "workspace.yaml"),
                                "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_loaded(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_loaded(url: str) -> None:
    end = time.monotonic() + LOAD_S
    while time.monotonic() < end:
        try:
            body = requests.post(f"{url}/graphql", json={"query": "{ workspaceOrError { ... on Workspace { "
                                                         "locationEntries { loadStatus } } } }"}, timeout=10).json()
            if all(e["loadStatus"] == "LOADED" for e in body["data"]["workspaceOrError"]["locationEntries"]):
                return
        except (requests.RequestException, KeyError, TypeError):
            pass
        time.sleep(1)
    sys.exit(f"the webserver at {url} did not load the code location in {LOAD_S} s: see {_log()}")


def _log() -> Path:
    from glue_pipeline.settings import default_var_dir

    return default_var_dir() / "screenshots-webserver.log"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _open_tenant() -> tuple[str, str]:
    """The partition key of a tenant that waits for a match (else any), and one to filter by."""
    from glue_pipeline.overview import organization_overview
    from glue_pipeline.settings import store_url_from_env
    from glue_pipeline.store.engine import make_engine
    from glue_pipeline.store.partition_keys import partitions_of

    engine = make_engine(store_url_from_env())
    keys = partitions_of(engine)
    frame = organization_overview(engine)
    open_ = frame[frame["status"] == "suggested"]
    tenant_id = (open_ if len(open_) else frame)["tenant_id"].iloc[0]
    return keys[tenant_id], keys[tenant_id].split(" ")[0]


def take(url: str, browser_path: str) -> list[Path]:
    from playwright.sync_api import Page, sync_playwright

    key, typed = _open_tenant()
    shots: list[Path] = []

    def settle(page: Page, ms: int = 4000) -> None:
        page.wait_for_timeout(ms)
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
            page.wait_for_timeout(300)

    def shot(page: Page, name: str) -> None:
        path = DOCS / f"{name}.png"
        page.screenshot(path=str(path))
        shots.append(path)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})

        page.goto(f"{url}/assets/tenant_contacts?view=partitions")
        settle(page)
        search = page.get_by_placeholder("Filter by name", exact=False)
        if search.count():
            search.first.fill(typed)
            page.wait_for_timeout(1000)
        shot(page, "partitions")

        page.goto(f"{url}/assets/tenant_contacts?view=partitions&partition={quote(key)}")
        settle(page)
        shot(page, "partition")
        previews = page.get_by_text("[Show Markdown]")
        if previews.count():
            page.locator("tr", has=page.get_by_text("contact_matches", exact=True)).get_by_text(
                "[Show Markdown]").first.click()
            page.wait_for_timeout(800)
            shot(page, "preview")
            page.keyboard.press("Escape")

        page.goto(f"{url}/assets/tenant_contacts?view=checks")
        settle(page)
        shot(page, "checks")

        page.goto(f"{url}/assets/contacts_needing_review?view=checks")
        settle(page)
        page.get_by_text("no_likely_duplicates_held", exact=True).first.click()
        page.wait_for_timeout(1500)
        shot(page, "overview-checks")

        page.goto(f"{url}/locations/glue_pipeline/jobs/review_matches/playground")
        settle(page)
        picker = page.get_by_placeholder("Partition", exact=True)
        picker.first.click()
        picker.first.fill(typed)
        page.wait_for_timeout(800)
        page.get_by_text(key, exact=True).first.click()
        page.wait_for_timeout(3000)
        shot(page, "review")
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="the webserver's port (default: a free one)")
    args = parser.parse_args()
    browser_path = chromium()
    with webserver(args.port or _free_port()) as url:
        for path in take(url, browser_path):
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
