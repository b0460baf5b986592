"""The web app's pages through Flask's test client: every page behind the login, CSRF on
every form, throttled failed logins seen by every web worker, idle and password-change
expiry, forms whose refused value shows next to its field with nothing saved, secrets that
are set but never shown, actions that queue jobs, job pages, filters and pages of jobs."""

from __future__ import annotations

import re
import time

import pytest

from dpl_web import create_app
from dpl_web.registry import Registry

PASSWORD = "correct-horse-battery"
SECRET = "canary-web-s3cret"


@pytest.fixture
def app(reg, registry_path):
    reg.add_user("admin", PASSWORD)
    return create_app({"REGISTRY": str(registry_path), "START_WORKER": False, "TESTING": True})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


class Browser:
    """A test client that logs in and sends each form with the token of the page it came from."""

    def __init__(self, app):
        self.client = app.test_client()
        self.token = None

    def get(self, path, **kwargs):
        response = self.client.get(path, **kwargs)
        if response.mimetype == "text/html" and 'name="csrf_token"' in response.get_data(as_text=True):
            self.token = csrf_of(response.get_data(as_text=True))
        return response

    def post(self, path, data=None, csrf=True, **kwargs):
        data = dict(data or {})
        if csrf:
            if self.token is None:
                self.get("/login")
            data["csrf_token"] = self.token
        return self.client.post(path, data=data, **kwargs)

    def login(self, user="admin", password=PASSWORD):
        self.get("/login")
        return self.post("/login", {"user": user, "password": password})


@pytest.fixture
def browser(app):
    page = Browser(app)
    assert page.login().status_code == 302
    return page


def field_error(page: str, field: str) -> str | None:
    """The error shown under the field ``field`` (None when there is none)."""
    found = re.search(rf'<div class="error" id="e-{field}"[^>]*>([^<]*)</div>', page)
    return found.group(1) if found else None


# -- the login, the session, CSRF -----------------------------------------------------------


def _pages(app):
    """Every page's URL with its arguments filled in (those the gate must guard)."""
    values = {"name": "web1", "project": "shop", "app": "web", "job_id": 1, "action": "start"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "auth.login", "health.page", "health.api") or rule.endpoint.startswith(
                ("api.", "hooks.")):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(rf"<(?:\w+:)?{argument}>", str(values[argument]), path)
        yield path, sorted(rule.methods - {"HEAD", "OPTIONS"})


