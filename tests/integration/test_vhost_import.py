"""`dpl vhost import` on the host's real nginx: a hand-written file with a redirect block and
two proxies to a real app (and one block for an address DPL does not know) is adopted: the
domains get DPL's vhosts, the blocks leave the file (a copy kept), the app answers all along,
and importing again changes nothing."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dpl_web.collection import nginx
from dpl_web.errors import JobFailed
from tests.conftest import TEST_PREFIX
from tests.support.cli import curl, served

pytestmark = [pytest.mark.lxd, pytest.mark.slow]

SITES = Path("/etc/nginx/sites-available")
ENABLED = Path("/etc/nginx/sites-enabled")

LEGACY = """\
# Written by hand before DPL.
server {{
    listen 80;
    server_name {a} {b};
    return 301 https://$host$request_uri;
}}

server {{
    listen 443 ssl;
    server_name {a};
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{
        proxy_pass http://{address}:3000;
        proxy_set_header Host $host;
    }}
}}

server {{
    listen 443 ssl;
    server_name {b};
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{ proxy_pass http://{address}:3000; }}
}}

server {{
    listen 443 ssl;
    server_name {other};
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{ proxy_pass http://10.210.0.254:8080; }}
}}
"""


def test_hand_written_server_blocks_are_adopted(dpl, repos, tmp_path):
    project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
    dpl.made.append(project)
    dpl("deploy", "--from-json", "-", stdin=json.dumps({
        "name": "web", "project": project, "repo": repos[1], "ref": "v1", "port": 3000, "health_path": "/health"}))
    address = dpl.json("container", "show", project)["container"]["ipv4"]
    a, b, other = (f"{name}.{project}.dpl.test" for name in ("a", "b", "other"))
    crt, key = tmp_path / "legacy.crt", tmp_path / "legacy.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "30", "-subj", "/CN=legacy"],
                   check=True, capture_output=True)
    legacy, link = SITES / f"{project}-legacy", ENABLED / f"{project}-legacy"
    original = LEGACY.format(a=a, b=b, other=other, crt=crt, key=key, address=address)
    legacy.write_text(original)
    link.symlink_to(legacy)
    try:
        subprocess.run(["nginx", "-s", "reload"], check=True)
        for _attempt in range(40):  # until nginx's new workers run
            if served(a) == served(b) == "v1":
                break
            time.sleep(0.25)
        assert served(a) == served(b) == "v1"  # the hand-written blocks serve it

        preview = dpl.json("vhost", "import", str(legacy), "--dry-run")
        assert preview["adopt"] == {f"{project}/web": [a, b]}
        assert [block["app"] for block in preview["blocks"]] == ["(redirect)", f"{project}/web", f"{project}/web",
                                                                 None]
        assert "10.210.0.254" in preview["blocks"][3]["why"]
        assert legacy.read_text() == original and dpl.json("app", "show", f"{project}/web")["app"]["domains"] == []

        # Another hand-written file also answers for a: nginx would ignore one of them, so
        # DPL's vhost is refused, and the file and the app's record are put back as they were.
        clash, clash_link = SITES / f"{project}-clash", ENABLED / f"{project}-clash"
        blocks = LEGACY.split("server {{")  # the comment, then each block's text
        clash.write_text(("server {{" + blocks[2]).format(a=a, crt=crt, key=key, address=address))
        clash_link.symlink_to(clash)
        try:
            refused = dpl("vhost", "import", str(legacy), expect=JobFailed.exit_code)
            assert "nothing was changed and nginx was not reloaded" in refused.stderr, refused.stderr
            assert legacy.read_text() == original and dpl.json("app", "show", f"{project}/web")["app"]["domains"] == []
            # The job went on to write b's vhost after refusing a's: it is removed again.
            assert not (SITES / nginx.file_name(a)).exists() and not (SITES / nginx.file_name(b)).exists()
            assert served(a) == served(b) == "v1"
        finally:
            clash_link.unlink(missing_ok=True)
            clash.unlink(missing_ok=True)

        done = dpl.json("vhost", "import", str(legacy))
        assert dpl.json("app", "show", f"{project}/web")["app"]["domains"] == [a, b]
        for domain in (a, b):
            assert (SITES / nginx.file_name(domain)).read_text().startswith(nginx.MARKER)
            assert (ENABLED / nginx.file_name(domain)).exists()
        assert Path(done["backup"]).read_text() == original
        left = legacy.read_text()
        assert left.startswith("# Written by hand before DPL.\n") and other in left
        assert a not in left and b not in left and left.count("server {") == 1
        assert served(a) == served(b) == "v1"  # now through DPL's vhosts
        redirect = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", f"{a}:80:127.0.0.1",
                        f"http://{a}/x")
        assert redirect.stdout == f"301 https://{a}/x"

        again = dpl.json("vhost", "import", str(legacy))
        assert again["adopt"] == {} and again["backup"] is None and legacy.read_text() == left
    finally:
        link.unlink(missing_ok=True)
        for leftover in [legacy, *SITES.glob(f"{project}-legacy.dpl-*.bak")]:
            leftover.unlink(missing_ok=True)
        subprocess.run(["nginx", "-s", "reload"], check=False)
