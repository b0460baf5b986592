"""The dpl.platform.registry inventory plugin, through the real ansible-inventory and ansible.

No LXD is needed: the hosts are only described (and `debug` runs on the controller). Each
test builds a known registry in tmp_path and points DPL_REGISTRY (or the config) at it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dpl_web.paths import REPO_ROOT
from dpl_web.registry import Registry

BIN = Path(sys.executable).parent
REPO = "https://git.example.com/shop/web.git"
TEMPLATE = "{{ lookup('pipe', 'id') }}"

CONSTRUCTED = {
    "plugin": "dpl.platform.registry",
    "strict": True,
    "compose": {
        "dpl_app_count": "dpl_projects.values() | map(attribute='apps') | map('length') | sum",
        "dpl_start_commands": "dpl_projects.values() | map(attribute='apps') | map('dict2items') | flatten"
                              " | map(attribute='value.start_command') | list",
        "dpl_where": "inventory_hostname ~ '@' ~ dpl_host.name",
    },
    "groups": {
        "has_apps": "dpl_projects | length > 0",
        "on_remote": "'dpl_host_remote' in group_names",
    },
    "keyed_groups": [
        {"prefix": "image", "key": "dpl_container.image"},
        {"prefix": "lxd", "key": "dpl_host.name"},
    ],
}


def plain(value):
    """ansible-inventory 2.19 prints untrusted strings as {"__ansible_unsafe": ...}: unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def run(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                       **(env or {}))
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=environment, check=False,
                          timeout=120)


@pytest.fixture
def registry_path(tmp_path, monkeypatch):
    path = tmp_path / "registry.sqlite3"
    monkeypatch.setenv("DPL_REGISTRY", str(path))
    return path


@pytest.fixture
def known_registry(registry_path):
    """Two LXD hosts, four containers (one without projects), three projects, four apps."""
    with Registry.open(registry_path) as reg:
        reg.add_host("local", public_ipv4="203.0.113.10")
        reg.add_host("remote", endpoint="https://lxd.example.com:8443", client_cert="/etc/dpl/client.crt",
                     client_key="/etc/dpl/client.key", server_cert="/etc/dpl/remote.crt", bridge_ipv4="10.220.0.1/24")
        reg.add_container("web1", memory="1GiB", cpu=2)
        reg.add_container("web2", image="debian/12")
        reg.add_container("spare")
        reg.add_container("edge1", "remote")
        reg.set_container_status("web1", "Running")
        reg.add_app("my-shop", "web", REPO, container="web1", ref="v1.2", port=3000,
                    domains=["shop.example.com", "www.shop.example.com"], start_command=f"node {TEMPLATE}.js",
                    deploy_script="scripts/deploy.sh", env={"NODE_ENV": "production", "JINJA": "{{ 7 * 6 }}"},
                    secret_env={"DB_PASSWORD": "hunter2"}, health_path="/healthz", keep_releases=3)
        reg.add_app("my-shop", "api-v2", "git@github.com:shop/api.git", port=4000)
        reg.add_app("blog", "site", "https://git.example.com/blog.git", container="web2")
        reg.add_app("static", "www", "https://git.example.com/www.git", container="edge1")
    return registry_path


