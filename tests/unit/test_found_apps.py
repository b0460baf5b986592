"""Reading what a container made outside DPL holds: a clone's remote without its credentials,
listening sockets from /proc/net/tcp, and the offers made of the script's output."""

from __future__ import annotations

from dpl_web import found_apps


def test_a_remote_loses_its_user_and_token():
    config = '[core]\n\tbare = false\n[remote "origin"]\n\turl = {}\n'
    assert found_apps._remote(config.format("https://deploy:t0ken@git.example.test:8443/shop/web.git")) == \
        "https://git.example.test:8443/shop/web.git"
    assert found_apps._remote(config.format("git@git.example.test:shop/web.git")) == "git@git.example.test:shop/web.git"
    assert found_apps._remote('[remote "upstream"]\n\turl = https://x.test/y.git\n') is None


def test_offers_from_the_scripts_output():
    output = "\n".join([
        "@app /root/apps/shop/web", "@package", '{"name": "shop-web", "scripts": {"start": "node a.js"}}', "@end",
        "@app /root/apps/shop/.releases",
        "@app /root/apps/blog/api", "@package", "not json", "@end",
        "@listen",
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1",
        "   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1",
        "@sockets",
        "/root/apps/shop/.releases/web/20261205T000000Z-0123456789ab socket:[4242]",
        "/root/apps/blog/api socket:[4343]",  # connected, not listening
    ])
    offers = found_apps.parse(output)
    assert [(offer["project"], offer["name"], offer["package_name"], offer["start"], offer["port"])
            for offer in offers] == [("blog", "api", None, None, None), ("shop", "web", "shop-web", "npm start", 3000)]
    assert found_apps.add_command("legacy", offers[1]) == \
        "dpl app add shop/web --container legacy --repo REPO-URL --port 3000"