def test_every_page_and_action_needs_a_login(app, stocked):
    client = app.test_client()
    pages = list(_pages(app))
    assert len(pages) > 20
    for path, methods in pages:
        for method in methods:
            response = client.open(path, method=method)
            # A GET goes to the login; a POST without a session has no CSRF token either; /metrics
            # wants a token, like the API.
            expected = (401,) if path == "/metrics" else (302, 400)
            assert response.status_code in expected, (method, path, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login"), (method, path)
    assert client.get("/health").status_code in (200, 503)  # public, like the login
    assert client.get("/login").status_code == 200
    assert stocked.list_jobs() == [] and len(stocked.list_containers()) == 2


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(browser, stocked):
    response = browser.post("/projects/new", {"name": "intruder", "container": "web1"}, csrf=False)
    assert response.status_code == 400 and "the form was refused" in response.get_data(as_text=True)
    response = browser.post("/projects/new", {"name": "intruder", "container": "web1", "csrf_token": "forged"},
                            csrf=False)
    assert response.status_code == 400
    assert [project["name"] for project in stocked.list_projects()] == ["blog", "shop"]
    # With the page's token, the same form works.
    browser.get("/projects/new")
    assert browser.post("/projects/new", {"name": "welcome", "container": "web1"}).status_code == 302
    assert "welcome" in [project["name"] for project in stocked.list_projects()]


def test_the_session_cookie_is_httponly_samesite_and_secure_over_tls(app):
    page = Browser(app)
    page.get("/login")
    cookie = page.post("/login", {"user": "admin", "password": PASSWORD}).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    # Behind the host's nginx (on loopback), which says the client came over TLS.
    page = Browser(app)
    page.get("/login")
    # (Over TLS, Flask-WTF also wants the form to come from this site's own page.)
    response = page.post("/login", {"user": "admin", "password": PASSWORD}, environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"})
    assert "Secure" in response.headers["Set-Cookie"]
    # A client elsewhere cannot claim TLS (nor pick its address) with these headers.
    page = Browser(app)
    page.get("/login", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    response = page.post("/login", {"user": "admin", "password": PASSWORD}, environ_base={"REMOTE_ADDR": "192.0.2.7"},
                         headers={"X-Forwarded-Proto": "https", "Referer": "https://localhost/login"})
    assert "Secure" not in response.headers["Set-Cookie"]


def test_wrong_logins_are_refused_then_slowed_down_for_every_web_worker(app, registry_path):
    page = Browser(app)
    page.get("/login")
    assert page.post("/login", {"user": "nobody", "password": PASSWORD}).status_code == 401
    statuses = [page.post("/login", {"user": "admin", "password": "wrong-password-1"}).status_code
                for _attempt in range(5)]
    assert statuses == [401] * 5
    # The sixth try for this user from this address must wait, even with the right password.
    throttled = page.post("/login", {"user": "admin", "password": PASSWORD})
    assert throttled.status_code == 429 and "wait" in throttled.get_data(as_text=True)
    # Another web worker (another app over the same registry) sees the same count.
    other = Browser(create_app({"REGISTRY": str(registry_path), "START_WORKER": False, "TESTING": True}))
    other.get("/login")
    assert other.post("/login", {"user": "admin", "password": PASSWORD}).status_code == 429
    # Someone guessing from elsewhere does not lock the user out of their own address.
    elsewhere = Browser(app)
    elsewhere.get("/login", environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert elsewhere.post("/login", {"user": "admin", "password": PASSWORD},
                          environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 302
    with Registry.open(registry_path) as reg:
        assert reg.login_wait(["pair:admin|127.0.0.1"]) > 0
        # Once the wait is over, the right password works and clears the count.
        reg.conn.execute("UPDATE login_failure SET at = at - 60")
        reg.conn.commit()
    assert other.post("/login", {"user": "admin", "password": PASSWORD}).status_code == 302
    with Registry.open(registry_path) as reg:
        assert reg.login_wait(["pair:admin|127.0.0.1", "user:admin"]) == 0


def test_tries_in_parallel_cannot_slip_past_the_wait(app, registry_path):
    """Each try is counted before its password is checked: of many at once, at most the
    free ones are checked."""
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_number):
        with Registry.open(registry_path) as reg:
            try:
                reg.login("admin", "wrong-password-2", "198.51.100.4")
            except Exception as exc:  # noqa: BLE001 - which refusal is what the test counts
                return type(exc).__name__
        return "logged in"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    assert outcomes.count("Unauthorized") == 5 and outcomes.count("Throttled") == 7, outcomes


def test_an_idle_session_ends_and_so_does_an_old_one(app, browser, registry_path):
    assert browser.get("/").status_code == 200
    with Registry.open(registry_path) as reg:
        reg.conn.execute("UPDATE web_session SET seen_at = seen_at - ?", (app.config["SESSION_IDLE_SECONDS"] + 1,))
        reg.conn.commit()
    response = browser.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert browser.get("/").status_code == 302  # the session is gone, not only refused once
    # However busy, a session ends at its maximum age.
    assert browser.login().status_code == 302 and browser.get("/").status_code == 200
    with Registry.open(registry_path) as reg:
        reg.conn.execute("UPDATE web_session SET created_at = created_at - 13 * 3600")
        reg.conn.commit()
        assert browser.get("/").status_code == 302
        assert reg.conn.execute("SELECT count(*) FROM web_session").fetchone()[0] == 0


def test_logging_out_ends_the_session_everywhere(app, browser):
    with browser.client.session_transaction() as session:
        stolen = dict(session)
    browser.get("/")
    browser.post("/logout")
    copy = Browser(app)
    with copy.client.session_transaction() as session:
        session.update(stolen)  # a copy of the cookie taken before the logout
    assert copy.get("/").status_code == 302


def test_a_new_password_ends_the_other_sessions(app, browser, registry_path):
    other = Browser(app)
    assert other.login().status_code == 302 and other.get("/").status_code == 200
    browser.get("/account")
    response = browser.post("/account", {"password": PASSWORD, "new_password": "another-long-password",
                                         "repeat": "another-long-password"})
    assert response.status_code == 302
    assert browser.get("/").status_code == 200  # the session that changed it goes on
    assert other.get("/").status_code == 302
    assert other.login().status_code == 401
    assert other.login(password="another-long-password").status_code == 302


def test_after_login_only_a_path_on_this_site_is_followed(app):
    for target, expected in (("/jobs/", "/jobs/"), ("//evil.example/x", "/"), ("https://evil.example/", "/")):
        page = Browser(app)
        page.get("/login")
        response = page.post(f"/login?next={target}", {"user": "admin", "password": PASSWORD})
        assert response.headers["Location"] == expected


def test_pages_carry_the_security_headers(browser):
    response = browser.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    assert "<script" not in re.sub(r'<script src="/static/dpl.js[^>]*></script>', "", response.get_data(as_text=True))


# -- forms -----------------------------------------------------------------------------------


def test_a_refused_value_shows_next_to_its_field_and_nothing_is_saved(browser, stocked):
    browser.get("/containers/new")
    response = browser.post("/containers/new", {"name": "web3", "host": "local", "image": "dpl-base",
                                                "profiles": "default", "memory": "lots", "notes": "kept"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "use a number and a unit" in field_error(page, "memory") and field_error(page, "name") is None
    # What was typed is still there, as it was typed.
    assert 'value="web3"' in page and ">kept</textarea>" in page and ">default</textarea>" in page
    assert [c["name"] for c in stocked.list_containers()] == ["web1", "web2"] and stocked.list_jobs() == []

    browser.get("/apps/shop/web/edit")
    response = browser.post("/apps/shop/web/edit", {"repo": "https://git.example.com/shop/web.git",
                                                    "domains": "shop.example.com bad_domain!", "port": "3000",
                                                    "start_command": "npm start", "health_path": "/",
                                                    "keep_releases": "5", "keep_backups": "5"})
    assert response.status_code == 422 and field_error(response.get_data(as_text=True), "domains")
    assert stocked.get_app("shop", "web")["domains"] == []

    # Digits that are not ASCII ones are refused, not a crash.
    response = browser.post("/apps/shop/web/edit", {"repo": "https://git.example.com/shop/web.git",
                                                    "keep_releases": "\u00b2"})
    assert response.status_code == 422 and field_error(response.get_data(as_text=True), "keep_releases")

    browser.get("/apps/new")
    response = browser.post("/apps/new", {"project": "shop", "name": "Bad Name", "repo": "https://x.example/r.git"})
    assert response.status_code == 422 and field_error(response.get_data(as_text=True), "name")


def test_creating_a_container_records_it_and_queues_its_creation(browser, stocked):
    browser.get("/containers/new")
    # As a browser sends it: every input, the address left empty (the next free one).
    response = browser.post("/containers/new", {"name": "web3", "host": "local", "image": "dpl-base",
                                                "profiles": "default", "memory": "1GiB", "cpu": "", "disk": "",
                                                "ipv4": "", "notes": ""})
    assert response.status_code == 302, field_error(response.get_data(as_text=True), "ipv4")
    job = stocked.list_jobs()[0]
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert (job["kind"], job["target"], job["who"]) == ("container-create", "container/web3", "user:admin")
    assert stocked.get_container("web3")["limits"] == {"cpu": None, "memory": "1GiB", "disk": None}
    assert f"job {job['id']} queued" in browser.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_a_taken_name_is_a_conflict_said_above_the_form(browser, stocked):
    browser.get("/projects/new")
    response = browser.post("/projects/new", {"name": "shop", "container": "web1"})
    assert response.status_code == 422 or response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)


def test_unknown_records_are_404_pages(browser, stocked):
    for path in ("/containers/nope", "/projects/nope", "/apps/shop/nope", "/jobs/999"):
        response = browser.get(path)
        assert response.status_code == 404 and "does not exist" in response.get_data(as_text=True), path


def test_a_secret_is_set_shown_as_set_never_shown_and_removed(browser, stocked):
    browser.get("/apps/shop/web")
    assert browser.post("/apps/shop/web/env", {"name": "API_KEY", "value": SECRET, "secret": "on"}
                        ).status_code == 302
    assert browser.post("/apps/shop/web/env", {"name": "MODE", "value": "production"}).status_code == 302
    page = browser.get("/apps/shop/web").get_data(as_text=True)
    assert "API_KEY" in page and "secret: set" in page and "production" in page
    assert SECRET not in page
    assert stocked.app_secrets("shop", "web") == {"API_KEY": SECRET}
    # A refused secret: said without its value, nothing saved.
    response = browser.post("/apps/shop/web/env", {"name": "TOKEN", "value": "ab\ncd", "secret": "on"})
    assert response.status_code == 422 and "ab\ncd" not in response.get_data(as_text=True)
    assert "TOKEN" not in stocked.get_app("shop", "web")["secret_env"]
    # Removed: gone from the registry.
    assert browser.post("/apps/shop/web/env", {"unset": "API_KEY"}).status_code == 302
    assert stocked.app_secrets("shop", "web") == {}
    assert '<td class="mono">API_KEY</td>' not in browser.get("/apps/shop/web").get_data(as_text=True)


def test_a_projects_deploy_key_and_token_are_set_from_its_page_and_never_shown(browser, stocked):
    page = browser.get("/projects/shop").get_data(as_text=True)
    assert "No deploy key." in page and "No token." in page
    assert browser.post("/projects/shop/git/key").status_code == 302
    access = stocked.git_access("shop")
    page = browser.get("/projects/shop").get_data(as_text=True)
    assert access["deploy_key"]["public"] in page and access["deploy_key"]["fingerprint"] in page
    assert "PRIVATE KEY" not in page
    browser.post("/projects/shop/git/key", {"rotate": "1"})
    assert stocked.git_access("shop")["deploy_key"]["public"] != access["deploy_key"]["public"]
    # A refused token is said without its value; a good one is kept, shown as set only.
    refused = browser.post("/projects/shop/git/token", {"token": "a b"}, follow_redirects=True)
    assert "a token is 8 to 4096" in refused.get_data(as_text=True) and stocked.git_access("shop")["token"] is None
    browser.post("/projects/shop/git/token", {"token": SECRET, "user": "deployer"})
    page = browser.get("/projects/shop").get_data(as_text=True)
    assert "Set for user <code>deployer</code>" in page and SECRET not in page
    assert stocked.git_credentials("shop")["token"] == SECRET
    stocked.pin_host_keys("shop", ["git.example.com ssh-ed25519 "
                                   "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"])
    assert "git.example.com" in browser.get("/projects/shop").get_data(as_text=True)
    # Removed: gone from the registry.
    browser.post("/projects/shop/git/host-keys/forget", {"host": "git.example.com"})
    browser.post("/projects/shop/git/token/remove")
    browser.post("/projects/shop/git/key/remove")
    assert stocked.git_credentials("shop") == {"known_hosts": []}


# -- actions ---------------------------------------------------------------------------------


def test_a_destructive_action_asks_first_then_queues_its_job(browser, stocked):
    page = browser.get("/containers/web1/delete").get_data(as_text=True)
    assert "Delete container web1?" in page and "shop/web" in page and stocked.list_jobs() == []
    # Posting without the confirmation only shows the question again.
    assert "Delete container web1?" in browser.post("/containers/web1/delete").get_data(as_text=True)
    assert stocked.list_jobs() == []
    response = browser.post("/containers/web1/delete", {"confirmed": "1", "force": "on"})
    job = stocked.list_jobs()[0]
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert (job["kind"], job["params"]["force"]) == ("container-delete", True)
    # A start needs no confirmation.
    browser.get("/containers/web2")
    assert browser.post("/containers/web2/start").status_code == 302
    assert stocked.list_jobs()[0]["kind"] == "container-start"
    assert browser.get("/containers/web2/explode").status_code == 404


def test_deploy_with_a_ref_then_cancel_it(browser, stocked):
    browser.get("/apps/shop/web")
    response = browser.post("/apps/shop/web/deploy", {"ref": "v1.2"})
    job = stocked.list_jobs()[0]
    assert (job["kind"], job["params"], job["status"]) == ("deploy", {"app": "shop/web", "ref": "v1.2"}, "queued")
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Job #{job['id']}: deploy of" in page and "Cancel</button>" in page
    assert browser.post(f"/jobs/{job['id']}/cancel").status_code == 302
    assert stocked.get_job(job["id"])["status"] == "canceled"
    assert "Cancel</button>" not in browser.get(f"/jobs/{job['id']}").get_data(as_text=True)


def test_the_backups_are_asked_for_with_a_post(browser, stocked):
    page = browser.get("/apps/shop/web/backups").get_data(as_text=True)
    assert "List the backups and releases" in page and stocked.list_jobs() == []  # a GET makes no job


def test_the_webhook_secret_is_shown_once_with_its_url(browser, stocked):
    browser.get("/apps/shop/web")
    page = browser.post("/apps/shop/web/webhook").get_data(as_text=True)
    secret = stocked.webhook_secret("shop", "web")
    assert secret in page and "http://localhost/hooks/shop/web" in page
    assert secret not in browser.get("/apps/shop/web").get_data(as_text=True)
    browser.post("/apps/shop/web/webhook", {"off": "1"})
    assert stocked.webhook_secret("shop", "web") is None


# -- jobs ------------------------------------------------------------------------------------


def test_the_job_list_filters_and_pages(browser, stocked):
    for number in range(120):
        job_id, _replaced = stocked.queue_job("deploy" if number % 2 else "rollback", "app/shop/web", "tester")
        if number % 3 == 0:
            stocked.finish_job(job_id, "failed", summary="broken")
    first = browser.get("/jobs/").get_data(as_text=True)
    ids = [int(found) for found in re.findall(r'href="/jobs/(\d+)"', first)]
    assert ids == list(range(120, 70, -1))
    older = re.search(r'href="(/jobs/\?before=\d+)"', first).group(1)
    second = [int(found) for found in re.findall(r'href="/jobs/(\d+)"', browser.get(older).get_data(as_text=True))]
    assert second == list(range(70, 20, -1))
    failed = browser.get("/jobs/?status=failed&kind=rollback").get_data(as_text=True)
    shown = {int(found) for found in re.findall(r'href="/jobs/(\d+)"', failed)}
    expected = {job["id"] for job in stocked.list_jobs(status="failed", kind="rollback", limit=1000)}
    assert shown == expected and len(expected) == 20


def test_the_job_page_streams_its_events_and_resumes_after_the_last_seen(browser, stocked):
    job_id, _replaced = stocked.queue_job("deploy", "app/shop/web", "tester", params={"app": "shop/web"})
    stocked.claim_jobs("test", 1)
    for step in ("lock", "fetch"):
        stocked.add_job_event(job_id, "note", {"msg": f"step {step}"})
    stocked.finish_job(job_id, "successful", summary="deployed")
    stream = browser.get(f"/jobs/{job_id}/events").get_data(as_text=True)
    ids = [int(found) for found in re.findall(r"^id: (\d+)$", stream, re.M)]
    assert ids == list(range(1, len(ids) + 1)) and "event: finished" in stream and stream.endswith(
        "event: end\ndata: {}\n\n")
    assert browser.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "²"}).status_code == 400
    resumed = browser.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "3"}).get_data(as_text=True)
    assert [int(found) for found in re.findall(r"^id: (\d+)$", resumed, re.M)] == ids[3:]
    page = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'class="done" data-step="health check"' in page


# -- tokens, users, audit --------------------------------------------------------------------


def test_tokens_are_shown_once_listed_without_themselves_and_revoked(browser, stocked):
    browser.get("/tokens")
    refused = browser.post("/tokens", {"name": "ci", "scope": "write", "expires": "30", "password": "wrong-one"})
    assert refused.status_code == 401 and stocked.list_tokens() == []  # lasting access asks for the password
    page = browser.post("/tokens", {"name": "ci", "scope": "write", "expires": "30", "password": PASSWORD}
                        ).get_data(as_text=True)
    token = re.search(r"dpl_[A-Za-z0-9_-]{20,}", page).group(0)
    assert stocked.check_token(token)["name"] == "ci"
    assert token not in browser.get("/tokens").get_data(as_text=True)
    browser.post("/tokens/ci/revoke")
    assert stocked.get_token("ci")["revoked_at"] is not None


def test_the_audit_page_shows_who_did_what_from_the_web(browser, stocked):
    browser.get("/apps/shop/web")
    browser.post("/apps/shop/web/env", {"name": "API_KEY", "value": SECRET, "secret": "on"})
    page = browser.get("/audit").get_data(as_text=True)
    assert "user:admin" in page and "app.edit" in page and "secret_env" in page and SECRET not in page


def test_the_dashboard_says_how_to_reach_each_app(browser, stocked):
    stocked.update_app("shop", "web", domains=["shop.example.com"])
    job_id, _replaced = stocked.queue_job("deploy", "app/shop/web", "tester")
    stocked.claim_jobs("test", 1)
    stocked.finish_job(job_id, "successful", commit="0123456789abcdef", summary="deployed")
    page = browser.get("/").get_data(as_text=True)
    address = stocked.get_container("web1")["ipv4"]
    for expected in ("https://shop.example.com/", f"{address}:3000", "/root/apps/shop/web",
                     "lxc exec web1 --cwd /root/apps/shop/web -- sh -l", "0123456789ab", f"#{job_id} deploy"):
        assert expected in page, expected


# -- monitoring's charts -----------------------------------------------------------------------


def test_the_charts_series_is_thinned_with_counters_as_rates(browser, stocked):
    now = time.time()
    with stocked.transaction():
        for number in range(1000):  # a sample every 3 s for the last 50 minutes
            stocked.add_samples(now - 3000 + number * 3, {"container/web1": {
                "status": "Running", "cpu": number % 10, "rx": number * 300, "memory": 1000}})
    answer = browser.get("/monitoring/series?target=container/web1&range=hour").get_json()
    points = answer["points"]
    assert 200 <= len(points) <= 240  # thinned for a chart
    assert all(abs(point["rx_rate"] - 100) < 1e-6 for point in points)  # 300 bytes every 3 s
    assert all("rx" not in point for point in points) and points[0]["cpu"] == 2.0  # the average of 0..4
    assert browser.get("/monitoring/series?target=container/web1&range=year").status_code == 400
    assert browser.get("/monitoring/series?target=../etc&range=day").status_code == 422
    page = browser.get("/containers/web1").get_data(as_text=True)
    assert 'data-target="container/web1"' in page and 'data-field="cpu"' in page
    assert "Running" in page  # what monitoring saw last, over the recorded "unknown"


def test_an_apps_up_chart_draws_raw_samples_and_the_page_shows_service_and_nginx(browser, stocked):
    now = time.time()
    with stocked.transaction():
        for number in range(20):
            stocked.add_samples(now - 600 + number * 30, {"app/shop/web": {
                "up": number % 4 != 0, "http": 200, "latency_ms": 3.0, "service": "active", "restarts": 0,
                "live_commit": "0123456789ab", "live_release": "20261205T101010Z-0123456789ab",
                "requests": 7, "errors_4xx": 1, "errors_5xx": 2, "upstream_ms": 4.5, "upstream_ms_max": 9.0}})
    points = browser.get("/monitoring/series?target=app/shop/web&range=hour").get_json()["points"]
    assert [point["up"] for point in points] == [0 if number % 4 == 0 else 1 for number in range(20)]
    page = browser.get("/apps/shop/web").get_data(as_text=True)
    for expected in ("0123456789ab", "7 request(s)", "2 5xx", "4.5 ms", 'data-field="errors_5xx"'):
        assert expected in page, expected


def test_the_dashboard_offers_to_import_an_unknown_container_and_shows_troubles(browser, stocked):
    stocked.set_state("drift/unknown-container/container/stray", "present",
                      "LXD on local has a container stray that the registry does not know")
    stocked.set_state("trouble/app-errors/app/shop/web", "present", "shop/web answered 9 of 20 requests with a 5xx")
    stocked.set_state("trouble/app-restarted/app/shop/web", "cleared", "shop/web's service restarted")
    page = browser.get("/").get_data(as_text=True)
    assert 'href="/containers/import/stray"' in page and "answered 9 of 20 requests" in page
    assert "service restarted" not in page  # cleared: no longer shown


def test_the_vhost_import_page_shows_where_each_block_would_go(browser, stocked, tmp_path):
    (tmp_path / "nginx" / "sites-available").mkdir(parents=True)
    stocked.update_host("local", nginx_sites_dir=str(tmp_path / "nginx" / "sites-available"))
    legacy = tmp_path / "nginx" / "sites-available" / "default"
    address = stocked.get_container("web1")["ipv4"]
    legacy.write_text("server {\n  listen 80;\n  server_name shop.example.com;\n  return 301 https://$host;\n}\n"
                      "server {\n  listen 443 ssl;\n  server_name shop.example.com;\n"
                      f"  location / {{ proxy_pass http://{address}:3000; }}\n}}\n"
                      "server {\n  listen 443 ssl;\n  server_name x.example.com;\n"
                      "  location / { proxy_pass http://10.210.0.250:3000; }\n}\n")
    assert 'href="/vhosts/import"' in browser.get("/").get_data(as_text=True)
    page = browser.get(f"/vhosts/import?file={legacy}").get_data(as_text=True)
    assert "shop/web gets shop.example.com." in page and ">Import</button>" in page
    assert "goes (DPL" in page and "stays: it proxies to 10.210.0.250" in page
    assert legacy.read_text().count("server {") == 3  # looking changes nothing
    assert browser.get(f"/vhosts/import?file={tmp_path}/nginx/nope").status_code == 404
    # No file outside nginx's folder is read through the page (the dpl command may read any).
    (tmp_path / "secret").write_text("root:x:0:0\n")
    refused = browser.get(f"/vhosts/import?file={tmp_path}/nginx/../secret")
    assert refused.status_code == 422 and "root:x" not in refused.get_data(as_text=True)