def write_config(directory: Path, config: dict, name: str = "dpl.yml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def inventory_list(config: Path, env: dict | None = None) -> dict:
    proc = run("ansible-inventory", "-i", str(config), "--list", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr, proc.stderr
    return proc


def test_list_from_the_checkouts_config(known_registry):
    proc = inventory_list(REPO_ROOT / "inventory" / "dpl.yml")
    data = json.loads(proc.stdout)
    hostvars = plain(data["_meta"]["hostvars"])
    assert sorted(hostvars) == ["edge1", "spare", "web1", "web2"]
    assert "hunter2" not in proc.stdout

    web1 = hostvars["web1"]
    assert web1["ansible_connection"] == "dpl.platform.lxd"
    assert web1["ansible_python_interpreter"] == "/usr/bin/python3"
    assert web1["dpl_lxd_instance"] == "web1"
    assert web1["dpl_lxd_endpoint"] == "unix:"
    assert "dpl_lxd_client_cert" not in web1
    assert web1["dpl_registry"] == str(known_registry)
    assert web1["dpl_host"] == {"name": "local", "endpoint": "unix:", "public_ipv4": "203.0.113.10",
                                "nginx_sites_dir": "/etc/nginx/sites-available", "bridge": "dplbr0",
                                "bridge_ipv4": "10.210.0.1/24"}
    container = web1["dpl_container"]
    assert (container["name"], container["host"], container["image"], container["ipv4"], container["status"]) == (
        "web1", "local", "dpl-base", "10.210.0.10", "Running")
    assert container["limits"] == {"cpu": "2", "memory": "1GiB", "disk": None}
    assert container["profiles"] == ["default"]

    assert sorted(web1["dpl_projects"]) == ["my-shop"]
    shop = web1["dpl_projects"]["my-shop"]
    assert shop["name"] == "my-shop" and sorted(shop["apps"]) == ["api-v2", "web"]
    assert shop["apps"]["web"] == {
        "project": "my-shop", "name": "web", "repo": REPO, "ref": "v1.2", "port": 3000,
        "ports": [3000, 3001], "live_port": None,
        "domains": ["shop.example.com", "www.shop.example.com"], "deploy_script": "scripts/deploy.sh",
        "start_command": f"node {TEMPLATE}.js", "health_path": "/healthz", "keep_releases": 3, "keep_backups": 5,
        "env": {"JINJA": "{{ 7 * 6 }}", "NODE_ENV": "production"}, "secret_env_names": ["DB_PASSWORD"],
        "app_dir": "/root/apps/my-shop/web", "deploy_dir": "/root/deploy/my-shop/web",
        "backup_dir": "/root/backups/my-shop/web",
        # The controller's copies of its backups: beside the registry the inventory was read from.
        "host_backup_dir": str(known_registry.parent / "backups" / "my-shop" / "web"),
    }
    assert hostvars["spare"]["dpl_projects"] == {}

    edge1 = hostvars["edge1"]
    assert edge1["dpl_lxd_endpoint"] == "https://lxd.example.com:8443"
    assert (edge1["dpl_lxd_client_cert"], edge1["dpl_lxd_client_key"], edge1["dpl_lxd_server_cert"]) == (
        "/etc/dpl/client.crt", "/etc/dpl/client.key", "/etc/dpl/remote.crt")
    assert edge1["dpl_container"]["ipv4"] == "10.220.0.10"

    def hosts(group):
        return sorted(data.get(group, {}).get("hosts", []))

    assert hosts("dpl_containers") == ["edge1", "spare", "web1", "web2"]
    assert hosts("dpl_host_local") == ["spare", "web1", "web2"]
    assert hosts("dpl_host_remote") == ["edge1"]
    assert hosts("dpl_project_my_shop") == ["web1"]
    assert hosts("dpl_app_my_shop_web") == ["web1"]
    assert hosts("dpl_app_my_shop_api_v2") == ["web1"]
    assert hosts("dpl_project_blog") == hosts("dpl_app_blog_site") == ["web2"]
    assert hosts("dpl_app_static_www") == ["edge1"]


def test_a_job_reads_only_its_container(known_registry):
    """DPL_INVENTORY_CONTAINER (set by the jobs on an app or a project): that container, its
    LXD host and its apps, nothing of the rest of the registry."""
    proc = inventory_list(REPO_ROOT / "inventory" / "dpl.yml", env={"DPL_INVENTORY_CONTAINER": "edge1"})
    data = json.loads(proc.stdout)
    hostvars = plain(data["_meta"]["hostvars"])
    assert sorted(hostvars) == ["edge1"]
    assert sorted(hostvars["edge1"]["dpl_projects"]["static"]["apps"]) == ["www"]
    assert hostvars["edge1"]["dpl_lxd_endpoint"] == "https://lxd.example.com:8443"
    assert data["dpl_app_static_www"]["hosts"] == ["edge1"] and "dpl_host_local" not in data
    refused = run("ansible-inventory", "-i", str(REPO_ROOT / "inventory" / "dpl.yml"), "--list",
                  env={"DPL_INVENTORY_CONTAINER": "-bad name", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"})
    assert refused.returncode != 0 and "container: '-bad name' is not valid" in refused.stderr


def test_graph(known_registry):
    proc = run("ansible-inventory", "-i", str(REPO_ROOT / "inventory" / "dpl.yml"), "--graph")
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout
    for line in ("@dpl_containers:", "@dpl_host_local:", "@dpl_host_remote:", "@dpl_project_my_shop:",
                 "@dpl_app_my_shop_web:", "@dpl_app_my_shop_api_v2:", "@dpl_app_static_www:"):
        assert line in graph
    section = graph.split("@dpl_app_static_www:")[1].splitlines()
    assert section[1].strip() == "|  |--edge1" or "edge1" in section[1]


def test_constructed_compose_groups_and_keyed_groups(known_registry, tmp_path):
    config = write_config(tmp_path, CONSTRUCTED)
    data = json.loads(inventory_list(config).stdout)
    hostvars = plain(data["_meta"]["hostvars"])

    def hosts(group):
        return sorted(data.get(group, {}).get("hosts", []))

    assert hostvars["web1"]["dpl_app_count"] == 2
    assert hostvars["spare"]["dpl_app_count"] == 0
    assert hostvars["edge1"]["dpl_where"] == "edge1@remote"
    # A value from the registry stays literal, even through compose.
    assert f"node {TEMPLATE}.js" in hostvars["web1"]["dpl_start_commands"]
    assert hosts("has_apps") == ["edge1", "web1", "web2"]
    assert hosts("on_remote") == ["edge1"]
    assert hosts("image_dpl_base") == ["edge1", "spare", "web1"]
    assert hosts("image_debian_12") == ["web2"]
    assert hosts("lxd_local") == ["spare", "web1", "web2"] and hosts("lxd_remote") == ["edge1"]


def test_strict_compose_errors_name_the_host(known_registry, tmp_path):
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry", "strict": True,
                                     "compose": {"x": "dpl_projects['my-shop'].apps.web.port"}})
    proc = run("ansible-inventory", "-i", str(config), "--list",
               env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"})
    assert proc.returncode != 0
    assert "Could not set x for host" in proc.stderr
    lenient = write_config(tmp_path, {"plugin": "dpl.platform.registry", "strict": False,
                                      "compose": {"x": "dpl_projects['my-shop'].apps.web.port"}}, "lenient-dpl.yml")
    hostvars = plain(json.loads(inventory_list(lenient).stdout)["_meta"]["hostvars"])
    assert hostvars["web1"]["x"] == 3000 and "x" not in hostvars["web2"]


def test_registry_values_are_never_templated_in_plays(known_registry):
    config = str(REPO_ROOT / "inventory" / "dpl.yml")
    message = "{{ dpl_projects['my-shop'].apps.web.env.JINJA }} {{ dpl_projects['my-shop'].apps.web.start_command }}"
    proc = run("ansible", "web1", "-i", config, "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": message}),
               env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "{{ 7 * 6 }} node ' + TEMPLATE + '.js"' in proc.stdout
    assert "42" not in proc.stdout and "uid=" not in proc.stdout


def test_secret_lookup_reads_the_inventorys_registry(known_registry, tmp_path):
    # The inventory config names the registry (relative to itself); DPL_REGISTRY points
    # nowhere: the lookup still reads the registry the host came from (dpl_registry).
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry", "registry": known_registry.name})
    env = {"DPL_REGISTRY": str(tmp_path / "elsewhere.sqlite3")}
    one = run("ansible", "web1", "-i", str(config), "-m", "ansible.builtin.debug", "-a",
              "msg={{ lookup('dpl.platform.registry_secret', 'DB_PASSWORD', project='my-shop', app='web') }}", env=env)
    assert one.returncode == 0, one.stdout + one.stderr
    assert "hunter2" in one.stdout
    every = run("ansible", "web1", "-i", str(config), "-m", "ansible.builtin.debug", "-a",
                "msg={{ lookup('dpl.platform.registry_secret', project='my-shop', app='web') | to_json }}", env=env)
    assert '{"DB_PASSWORD": "hunter2"}' in every.stdout
    missing = run("ansible", "web1", "-i", str(config), "-m", "ansible.builtin.debug", "-a",
                  "msg={{ lookup('dpl.platform.registry_secret', 'NOPE', project='my-shop', app='web') }}", env=env)
    assert missing.returncode != 0
    assert "has no secret variable NOPE (it has: DB_PASSWORD)" in missing.stdout + missing.stderr
    assert not (tmp_path / "elsewhere.sqlite3").exists()


def test_missing_registry_is_a_clear_error_and_is_not_created(tmp_path, registry_path):
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry"})
    proc = run("ansible-inventory", "-i", str(config), "--list", env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"})
    assert proc.returncode != 0
    assert f"{config}: the registry {registry_path} does not exist (initialise it (dpl init" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not registry_path.exists()


def test_broken_registry_is_a_clear_error(tmp_path, registry_path):
    registry_path.write_bytes(b"this is not SQLite " * 200)
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry"})
    proc = run("ansible-inventory", "-i", str(config), "--graph")
    assert f"{config}: {registry_path} is not a usable DPL registry" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_only_files_named_for_the_plugin_are_accepted(known_registry, tmp_path):
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry"}, "hosts.yml")
    proc = run("ansible-inventory", "-i", str(config), "--list")
    assert "could not be verified by inventory plugin 'dpl.platform.registry'" in proc.stderr
    for name in ("prod-dpl.yaml", "registry.yml", "x.registry.yaml"):
        config = write_config(tmp_path, {"plugin": "dpl.platform.registry"}, name)
        assert "web1" in json.loads(inventory_list(config).stdout)["_meta"]["hostvars"]


def test_cache(known_registry, tmp_path):
    config = write_config(tmp_path, {
        "plugin": "dpl.platform.registry", "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"), "cache_timeout": 3600,
    })
    assert len(json.loads(inventory_list(config).stdout)["_meta"]["hostvars"]) == 4
    cached = list((tmp_path / "cache").iterdir())
    assert cached and "hunter2" not in cached[0].read_text()
    # Values read back from the cache are no more templated than the registry's.
    proc = run("ansible", "web1", "-i", str(config), "-m", "ansible.builtin.debug", "-a",
               json.dumps({"msg": "{{ dpl_projects['my-shop'].apps.web.env.JINJA }}"}),
               env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    assert '"msg": "{{ 7 * 6 }}"' in proc.stdout, proc.stdout + proc.stderr
    with Registry.open(known_registry) as reg:
        reg.add_container("web3")
    # Served from the cache...
    assert "web3" not in json.loads(inventory_list(config).stdout)["_meta"]["hostvars"]
    # ...until it is flushed,
    proc = run("ansible-inventory", "-i", str(config), "--list", "--flush-cache")
    assert "web3" in json.loads(proc.stdout)["_meta"]["hostvars"]
    # and a cache made from another registry file never counts.
    other = tmp_path / "other.sqlite3"
    with Registry.open(other) as reg:
        reg.add_host("local")
        reg.add_container("lonely")
    hostvars = json.loads(inventory_list(config, env={"DPL_REGISTRY": str(other)}).stdout)["_meta"]["hostvars"]
    assert list(hostvars) == ["lonely"]


def test_empty_registry(registry_path, tmp_path):
    Registry.open(registry_path).close()
    data = json.loads(inventory_list(REPO_ROOT / "inventory" / "dpl.yml").stdout)
    assert data["_meta"]["hostvars"] == {}


def test_ansible_doc_renders():
    for plugin_type, name in (("inventory", "dpl.platform.registry"), ("lookup", "dpl.platform.registry_secret")):
        proc = run("ansible-doc", "-t", plugin_type, name)
        assert proc.returncode == 0, proc.stderr
        assert "[WARNING]" not in proc.stderr, proc.stderr


@pytest.mark.lxd
def test_tasks_reach_a_real_container_through_the_inventory(container, registry_path, tmp_path):
    # The one test here that needs LXD: the variables the inventory sets are all that
    # dpl.platform.lxd needs to run a module in the container, and an app's values arrive
    # there untemplated.
    with Registry.open(registry_path) as reg:
        reg.add_host("local")
        reg.add_container(container)
        reg.add_app("shop", "web", REPO, container=container, env={"JINJA": "{{ 7 * 6 }}"})
    config = write_config(tmp_path, {"plugin": "dpl.platform.registry"})
    command = "echo {{ dpl_projects.shop.apps.web.env.JINJA | quote }}; hostname"
    proc = run("ansible", "dpl_app_shop_web", "-i", str(config), "-m", "ansible.builtin.shell",
               "-a", json.dumps({"cmd": command}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[1:] == ["{{ 7 * 6 }}", container], proc.stdout
