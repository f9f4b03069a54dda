"""The status page in a real browser: Debian's Chromium, driven by Playwright.

Playwright's own browser download is not reachable here, so the test launches the
system's ``/usr/bin/chromium`` (scripts/test.sh installs it, as it does
redis-server). Without it the test FAILS: a status page nobody looked at in a
browser is not tested.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Request, Route, async_playwright

from gateway_anyio import Cluster, Gateway, ShardState
from gateway_status import serve_status
from gateway_testing import FakeGateway

from .conftest import TOKEN

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The screenshot in docs/operations.md comes from this test: it is written there only
# when asked (UPDATE_SCREENSHOT=1), so that a test run leaves the checkout as it was.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
SCREENSHOT = (
    DOCS_SCREENSHOT
    if os.environ.get("UPDATE_SCREENSHOT") == "1"
    else Path(tempfile.gettempdir()) / f"status-page-{os.getpid()}.png"
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Playwright's async API runs on asyncio only


async def test_the_page_shows_every_shard_and_follows_a_dropped_connection() -> None:
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)"
    )
    failures: list[str] = []
    async with (
        FakeGateway(token=TOKEN, shards=4, max_concurrency=4, heartbeat_interval=1.0) as fake,
        Cluster(Gateway(TOKEN, api_base=fake.api_base), intents=513) as cluster,
        anyio.create_task_group() as tg,
    ):
        url = await tg.start(serve_status, cluster, "127.0.0.1", 0)
        await cluster.spawn([0, 1, 2, 3], shard_count=4)
        with anyio.fail_after(10):
            while len(cluster.shards) < 4 or any(
                s.state is not ShardState.READY for s in cluster.shards.values()
            ):
                await anyio.sleep(0.01)
        with tempfile.TemporaryDirectory() as profile:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, headless=True, args=ARGS
                )
                try:

                    async def only_the_status_server(route: Route) -> None:
                        # Offline: anything the page asks of another origin is a failure.
                        if route.request.url.startswith(url):
                            await route.continue_()
                        else:
                            failures.append(f"outside request: {route.request.url}")
                            await route.abort()

                    def failed(request: Request) -> None:
                        failures.append(f"failed: {request.url} {request.failure}")

                    await browser.route("**/*", only_the_status_server)
                    page = await browser.new_page()
                    page.on("requestfailed", failed)
                    page.on(
                        "response",
                        lambda r: (
                            failures.append(f"{r.status}: {r.url}") if r.status >= 400 else None
                        ),
                    )
                    page.on("pageerror", lambda e: failures.append(f"script error: {e}"))
                    await page.goto(url)
                    cells = page.locator("section.shard")
                    await page.wait_for_function(
                        "document.querySelectorAll('section.shard[data-state=ready]').length === 4"
                    )
                    assert await cells.count() == 4
                    ids = [await cells.nth(i).get_attribute("data-shard") for i in range(4)]
                    assert ids == ["0", "1", "2", "3"]
                    [conn] = [c for c in fake.connections if c.payloads(2)[0]["shard"] == [2, 4]]
                    async with fake.unreachable():
                        await conn.drop()
                        await page.wait_for_function(
                            "document.querySelector('section.shard[data-shard=\"2\"]')"
                            ".dataset.state !== 'ready'"
                        )
                        await page.wait_for_timeout(1200)  # one poll more: events/s filled in
                        SCREENSHOT.parent.mkdir(exist_ok=True)
                        await page.screenshot(path=str(SCREENSHOT), full_page=True)
                        state = await cells.nth(2).get_attribute("data-state")
                        assert state in {"connecting", "reconnecting"}
                        text = await cells.nth(2).inner_text()
                        assert "last close" in text
                    # Back once the fake is: every shard resumes (or identifies) again.
                    await page.wait_for_function(
                        "document.getElementById('summary').textContent === '4 of 4 shards ready'",
                        timeout=30000,
                    )
                    assert await cells.nth(2).get_attribute("data-state") == "ready"
                finally:
                    await browser.close()
        tg.cancel_scope.cancel()
    assert failures == []
