"""Benchmark: `ansible-inventory --list` over DPL's registry, 1,000 containers x 3 apps vs empty.

Prints ratios to the empty registry measured in one run (the machine is noisy: compare
ratios, never absolute times from different runs). Target (issue 3): 1,000 containers x 3
apps <= 1.5x the empty registry. It also times 100, 300 and 1,000 containers and prints the
cost per container above the empty registry, which stays flat when the cost is linear.

    .venv/bin/python benchmarks/inventory.py [--rounds 5] [--sizes 100,300,1000]

Two references show what of the cost is ansible-inventory's own and not the plugin's; they
run through a throwaway inventory plugin that reads a JSON file (json.load, no registry):

- "same data": the very hosts, groups and variables the dpl.platform.registry plugin makes
  (taken from its `--list --export` output): what Ansible costs for an inventory of this
  content, whatever produces it;
- "bare hosts": the same host names with no variables and no groups.

`--graph` (no variables printed) is timed too. Every run is a fresh process with the
checkout's ansible.cfg, the registry given by DPL_REGISTRY; runs of every kind and size are
interleaved, so a slow moment of the machine hits them all alike. Each app has two domains,
three plain variables and one secret.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web.registry import Registry  # noqa: E402

APPS_PER_CONTAINER = 3
TARGET = 1.5

# The reference plugin: adds hosts, groups and variables from a JSON file, nothing else.
FLOOR_PLUGIN = '''
from __future__ import annotations

DOCUMENTATION = """
name: bench_floor
short_description: benchmark reference, hosts from a JSON file
description: [Adds the hosts, groups and variables of a JSON file.]
options:
  plugin: {required: true, choices: [bench_floor]}
  data: {required: true, type: path}
