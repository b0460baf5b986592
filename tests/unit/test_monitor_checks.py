"""The monitor's checks that need no container: vhosts and their certificates (real files,
real openssl certificates), troubles and their thresholds, the unit that serves an app."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dpl_web import monitor
from dpl_web.collection import nginx, releases


def certificate(directory: Path, domain: str, days: int) -> tuple[str, str]:
    crt, key = directory / f"{domain}.crt", directory / f"{domain}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", str(days), "-subj", f"/CN={domain}"],
                   check=True, capture_output=True)
    return str(crt), str(key)


def write_vhost(sites: Path, domain: str, upstream: str, days: int, enable: bool = True) -> Path:
    crt, key = certificate(sites.parent, domain, days)
    path = sites / nginx.file_name(domain)
    path.write_text(nginx.render_vhost(domain, upstream, 3000, crt, key))
    if enable:
        os.symlink(path, sites.parent / monitor.SITES_ENABLED / path.name)
    return path


def app(name: str, *domains: str, live_port: int | None = None) -> dict:
    return {"project": "shop", "name": name, "domains": list(domains), "live_port": live_port}


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    (tmp_path / "sites-available").mkdir()
    (tmp_path / monitor.SITES_ENABLED).mkdir()
    return tmp_path / "sites-available"


def test_vhost_drift_finds_missing_orphaned_and_expiring(sites: Path):
    write_vhost(sites, "good.test", "10.210.0.20", 365)
    write_vhost(sites, "soon.test", "10.210.0.20", 3)
    write_vhost(sites, "disabled.test", "10.210.0.20", 365, enable=False)
    write_vhost(sites, "gone.test", "10.210.0.21", 365)  # its app was removed behind DPL's back
    write_vhost(sites, "dpl.web.test", "127.0.0.1", 365)  # the web app's own vhost
    (sites / "hand.test.conf").write_text("server { server_name hand.test; }\n")  # an operator's own
    apps = [app("web", "good.test", "soon.test"), app("api", "disabled.test", "absent.test")]
    found = {(problem["kind"], problem["target"]) for problem in monitor.vhost_drift(sites, apps)}
    assert found == {("certificate-expiring", "app/shop/web"), ("vhost-missing", "app/shop/api"),
                     ("vhost-orphaned", "vhost/gone.test")}
    messages = " ".join(problem["message"] for problem in monitor.vhost_drift(sites, apps))
    assert "absent.test" in messages and "disabled.test" in messages and "soon.test" in messages
    assert "good.test" not in messages and "hand.test" not in messages and "dpl.web.test" not in messages
    # While a job writes an app's vhosts, their absence is not drift (its other files still count).
    found = {(problem["kind"], problem["target"]) for problem in monitor.vhost_drift(sites, apps, {"app/shop/api"})}
    assert ("vhost-missing", "app/shop/api") not in found and ("vhost-orphaned", "vhost/gone.test") in found


def test_certificate_days_left(sites: Path):
    crt, _key = certificate(sites, "x.test", 3)
    assert 2.9 < monitor.certificate_days_left(Path(crt)) <= 3
    assert monitor.certificate_days_left(sites / "nope.crt") is None


@pytest.mark.parametrize(("figures", "kinds"), [
    ({"restarts": 0, "requests": 100, "errors_5xx": 4}, set()),
    ({"restarts": 1}, {"app-restarted"}),
    ({"requests": 100, "errors_5xx": monitor.ERRORS_MIN}, set()),  # 5 % of the requests
    ({"requests": 40, "errors_5xx": monitor.ERRORS_MIN}, {"app-errors"}),
    ({"requests": 4, "errors_5xx": 4}, set()),  # too few to say
    ({"restarts": None, "requests": None, "errors_5xx": None}, set()),
])
def test_troubles_and_their_thresholds(figures, kinds):
    assert {trouble["kind"] for trouble in monitor._app_troubles("shop/web", figures)} == kinds


def test_the_unit_is_the_live_slots_or_the_apps_one():
    paths = releases.AppPaths("shop", "web")
    assert monitor.service_unit(app("web")) == paths.unit
    assert monitor.service_unit(app("web", live_port=3001)) == paths.slot(3001).unit == "dpl-shop_web@3001.service"


def test_the_commit_of_a_release_id():
    assert monitor._release_commit("20261205T101010Z-0123456789ab") == "0123456789ab"
    # A second release within the same second: the commit is still the commit.
    assert monitor._release_commit("20261205T101010Z-0123456789ab.2") == "0123456789ab"
    assert monitor._release_commit("20261205T101010Z-unknown") is None
    assert monitor._release_commit("") is None and monitor._release_commit("web") is None
