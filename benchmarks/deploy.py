"""Benchmark: a full DPL deploy against the same steps as one raw shell script, and against a ping.

Measures in one run, interleaved rounds (the order rotates every round), medians:

- R  = the deploy steps as one raw shell script in ONE LXD exec: lock, git fetch, backup of the
  live release (tar.gz without node_modules), git archive | tar -x into a new release,
  `npm install --omit=dev` when the package has something to install (as DPL: the bench app
  has not), env file + start script + systemd unit, atomic symlink switch,
  `systemctl restart`, poll the port until it answers 200, prune;
- P  = `ansible-playbook -i inventory/dpl.yml` with one ansible.builtin.ping task, same container;
- D  = a full DPL deploy of a new commit (v1 and v2 alternate): playbooks/deploy.yml;
- D0 = a redeploy of the live commit;
- D4 = 4 apps in 4 other containers deployed together (`-e app=all`, a new commit each round);
- R4 = R in those 4 containers at once (for information: how much of D4 / D is the machine's
  own limit, the same work 4x in parallel without Ansible);
- J  = D as a job: `dpl deploy` (queued, run by the worker through ansible-runner, followed
  through its event stream), the worker already running (it was started by the first one);
- J4 = the 4 apps of D4 as 4 jobs: `dpl deploy --detach` each, at once, then until all ended
  (the worker runs as many at once as the machine has cores).

and prints the ratios of issue 5 ("Performance") with their targets (compare ratios, never
absolute times from different runs: the machine is noisy and shared):

    (D - R) / P <= 1.5   D0 / P <= 1.5   D4 / D <= 2   J / D <= 1.05   J4 / R4 <= 1.5   (D / R, R4 / R: information)

    .venv/bin/python benchmarks/deploy.py [--rounds 5] [--no-breakdown]

Set-up (~30 s): a zero-dependency Node app with two commits in a bare git repository served
by `git daemon` on the bridge; two temporary registries (DPL_REGISTRY), one with the container
of D, D0, P and R, one with the 4 containers of D4, on random free addresses of the bridge;
the containers (`dplbench-<hex>`, made by playbooks/container.yml) and a first deploy of every
app, so every measured deploy replaces a live release (and backs it up). R runs in the same
container as D (and R4 in D4's), as its own app (other directories, unit and port). One warm-up round is not
counted. The LXD connection's sessions stay warm between runs (they idle out after 60 s), for
P as for D. After the rounds, unless --no-breakdown, one more P, D, D0 and D4 each run with a
small timing callback (written to a temporary directory) to show where the time goes: start-up
(python, imports, inventory, playbook), each task, the module's own time inside the container.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dpl_web.collection import lxd  # noqa: E402
from dpl_web.registry import Registry  # noqa: E402
from tests.support.apps import BRIDGE_ADDRESS, AppRepo, GitDaemon, free_addresses  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PREFIX = "dplbench-"
COMMITS = ("v1", "v2")
PORT = 3000  # the DPL apps
RAW_PORT = 3100  # R's app, next to the DPL app in the same container
TARGETS = {"(D - R) / P": 1.5, "D0 / P": 1.5, "D4 / D": 2.0, "J / D": 1.05, "J4 / R4": 1.5}

PACKAGE_JSON = json.dumps({"name": "bench-app", "version": "1.0.0", "private": True,
                           "scripts": {"start": "node server.js"}}, indent=2) + "\n"
SERVER_JS = """\
const http = require('http');
const VERSION = '%s';
http.createServer((req, res) => {
  res.writeHead(200, {'content-type': 'application/json'});
  res.end(JSON.stringify({version: VERSION}));
}).listen(Number(process.env.PORT), '0.0.0.0');
"""

PING_PLAY = """\
- name: Ping
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

