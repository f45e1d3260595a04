"""SPEC 13: the dashboard in a real browser (Debian's Chromium, driven by Playwright).

Playwright drives the system's ``/usr/bin/chromium`` (``.ci/run`` installs Debian's package
when it is missing); it never downloads a browser of its own. The test signs in, launches
tasks through the API, watches them appear in the list, opens one, sees its timeline and its
log lines arrive live, presses Cancel and sees the state change. It refreshes the screenshots
under ``docs/`` that the README shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.helpers.processes import REPO_ROOT, WorkerProcess
from tests.helpers.server import running_server

WF = "tests.acceptance.workflows_server"
TOKEN = "browser-token"
CHROMIUM = "/usr/bin/chromium"
DOCS = REPO_ROOT / "docs"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile and no background network traffic."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                # No --user-data-dir: Playwright refuses it for launch() and gives every
                # launch a fresh, empty profile directory of its own.
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _launch(api: httpx.AsyncClient, workflow: str, name: str, *args: object) -> int:
    response = await api.post("/tasks", json={"workflow": workflow, "name": name, "args": args})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _sign_in(page: Page, base: str) -> None:
    await page.goto(base + "/")
    await expect(page).to_have_url(base + "/login")
    await page.fill("input[name=token]", TOKEN)
    await page.click("button:has-text('Sign in')")
    await expect(page.locator("h1")).to_have_text("Tasks")


async def test_the_dashboard_follows_and_cancels_a_task(
    db_url: str,
    workers: Callable[..., WorkerProcess],
    browser: Browser,
    tmp_path: Path,
) -> None:
    await workers().start()
    async with (
        running_server(db_url, token=TOKEN) as base,
        httpx.AsyncClient(
            base_url=base + "/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as api,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 760})
        await _sign_in(page, base)
        rows = page.locator("#task-rows tr[data-id]")
        await expect(rows).to_have_count(0)

        # Launched after the page loaded: the list shows them without a reload.
        await _launch(api, f"{WF}:parent", "parent with a child")
        await _launch(api, f"{WF}:broken", "charge card 7")
        showcase = await _launch(api, f"{WF}:showcase", "order o-42", str(tmp_path / "flaky"))
        row = page.locator(f'#task-rows tr[data-id="{showcase}"]')
        await expect(row).to_be_visible()
        await expect(rows).to_have_count(5)  # the children of two of them are listed too
        await expect(page.locator("#task-rows .state.failed")).to_have_count(1)
        await expect(page.locator("#task-rows .state.complete")).to_have_count(3)

        # Filters update the list in place.
        await page.select_option("select[name=state]", "failed")
        await expect(rows).to_have_count(1)
        await page.select_option("select[name=state]", "")
        await expect(rows).to_have_count(5)
        await page.screenshot(
            path=str(DOCS / "dashboard-tasks.png"),
            clip={"x": 0, "y": 0, "width": 1280, "height": 400},
        )

        await row.locator("a").click()
        await expect(page).to_have_url(f"{base}/tasks/{showcase}")
        log = page.locator("#log")
        await expect(log).to_contain_text("ready for notifications")
        timeline = page.locator("#timeline .event")
        kinds = page.locator("#timeline .event .kind")
        await expect(kinds).to_contain_text(["step", "step", "child", "child_result", "sleep"])
        # The retried step is marked, and the child is linked from the timeline.
        await expect(timeline.nth(1).locator(".badge.retried")).to_be_visible()
        await expect(page.locator("#timeline a[href^='/tasks/']").first).to_be_visible()
        await expect(page.locator("#children a")).to_have_count(1)

        # Log lines arrive while the page is open.
        for n in (1, 2):
            sent = await api.post(f"/tasks/{showcase}/notify", json={"event": "paid", "data": n})
            assert sent.status_code == 200
            await expect(log).to_contain_text(f"paid: {n}")
        await expect(kinds.last).to_have_text("notification")  # the timeline follows too
        await page.screenshot(path=str(DOCS / "dashboard-task.png"), full_page=True)

        await expect(page.locator("#task-state .state")).not_to_have_text("cancelled")
        await page.click("#cancel")
        await expect(page.locator("#task-state .state")).to_have_text("cancelled", timeout=20_000)
        await expect(page.locator("#cancel")).to_be_disabled()
        assert (await api.get(f"/tasks/{showcase}")).json()["state"] == "cancelled"

        # The fleet pages render what exists.
        await page.click("header nav >> text=Workers")
        await expect(page.locator("tbody tr")).to_have_count(1)
        await page.click("header nav >> text=Queues")
        await expect(page.locator("tbody tr td").first).to_have_text("default")
        await page.click("header nav >> text=Schedules")
        await expect(page.locator("main")).to_contain_text("No schedules.")