"""

import json

from ansible.plugins.inventory import BaseInventoryPlugin


class InventoryModule(BaseInventoryPlugin):
    NAME = "bench_floor"

    def verify_file(self, path):
        return path.endswith("floor.yml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        with open(self.get_option("data")) as handle:
            data = json.load(handle)
        for group, variables in data["groups"].items():
            inventory.add_group(group)
            for key, value in variables.items():
                inventory.set_variable(group, key, value)
        for host, info in data["hosts"].items():
            inventory.add_host(host)
            for key, value in info["vars"].items():
                inventory.set_variable(host, key, value)
            for group in info["groups"]:
                inventory.add_child(group, host)
'''


def build_registry(path: Path, containers: int) -> float:
    """A registry with ``containers`` containers, each with one project of three apps."""
    started = time.perf_counter()
    with Registry.open(path) as reg:
        reg.add_host("local", bridge_ipv4="10.210.0.1/16", public_ipv4="203.0.113.10")
        with reg.transaction():
            for number in range(containers):
                container, project = f"c{number:04d}", f"p{number:04d}"
                reg.add_container(container, "local", memory="1GiB", cpu="2")
                reg.add_project(project, container)
                for app in range(APPS_PER_CONTAINER):
                    reg.add_app(
                        project, f"app{app}", f"https://git.example.com/{project}/app{app}.git",
                        ref="main", port=3000 + 2 * app,
                        domains=[f"app{app}.{project}.example.com", f"www.app{app}.{project}.example.com"],
                        env={"NODE_ENV": "production", "PORT": str(3000 + 2 * app), "LOG_LEVEL": "info"},
                        secret_env={"DB_PASSWORD": "s3cret"})
    return time.perf_counter() - started


def _env(registry: Path, plugins: Path) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), DPL_REGISTRY=str(registry),
                ANSIBLE_INVENTORY_PLUGINS=str(plugins))


def ansible_inventory(config: Path, env: dict[str, str], *options: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(config), *options],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or "[WARNING]" in proc.stderr:
        raise SystemExit(f"ansible-inventory -i {config} {' '.join(options)} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def _plain(value):
    """--list output without 2.19's {"__ansible_unsafe": ...} wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def floor_data(exported: dict) -> tuple[dict, dict]:
    """The plugin's hosts, groups and variables (from --list --export) as floor data, and the
    same hosts bare."""
    exported = _plain(exported)
    hostvars = exported.pop("_meta")["hostvars"]
    groups, memberships = {}, {host: [] for host in hostvars}
    for group, info in exported.items():
        if group in ("all", "ungrouped"):
            continue
        groups[group] = info.get("vars", {})
        for host in info.get("hosts", []):
            memberships[host].append(group)
    same = {"groups": groups, "hosts": {host: {"vars": hostvars[host], "groups": memberships[host]}
                                        for host in hostvars}}
    bare = {"groups": {}, "hosts": {host: {"vars": {}, "groups": []} for host in hostvars}}
    return same, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="100,300,1000", help="container counts, comma-separated")
    args = parser.parse_args()
    sizes = [0, *sorted({int(size) for size in args.sizes.split(",") if int(size)} | {1000})]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plugins = workdir / "plugins"
        plugins.mkdir()
        (plugins / "bench_floor.py").write_text(FLOOR_PLUGIN)
        config = workdir / "dpl.yml"
        config.write_text("plugin: dpl.platform.registry\n")

        # kind -> size -> (inventory source, environment, ansible-inventory options)
        runs: dict[str, dict[int, tuple[Path, dict, tuple[str, ...]]]] = {
            "dpl --list": {}, "same data --list": {}, "bare hosts --list": {}, "dpl --graph": {}}
        for size in sizes:
            registry = workdir / f"registry-{size}.sqlite3"
            took = build_registry(registry, size)
            print(f"built a registry of {size} containers x {APPS_PER_CONTAINER} apps in {took:.1f} s", flush=True)
            env = _env(registry, plugins)
            _took, exported = ansible_inventory(config, env, "--list", "--export")
            for kind, data in zip(("same data", "bare hosts"), floor_data(json.loads(exported)), strict=True):
                data_file = workdir / f"{kind.replace(' ', '-')}-{size}.json"
                data_file.write_text(json.dumps(data))
                floor = workdir / f"{kind.replace(' ', '-')}-{size}-floor.yml"
                floor.write_text(f"plugin: bench_floor\ndata: {data_file}\n")
                runs[f"{kind} --list"][size] = (floor, env, ("--list",))
            runs["dpl --list"][size] = (config, env, ("--list",))
            runs["dpl --graph"][size] = (config, env, ("--graph",))

        for kind in runs:  # warm-up: page cache, .pyc files
            for source, env, options in runs[kind].values():
                ansible_inventory(source, env, *options)
        times: dict[str, dict[int, list[float]]] = {kind: {size: [] for size in sizes} for kind in runs}
        for round_number in range(args.rounds):
            for size in sizes:
                for kind in runs:
                    source, env, options = runs[kind][size]
                    elapsed, output = ansible_inventory(source, env, *options)
                    if kind == "dpl --list" and len(json.loads(output)["_meta"]["hostvars"]) != size:
                        raise SystemExit(f"{kind}: expected {size} hosts")
                    times[kind][size].append(elapsed)
            print(f"round {round_number + 1}/{args.rounds}: dpl --list "
                  + ", ".join(f"{size}: {times['dpl --list'][size][-1]:.2f} s" for size in sizes), flush=True)

    print(f"\nansible-inventory, median of {args.rounds} runs (interleaved); ratio = to the same kind "
          "with 0 containers")
    print(f"  {'kind':<18} {'containers':>10} {'apps':>6} {'median':>8} {'ratio':>7} {'ms/container':>13}")
    medians = {kind: {size: statistics.median(times[kind][size]) for size in sizes} for kind in runs}
    for kind in runs:
        empty = medians[kind][0]
        for size in sizes:
            median = medians[kind][size]
            per = f"{(median - empty) / size * 1000:.2f}" if size else "-"
            print(f"  {kind:<18} {size:>10} {size * APPS_PER_CONTAINER:>6} {median:>7.2f}s "
                  f"{median / empty:>6.2f}x {per:>13}")
    ratio = medians["dpl --list"][1000] / medians["dpl --list"][0]
    same = medians["same data --list"][1000] / medians["same data --list"][0]
    bare = medians["bare hosts --list"][1000] / medians["bare hosts --list"][0]
    graph = medians["dpl --graph"][1000] / medians["dpl --graph"][0]
    plugin_share = medians["dpl --list"][1000] - medians["same data --list"][1000]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"\n1,000 containers x {APPS_PER_CONTAINER} apps vs empty, --list: {ratio:.2f}x ({verdict} the target "
          f"of {TARGET}x)")
    print(f"  the same hosts and variables through a plugin that does nothing but add them: {same:.2f}x")
    print(f"  the same 1,000 host names with no variables at all: {bare:.2f}x")
    print(f"  --graph (variables not printed): {graph:.2f}x")
    print(f"  the registry plugin's own cost above 'same data' at 1,000 containers: {plugin_share * 1000:.0f} ms")


if __name__ == "__main__":
    main()
