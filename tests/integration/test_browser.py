"""The web app in a real browser (Debian's Chromium, headless, driven by Playwright), served
by gunicorn as scripts/setup serves it, over a real container: log in; create a container, a
project and an app; set a secret; deploy and watch the live log reach success; open the app
through nginx over TLS; deploy again, restore the backup, roll back; see the jobs in the
history; cancel a long deploy (the previous version keeps serving); delete the container.
Then the canary secret is looked for everywhere it must not be.

A screenshot is saved when a step fails, and one of the dashboard at the end (under the
test's tmp dir: ``pytest --basetemp DIR`` keeps them where you want them).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pylxd
import pytest

from dpl_web.registry import Registry
from tests.conftest import TEST_PREFIX
from tests.support.cli import served
from tests.support.web import start_gunicorn

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
EXIT_ATTENTION = 11  # dpl status: something needs attention
PASSWORD = "browser-test-password"
CANARY = "canary-" + uuid.uuid4().hex  # a secret value that must never come out again
JOB_TIMEOUT = 300_000  # ms: a deploy builds with npm in the container


@pytest.fixture
def web(dpl, tmp_path):
    """gunicorn serving this test's registry, as scripts/setup serves it; its log in the
    test's directory (the canary sweep reads it)."""
    with Registry.open(dpl.env["DPL_REGISTRY"]) as reg:
        reg.add_user("admin", PASSWORD)
    log = tmp_path / "web.log"
    with open(log, "w") as output:
        server, base = start_gunicorn(dpl.env, output, access_log=True)
    yield base, log
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium (Debian's: never a downloaded one) whose requests for *.dpl.test
    go to this machine's nginx; every response body it receives is kept for the sweep."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package")
    bodies: list[bytes] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
            "--host-resolver-rules=MAP *.dpl.test 127.0.0.1", "--ignore-certificate-errors"])
        page = chromium.new_page(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
        page.set_default_timeout(30_000)

        def keep(response):
            try:
                bodies.append(response.body())
            except Exception:  # noqa: BLE001 - a stream or a redirect has no body to keep
                pass

        page.on("response", keep)
        page.bodies = bodies
        try:
            yield page
        finally:
            chromium.close()


@pytest.fixture
def screenshot_on_failure(browser, tmp_path):
    """Keep a picture of the page a failed step left (tmp_path/failure.png)."""
    class Guard:
        def __enter__(self):
            return browser

        def __exit__(self, kind, *_rest):
            if kind is not None:
                browser.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print(f"screenshot of the failure: {tmp_path / 'failure.png'} (at {browser.url})")
            return False

    return Guard()


def wait_for_job(page, status: str = "successful") -> int:
    """On a job page: wait until the live log says the job finished, then for the page's own
    reload; returns the job's id."""
    job_id = int(re.search(r"/jobs/(\d+)", page.url).group(1))
    page.locator("#log").get_by_text("finished:").wait_for(timeout=JOB_TIMEOUT)
    page.wait_for_load_state("load")
    badge = page.locator("#job-status")
    badge.and_(page.locator(f".{status}")).wait_for(timeout=10_000)
    return job_id


def test_the_operator_runs_an_app_from_the_browser(dpl, repos, web, browser, screenshot_on_failure, tmp_path):
    with screenshot_on_failure:
        run_the_operators_day(dpl, repos, web, browser, tmp_path)


def run_the_operators_day(dpl, repos, web, page, tmp_path):
    base, web_log = web
    name = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(name)
    domain = f"{name}.dpl.test"

    # Log in (every page sends there first).
    page.goto(base + "/")
    assert page.url.startswith(base + "/login")
    page.fill("#f-user", "admin")
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")

    # A container: its creation is a job, followed live.
    page.click("text=New container")
    page.fill("#f-name", name)
    page.fill("#f-memory", "lots")
    page.click("button:has-text('Create')")
    assert "use a number and a unit" in page.locator("#e-memory").inner_text()
    page.fill("#f-memory", "1GiB")
    page.click("button:has-text('Create')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    wait_for_job(page)

    # A project in it, and an app.
    page.goto(f"{base}/projects/new?container={name}")
    page.fill("#f-name", name)
    page.click("button:has-text('Record')")
    page.wait_for_url(f"{base}/projects/{name}")
    # A deploy key for private repositories, made on the project's page: its public half shown.
    page.click("button:has-text('Make a deploy key')")
    page.wait_for_url(f"{base}/projects/{name}#access")
    assert f"dpl-deploy-{name}" in page.content() and "PRIVATE KEY" not in page.content()
    page.screenshot(path=str(tmp_path / "project.png"), full_page=True)
    page.click("text=New app")
    page.fill("#f-name", "web")
    page.fill("#f-repo", repos[1])
    page.fill("#f-ref", "v1")
    page.fill("#f-domains", domain)
    page.fill("#f-health_path", "/health")
    page.click("button:has-text('Record')")
    page.wait_for_url(f"{base}/apps/{name}/web")

    # A secret: set, then shown as set and never as itself.
    page.fill("input[name=name]", "API_KEY")
    page.fill("input[name=value]", CANARY)
    page.check("input[name=secret]")
    page.click("button:has-text('Set variable')")
    assert "secret: set" in page.locator("#env ~ table").first.inner_text()

    # Deploy v1: the live log reaches success, the steps are all done, nginx serves it.
    page.click("button:has-text('Deploy')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    first_deploy = wait_for_job(page)
    assert page.locator("ol.steps li.done").count() == page.locator("ol.steps li").count() > 0
    page.goto(f"https://{domain}/")
    assert '"version":"v1"' in page.content().replace(" ", "")
    # Then v2, and a rollback to v1.
    page.goto(f"{base}/apps/{name}/web")
    page.fill("#f-ref", "v2")
    page.click("button:has-text('Deploy')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    second_deploy = wait_for_job(page)
    assert served(domain) == "v2"
    # The backup v2's deploy made of v1, listed with its time, commit and size, restored.
    page.goto(f"{base}/apps/{name}/web")
    page.click("text=Backups and restore")
    page.click("button:has-text('List the backups')")
    row = page.locator("tr", has=page.locator("button:has-text('Restore')"), has_text=repos[0].commits["v1"][:12])
    assert re.search(r"\d+(\.\d)? (B|kB|MB)", row.inner_text()), row.inner_text()
    assert "container, controller" in row.inner_text()  # a copy outlives the container
    page.screenshot(path=str(tmp_path / "backups.png"), full_page=True)
    row.locator("button:has-text('Restore')").click()
    page.click("button:has-text('Restore')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    restore = wait_for_job(page)
    assert served(domain) == "v1"
    # A rollback goes back to the release before: v2.
    page.goto(f"{base}/apps/{name}/web")
    page.click("text=Roll back…")
    page.click("button:has-text('Roll back')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    rollback = wait_for_job(page)
    assert served(domain) == "v2"

    # The history: the deploys, the restore and the rollback, under the app's filter.
    page.goto(f"{base}/jobs/?target=app/{name}/web")
    listed = [int(found) for found in re.findall(r'href="/jobs/(\d+)"', page.content())]
    assert {first_deploy, second_deploy, restore, rollback} <= set(listed)

    # A long deploy, canceled from its page: the previous version keeps serving.
    page.goto(f"{base}/apps/{name}/web/edit")
    page.fill("#f-deploy_script", "sleep 120")
    page.click("button:has-text('Save')")
    page.fill("#f-ref", "v3")
    page.click("button:has-text('Deploy')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    page.locator("#log").get_by_text("started").wait_for(timeout=60_000)
    page.locator("#log").get_by_text("Deploy").first.wait_for(timeout=60_000)
    page.click("button:has-text('Cancel')")
    wait_for_job(page, "canceled")
    assert served(domain) == "v2"

    # Monitoring: three rounds recorded; the app page's charts are drawn from them, and its
    # facts say what serves (the rollback's release, v2) and what nginx saw.
    for _round in range(3):
        dpl("status", "--record", expect=EXIT_ATTENTION)  # (other tests' containers are drift here)
    page.goto(f"{base}/apps/{name}/web")
    for field in ("latency_ms", "edge_latency_ms", "requests", "up"):
        page.locator(f"figure[data-field={field}] svg polyline").wait_for(state="attached", timeout=10_000)
    facts = page.locator("h2:has-text('Health') ~ dl.facts").first.inner_text()
    assert "active" in facts and repos[0].commits["v2"][:12] in facts and "request(s)" in facts, facts
    # What serves is the rollback's release, not the last deploy's.
    assert "put live by a rollback" in page.content() and f'href="/jobs/{rollback}"' in page.content()
    page.screenshot(path=str(tmp_path / "charts.png"), full_page=True)
    # The log page: the journal, and what each deploy printed.
    page.goto(f"{base}/apps/{name}/web/logs")
    outputs = page.locator("pre.deploy-output")
    assert outputs.count() == 3 and f"job #{rollback}" in page.content()
    page.screenshot(path=str(tmp_path / "logs.png"), full_page=True)

    # The page that adopts hand-written server blocks: what it would do with one (looked at only).
    legacy = Path("/etc/nginx/sites-available") / f"{name}-legacy"  # (not enabled)
    address = dpl.json("container", "show", name)["container"]["ipv4"]
    legacy.write_text(f"server {{\n    listen 443 ssl;\n    server_name old.{domain};\n"
                      f"    location / {{ proxy_pass http://{address}:3000; }}\n}}\n")
    try:
        page.goto(base + "/")
        page.click("text=Import nginx server blocks…")
        page.fill("#f-file", str(legacy))
        page.click("button:has-text('Read it')")
        assert f"{name}/web gets old.{domain}." in page.content()
        page.screenshot(path=str(tmp_path / "vhost_import.png"), full_page=True)
    finally:
        legacy.unlink()

    page.goto(base + "/")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert f"https://{domain}/" in page.content()

    # The container goes, with its app, after a confirmation; nothing is left in LXD.
    page.goto(f"{base}/containers/{name}")
    page.click("text=Delete…")
    page.check("input[name=force]")
    page.click("button:has-text('Delete')")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    wait_for_job(page)
    assert not pylxd.Client().instances.exists(name)
    assert served(domain) is None

    # The canary: in no page or answer the browser got, no log, no job file, no event.
    leaks = [f"response #{index}" for index, body in enumerate(page.bodies) if CANARY.encode() in body]
    for root in (dpl.state, web_log):
        files = [root] if root.is_file() else [path for path in root.rglob("*") if path.is_file()]
        leaks += [str(path) for path in files if CANARY.encode() in path.read_bytes()]
    with Registry.open(dpl.env["DPL_REGISTRY"]) as reg:
        rows = reg.conn.execute("SELECT data FROM job_event UNION ALL SELECT coalesce(log, '') || "
                                "coalesce(result, '') FROM job UNION ALL SELECT detail FROM audit").fetchall()
        leaks += ["the registry's job events, logs or audit" for row in rows if CANARY in row[0]]
    assert leaks == [], leaks
    assert len(page.bodies) > 20