# R: what DPL's app_deploy does, in the same order, as one bash script in one LXD exec.
# $1 ref, $2 port. Prints "@step <EPOCHREALTIME>" marks (no fork) for the per-step times.
RAW_SCRIPT = r"""
set -euo pipefail
ref=$1 port=$2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
checkout=/root/deploy/rawbench/web releases=/root/apps/rawbench/.releases/web live=/root/apps/rawbench/web
backups=/root/backups/rawbench/web conf=/etc/dpl/raw unit=rawbench-web.service
mark() { echo "@$1 $EPOCHREALTIME"; }
mark lock
mkdir -p "$releases" "$backups" "$conf"
exec 9>>/root/deploy/rawbench/.web.lock
flock -w 120 9
mark fetch
git -C "$checkout" fetch --quiet --prune --force --tags origin '+refs/heads/*:refs/remotes/origin/*'
commit=$(git -C "$checkout" rev-parse --verify --quiet "refs/remotes/origin/$ref^{commit}" \
         || git -C "$checkout" rev-parse --verify --quiet "refs/tags/$ref^{commit}" \
         || git -C "$checkout" rev-parse --verify "$ref^{commit}")
mark backup
current=$(basename "$(readlink "$live" 2>/dev/null || true)")
if [ -n "$current" ] && [ -d "$releases/$current" ]; then
  old=$(cat "$releases/$current/REVISION")
  backup="$backups/$(date -u +%Y%m%dT%H%M%SZ)-${old:0:12}.$EPOCHREALTIME.tar.gz"
  tar -czf "$backup.partial" --exclude=node_modules -C "$releases/$current" .
  chmod 600 "$backup.partial" && mv "$backup.partial" "$backup"
  ls -1 "$backups" | head -n -5 | while read -r name; do rm -f "$backups/$name"; done
fi
mark export
id="$(date -u +%Y%m%dT%H%M%S)-${commit:0:12}.$EPOCHREALTIME"
mkdir "$releases/$id.tmp"
git -C "$checkout" archive --format=tar "$commit" | tar -x --no-same-owner -C "$releases/$id.tmp"
echo "$commit" > "$releases/$id.tmp/REVISION"
mark npm
# As DPL does: npm only when the package has production dependencies or install scripts.
if grep -Eq '"(dependencies|optionalDependencies|preinstall|install|postinstall|prepare)"' \
    "$releases/$id.tmp/package.json"; then
  (cd "$releases/$id.tmp" && npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    NODE_ENV=production npm install --omit=dev --quiet >/dev/null)
fi
mv "$releases/$id.tmp" "$releases/$id"
mark service
(umask 077 && printf 'NODE_ENV="production"\nPORT="%s"\n' "$port" > "$conf/web.env.partial")
mv "$conf/web.env.partial" "$conf/web.env"
printf '#!/bin/sh\nexec npm start\n' > "$conf/web.start" && chmod 700 "$conf/web.start"
printf '%s\n' '[Unit]' 'Description=raw bench app' 'After=network.target' '' '[Service]' 'Type=simple' \
  "WorkingDirectory=$live" "EnvironmentFile=$conf/web.env" "ExecStart=$conf/web.start" \
  "Restart=on-failure" "RestartSec=1" '' "[Install]" "WantedBy=multi-user.target" > "$conf/unit.new"
if ! cmp -s "$conf/unit.new" "/etc/systemd/system/$unit"; then
  mv "$conf/unit.new" "/etc/systemd/system/$unit"
  systemctl daemon-reload
  systemctl enable --quiet "$unit"
fi
mark switch
if [ -n "$current" ]; then ln -sfn "$current" "$releases/.previous.tmp" && mv -T "$releases/.previous.tmp" \
  "$releases/.previous"; fi
ln -sfn ".releases/web/$id" "$live.tmp" && mv -T "$live.tmp" "$live"
mark restart
systemctl restart "$unit"
mark health
python3 -c '
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        if urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=2).status == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("no answer within 30s")
    time.sleep(0.05)
' "$port"
mark prune
keep=$(readlink "$releases/.previous" 2>/dev/null || true)
ls -1 "$releases" | head -n -5 | while read -r name; do
  if [ "$name" != "$id" ] && [ "$name" != "$keep" ]; then rm -rf "${releases:?}/$name"; fi
done
mark end
echo "commit $commit"
"""
# For the breakdown: when the playbook started, each task's first start and last result (the
# module's own "duration" when it reports one), and the stats, as epoch seconds.
TIMES_CALLBACK = """\
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dplbench_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.times = {"start": None, "tasks": [], "stats": None}

    def v2_playbook_on_start(self, playbook):
        self.times["start"] = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.times["tasks"].append({"name": task.get_name(), "start": time.time(), "end": None, "module": []})

    def _result(self, result, *args, **kwargs):
        task = self.times["tasks"][-1]
        task["end"] = time.time()
        duration = result._result.get("duration")
        for item in result._result.get("results") or []:
            duration = item.get("duration", duration)
        if isinstance(duration, (int, float)):
            task["module"].append(duration)

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _result

    def v2_playbook_on_stats(self, stats):
        self.times["stats"] = time.time()
        for task in self.times["tasks"]:
            task["end"] = task["end"] or task["start"]
        with open(os.environ["DPLBENCH_TIMES"], "w") as handle:
            json.dump(self.times, handle)
"""
RAW_STEPS = ("lock", "fetch", "backup", "export", "npm", "service", "switch", "restart", "health", "prune")


