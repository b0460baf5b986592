"""Reading an operator's nginx file (crossplane, for real) and planning what to adopt; taking
server blocks out of the text with everything else left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpl_web import vhost_import
from dpl_web.errors import DplError

LEGACY = """\
# Hand-written, one block per domain.
map $http_upgrade $connection_upgrade { default upgrade; '' close; }

server {
    listen 80;
    server_name shop.example.com www.shop.example.com;
    return 301 https://$host$request_uri;
}

server {
    listen 443 ssl;
    server_name shop.example.com www.shop.example.com;
    ssl_certificate /etc/ssl/shop.crt;
    ssl_certificate_key /etc/ssl/shop.key;
    location / {
        proxy_pass http://{web1}:3001;  # the live slot; "}" in a comment
        add_header X-Note "a } in quotes";
    }
}

server {
    listen 443 ssl;
    server_name blog.example.com;
    location / { proxy_pass http://{web2}:3000/; }
}

server {
    listen 443 ssl;
    server_name ~^(?<sub>.+)\\.example\\.com$;
    location / { proxy_pass http://{web1}:3000; }
}

server {
    listen 443 ssl;
    server_name other.example.com;
    location / { proxy_pass http://10.210.0.250:8080; }
}

server {
    listen 443 ssl;
    server_name api.example.com;
    location / { proxy_pass http://{web1}:4000; }
}
"""


@pytest.fixture
def legacy(tmp_path: Path, stocked) -> Path:
    path = tmp_path / "default"
    path.write_text(LEGACY.replace("{web1}", stocked.get_container("web1")["ipv4"])
                    .replace("{web2}", stocked.get_container("web2")["ipv4"]))
    return path


def test_each_block_goes_to_its_app_or_stays_with_the_reason(stocked, legacy):
    found = vhost_import.plan(stocked, legacy)
    assert found["adopt"] == {"shop/web": ["shop.example.com", "www.shop.example.com"],
                              "blog/site": ["blog.example.com"]}
    by_line = {block.line: block for block in found["blocks"]}
    text = legacy.read_text().splitlines()
    assert all(text[line - 1].startswith("server {") for line in by_line)
    outcome = [(block.names[0] if block.names else "", block.app, block.why) for block in found["blocks"]]
    assert [app for _name, app, _why in outcome] == ["(redirect)", "shop/web", "blog/site", None, None, None]
    assert "not domains DPL serves" in outcome[3][2]
    assert "no recorded container's address" in outcome[4][2]
    assert "no app of container web1 listens on port 4000" in outcome[5][2]


def test_a_domain_of_another_app_stays(stocked, legacy):
    stocked.update_app("blog", "site", domains=["shop.example.com"])
    found = vhost_import.plan(stocked, legacy)
    assert "shop/web" not in found["adopt"]
    redirect, shop = found["blocks"][0], found["blocks"][1]
    assert shop.app is None and "belongs to blog/site" in shop.why
    assert redirect.app is None  # its names are not all being imported


def test_blocks_are_taken_out_and_nothing_else_changes(stocked, legacy):
    found = vhost_import.plan(stocked, legacy)
    text = legacy.read_text()
    left = vhost_import.without_blocks(text, [block.line for block in found["blocks"] if block.app])
    parts = text.split("\n\n")  # the comment and map, then one block each
    adopted = [part for part in parts if "shop.example.com" in part or "blog.example.com" in part]
    assert len(adopted) == 3
    expected = text
    for part in adopted:
        expected = expected.replace(part + "\n", "", 1)
    assert left == expected  # to the byte: comments, the map and the other blocks as they were
    (legacy.parent / "left").write_text(left)
    assert [block.names for block in vhost_import.read_blocks(legacy.parent / "left")] == [
        ["~^(?<sub>.+)\\.example\\.com$"], ["other.example.com"], ["api.example.com"]]


def test_a_file_nginx_would_refuse_is_reported(tmp_path: Path):
    broken = tmp_path / "default"
    broken.write_text("server {\n    listen 80;\n")
    with pytest.raises(DplError, match="line"):
        vhost_import.read_blocks(broken)