def app_files(version: str) -> dict[str, bytes]:
    """The zero-dependency bench app: `npm start` runs server.js, 200 on every path."""
    return {"package.json": PACKAGE_JSON.encode(), "server.js": (SERVER_JS % version).encode()}


def delete_container(client: lxd.LXDClient, name: str) -> None:
    try:
        client.set_state(name, "stop", timeout=30, force=True)
    except lxd.LXDNotFound:
        return
    except lxd.LXDError:
        pass  # already stopped
    try:
        client.sync_or_wait("DELETE", client.instance_path(name), timeout=120)
    except lxd.LXDNotFound:
        pass


def serving(address: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
        return json.load(response)["version"]


class Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.client = lxd.LXDClient(timeout=60)
        self.containers: list[str] = []
        self.clients: dict[str, lxd.LXDClient] = {}
        self.daemon: GitDaemon | None = None
        self.registries: dict[str, Path] = {}
        self.live: dict[str, str] = {}  # app key -> live version label
        self.addresses: dict[str, str] = {}

    # -- running things ----------------------------------------------------------------

    def ansible(self, registry: str, playbook: Path, *args: str, extra_env: dict | None = None,
                check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   DPL_REGISTRY=str(self.registries[registry]), XDG_STATE_HOME=str(self.workdir / "state"),
                   ANSIBLE_NOCOLOR="1", **(extra_env or {}))
        started = time.perf_counter()
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(REPO / "inventory" / "dpl.yml"),
                               str(playbook), *args], capture_output=True, text=True, env=env, check=False,
                              cwd=REPO, timeout=900)
        elapsed = time.perf_counter() - started
        if check and proc.returncode != 0:
            raise SystemExit(f"ansible-playbook {playbook.name} {' '.join(args)} failed (rc {proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}")
        return elapsed, proc

    @staticmethod
    def recap(proc: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
        found = {}
        for match in re.finditer(r"^(\S+)\s+:\s+(.*)$", proc.stdout, re.M):
            found[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
        return found

    def raw_four(self, ref: str) -> float:
        """R in the 4 containers of D4 at once: what the machine itself allows for D4 / D."""
        started = time.perf_counter()
        with ThreadPoolExecutor(len(self.containers) - 1) as pool:
            list(pool.map(lambda name: self.raw(ref, name), self.containers[1:]))
        return time.perf_counter() - started

    def raw(self, ref: str, container: str | None = None) -> tuple[float, dict[str, float]]:
        container = container or self.containers[0]
        client = self.clients.setdefault(container, lxd.LXDClient(timeout=60))  # one per thread of raw_four
        started = time.perf_counter()
        rc, out, err = client.execute(container, ["/bin/bash", "-c", RAW_SCRIPT, "raw", ref, str(RAW_PORT)],
                                      timeout=300)
        elapsed = time.perf_counter() - started
        if rc != 0:
            raise SystemExit(f"R failed in {container} (rc {rc}):\n{out.decode()[-2000:]}\n{err.decode()[-3000:]}")
        marks = dict((name, float(at)) for name, at in re.findall(r"^@(\w+) ([\d.]+)$", out.decode(), re.M))
        following = (*RAW_STEPS[1:], "end")
        steps = {step: marks[after] - marks[step] for step, after in zip(RAW_STEPS, following, strict=True)}
        return elapsed, steps

    # -- set-up --------------------------------------------------------------------------

    def setup(self) -> None:
        started = time.perf_counter()
        repos = self.workdir / "repos"
        repos.mkdir()
        repo = AppRepo(repos, "bench")
        for label in COMMITS:
            repo.commit(label, app_files(label), tag=label)
        self.daemon = GitDaemon(repos)
        url = self.daemon.url(repo)
        print(f"git daemon serves {url}", flush=True)

        names = [f"{PREFIX}{uuid.uuid4().hex[:8]}" for _index in range(5)]
        addresses = free_addresses(self.client, len(names))
        self.addresses = dict(zip(names, addresses, strict=True))
        layouts = {"one": [(names[0], "bench")], "four": [(name, f"fleet{i}") for i, name in enumerate(names[1:])]}
        for key, members in layouts.items():
            path = self.workdir / f"registry-{key}.sqlite3"
            self.registries[key] = path
            with Registry.open(path) as registry:
                registry.ensure_host("local", bridge="dplbr0", bridge_ipv4=f"{BRIDGE_ADDRESS}/24")
                for name, project in members:
                    registry.add_container(name, ipv4=self.addresses[name])
                    registry.add_app(project, "web", url, container=name, port=PORT, health_path="/")
        # From here on the containers may exist: the caller deletes every one of these names.
        self.containers = names
        print(f"creating {len(names)} containers through playbooks/container.yml: "
              + ", ".join(f"{n} ({self.addresses[n]})" for n in names), flush=True)
        creating = [self.spawn_ansible(key, REPO / "playbooks" / "container.yml", "-e",
                                       "container=" + ":".join(n for n, _p in members),
                                       # the play's variable was renamed from action to operation
                                       "-e", "operation=create", "-e", "action=create")
                    for key, members in layouts.items()]
        for proc in creating:
            stdout, stderr = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"container.yml failed:\n{stdout[-4000:]}\n{stderr[-2000:]}")
        print(f"  containers up after {time.perf_counter() - started:.1f}s", flush=True)

        # R's clone (once, as DPL clones once) and first release; DPL's first deploys.
        for name in names:
            rc, _out, err = self.client.execute(name, ["/bin/sh", "-c",
                                                       "mkdir -p /root/deploy/rawbench && git clone --quiet "
                                                       f"--no-checkout {url} /root/deploy/rawbench/web"])
            if rc != 0:
                raise SystemExit(f"clone for R failed: {err.decode()}")
        self.raw("v1")
        self.raw_four("v1")
        self.live["raw"] = self.live["raw4"] = "v1"
        self.deploy_one("v1")
        self.deploy_four("v1")
        for name in names:
            assert serving(self.addresses[name], PORT) == serving(self.addresses[name], RAW_PORT) == "v1", name
        self.ping_play = self.workdir / "ping.yml"
        self.ping_play.write_text(PING_PLAY.format(host=names[0]))
        print(f"set-up done in {time.perf_counter() - started:.1f}s", flush=True)

    def spawn_ansible(self, registry: str, playbook: Path, *args: str) -> subprocess.Popen:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   DPL_REGISTRY=str(self.registries[registry]), XDG_STATE_HOME=str(self.workdir / "state"),
                   ANSIBLE_NOCOLOR="1")
        return subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "-i", str(REPO / "inventory" / "dpl.yml"),
                                 str(playbook), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=REPO)

    # -- the measured operations ----------------------------------------------------------

    @staticmethod
    def other(version: str) -> str:
        return COMMITS[(COMMITS.index(version) + 1) % len(COMMITS)]

    def deploy_one(self, ref: str, extra_env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
        elapsed, proc = self.ansible("one", REPO / "playbooks" / "deploy.yml", "-e", "app=bench/web", "-e",
                                     f"ref={ref}", extra_env=extra_env)
        self.live["one"] = ref
        return elapsed, proc

    def deploy_four(self, ref: str, extra_env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
        elapsed, proc = self.ansible("four", REPO / "playbooks" / "deploy.yml", "-e", "app=all", "-e", f"ref={ref}",
                                     extra_env=extra_env)
        self.live["four"] = ref
        return elapsed, proc

    def dpl_json(self, registry: str, *args: str) -> dict:
        env = dict(os.environ, DPL_REGISTRY=str(self.registries[registry]), XDG_STATE_HOME=str(self.workdir / "state"))
        proc = subprocess.run([str(VENV_BIN / "dpl"), "--json", *args], capture_output=True, text=True, env=env,
                              check=False, cwd=REPO, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"dpl {' '.join(args)} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout)

    def dpl(self, registry: str, *args: str) -> float:
        env = dict(os.environ, DPL_REGISTRY=str(self.registries[registry]), XDG_STATE_HOME=str(self.workdir / "state"))
        started = time.perf_counter()
        proc = subprocess.run([str(VENV_BIN / "dpl"), "--json", *args], capture_output=True, text=True, env=env,
                              check=False, cwd=REPO, timeout=900)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"dpl {' '.join(args)} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
        return elapsed

    def measure(self, kind: str) -> tuple[float, dict | None]:
        """Run one operation; check what it did (outside the timed part); return its time."""
        c0 = self.containers[0]
        if kind == "J4":
            ref = self.other(self.live["four"])
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                jobs = list(pool.map(lambda app: self.dpl_json("four", "deploy", app, "--ref", ref, "--detach")["job"],
                                     [f"fleet{i}/web" for i in range(len(self.containers) - 1)]))
            with Registry.open(self.registries["four"]) as registry:
                while any(registry.get_job(job)["status"] in ("queued", "running") for job in jobs):
                    time.sleep(0.05)
                statuses = [registry.get_job(job)["status"] for job in jobs]
            elapsed = time.perf_counter() - started
            assert statuses == ["successful"] * len(jobs), statuses
            self.live["four"] = ref
            for name in self.containers[1:]:
                assert serving(self.addresses[name], PORT) == ref
            return elapsed, None
        if kind == "J":
            ref = self.other(self.live["one"])
            elapsed = self.dpl("one", "deploy", "bench/web", "--ref", ref)
            self.live["one"] = ref
            assert serving(self.addresses[c0], PORT) == ref
            return elapsed, None
        if kind == "R":
            ref = self.other(self.live["raw"])
            elapsed, steps = self.raw(ref)
            self.live["raw"] = ref
            assert serving(self.addresses[c0], RAW_PORT) == ref
            return elapsed, steps
        if kind == "R4":
            ref = self.other(self.live["raw4"])
            elapsed = self.raw_four(ref)
            self.live["raw4"] = ref
            for name in self.containers[1:]:
                assert serving(self.addresses[name], RAW_PORT) == ref
            return elapsed, None
        if kind == "P":
            elapsed, proc = self.ansible("one", self.ping_play)
            assert self.recap(proc)[c0]["ok"] == 1
            return elapsed, None
        if kind == "D":
            elapsed, proc = self.deploy_one(self.other(self.live["one"]))
            assert self.recap(proc)[c0]["changed"] == 1, proc.stdout[-2000:]
            assert serving(self.addresses[c0], PORT) == self.live["one"]
            return elapsed, None
        if kind == "D0":
            elapsed, proc = self.deploy_one(self.live["one"])
            assert self.recap(proc)[c0]["changed"] == 0, proc.stdout[-2000:]
            return elapsed, None
        if kind == "D4":
            elapsed, proc = self.deploy_four(self.other(self.live["four"]))
            recap = self.recap(proc)
            for name in self.containers[1:]:
                assert recap[name]["changed"] == 1, proc.stdout[-2000:]
                assert serving(self.addresses[name], PORT) == self.live["four"]
            return elapsed, None
        raise ValueError(kind)

    # -- where the time goes ----------------------------------------------------------------

    def breakdown(self) -> None:
        """One more P, D, D0 and D4 with a timing callback: startup, each task, the module's own time."""
        print("\nwhere the time goes (one extra run each, with a timing callback; not counted above):", flush=True)
        plugins = self.workdir / "callbacks"
        plugins.mkdir(exist_ok=True)
        (plugins / "dplbench_times.py").write_text(TIMES_CALLBACK)
        runs = [("P", lambda env: self.ansible("one", self.ping_play, extra_env=env)),
                ("D", lambda env: self.deploy_one(self.other(self.live["one"]), env)),
                ("D0", lambda env: self.deploy_one(self.live["one"], env)),
                ("D4", lambda env: self.deploy_four(self.other(self.live["four"]), env))]
        for label, run in runs:
            out = self.workdir / f"times-{label}.json"
            env = {"ANSIBLE_CALLBACK_PLUGINS": str(plugins), "ANSIBLE_CALLBACKS_ENABLED": "dplbench_times",
                   "DPLBENCH_TIMES": str(out)}
            started = time.time()
            elapsed, _proc = run(env)
            times = json.loads(out.read_text())
            print(f"  {label}: {elapsed:.2f}s in all")
            print(f"    {'start-up: python, imports, inventory, playbook':58} {times['start'] - started:5.2f}s")
            mark = times["start"]
            for task in times["tasks"]:
                if task["start"] - mark > 0.005:
                    print(f"    {'(between tasks: play start, templating, strategy)':58} {task['start'] - mark:5.2f}s")
                module = ("   module's own time " + "/".join(f"{m:.2f}" for m in task["module"]) + "s"
                          if task["module"] else "")
                print(f"    task {task['name'][:53]:53} {task['end'] - task['start']:5.2f}s{module}")
                mark = task["end"]
            print(f"    {'(after the last task: other plays, stats)':58} {times['stats'] - mark:5.2f}s")
            print(f"    {'exit':58} {started + elapsed - times['stats']:5.2f}s", flush=True)

    # -- cleaning up ------------------------------------------------------------------------

    def cleanup(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        for name in self.containers:
            try:
                delete_container(self.client, name)
            except lxd.LXDError as exc:
                print(f"could not delete {name}: {exc} (delete it by hand)", file=sys.stderr)
        if self.containers:
            print(f"deleted {', '.join(self.containers)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-breakdown", action="store_true", help="skip the json-callback runs at the end")
    args = parser.parse_args()
    # A SIGTERM too must reach the finally below, which deletes the containers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    kinds = ["R", "P", "D", "D0", "D4", "R4", "J", "J4"]
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    raw_steps: dict[str, list[float]] = {step: [] for step in RAW_STEPS}
    with tempfile.TemporaryDirectory(prefix="dplbench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.setup()
            for round_no in range(args.rounds + 1):
                # Rotated each round, so a slow moment or a warm cache favours no one kind.
                order = kinds[round_no % len(kinds):] + kinds[:round_no % len(kinds)]
                times = {}
                for kind in order:
                    times[kind], steps = bench.measure(kind)
                    if round_no and steps:
                        for step, value in steps.items():
                            raw_steps[step].append(value)
                label = "warm-up (not counted)" if round_no == 0 else f"round {round_no}/{args.rounds}"
                if round_no:
                    for kind in kinds:
                        samples[kind].append(times[kind])
                print(f"{label}: " + ", ".join(f"{k} {times[k]:.2f}s" for k in kinds), flush=True)
            if not args.no_breakdown:
                bench.breakdown()
        finally:
            bench.cleanup()

    med = {kind: statistics.median(values) for kind, values in samples.items()}
    names = {"R": "raw script, one exec", "P": "play with one ping", "D": "DPL deploy, new commit",
             "D0": "DPL redeploy, live commit", "D4": "4 apps in 4 containers", "J": "dpl deploy (a job)",
             "J4": "4 jobs, 4 apps, at once",
             "R4": "R in 4 containers at once"}
    print(f"\nmedian of {args.rounds} rounds:")
    for kind in kinds:
        print(f"  {kind:3} {names[kind]:28} {med[kind]:6.2f} s   (min {min(samples[kind]):.2f}, "
              f"max {max(samples[kind]):.2f})")
    print("  R by step (median): " + ", ".join(f"{s} {statistics.median(v):.3f}" for s, v in raw_steps.items()))
    ratios = {"(D - R) / P": (med["D"] - med["R"]) / med["P"], "D0 / P": med["D0"] / med["P"],
              "D4 / D": med["D4"] / med["D"], "J / D": med["J"] / med["D"],
              "J4 / R4": med["J4"] / med["R4"]}
    print()
    for name, value in ratios.items():
        verdict = "ok" if value <= TARGETS[name] else "MISSED"
        print(f"ratio {name:12} = {value:5.2f}  (target <= {TARGETS[name]})  {verdict}")
    print(f"ratio {'D / R':12} = {med['D'] / med['R']:5.2f}  (for information)")
    print(f"ratio {'R4 / R':12} = {med['R4'] / med['R']:5.2f}  (for information: the same work 4x at once, "
          f"without Ansible, on this machine's {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
