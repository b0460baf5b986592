"""Small Node apps for the deploy tests, in git repositories served from the host.

The containers have no network beyond DPL's bridge, so the apps install offline: no
dependencies, or one local package (a ``file:`` tarball in the repository, pinned in
package-lock.json with its integrity) that ``npm ci`` really unpacks into node_modules.
The repositories are served by ``git daemon`` on the bridge's host address, as a real
remote would be.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import socket
import subprocess
import tarfile
import time
from pathlib import Path

from dpl_web.collection import lxd

BRIDGE_ADDRESS = "10.210.0.1"

SERVER_JS = """\
const http = require('http');
const greeting = require('greeting');
const VERSION = '%(version)s';
%(startup)s
const server = http.createServer((req, res) => {
  if (req.url === '%(health_path)s') {
    res.writeHead(%(health_status)d, {'content-type': 'text/plain'});
    res.end('health');
    return;
  }
  res.writeHead(200, {'content-type': 'application/json'});
  res.end(JSON.stringify({version: VERSION, greeting: greeting(), port: process.env.PORT,
                          node_env: process.env.NODE_ENV, secret_length: (process.env.API_TOKEN || '').length,
                          plain: process.env.PLAIN || null}));
});
server.listen(Number(process.env.PORT), '0.0.0.0');
"""

GREETING_JS = "module.exports = () => 'hello from a local package';\n"


def _tarball(files: dict[str, str]) -> bytes:
    """An npm package tarball (everything under package/)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GREETING_TGZ = _tarball({"package.json": json.dumps({"name": "greeting", "version": "1.0.0", "main": "index.js"}),
                         "index.js": GREETING_JS})


def app_files(version: str, startup: str = "", health_status: int = 200, health_path: str = "/health",
              extra: dict[str, str] | None = None) -> dict[str, bytes]:
    """The files of one version of the test app."""
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(GREETING_TGZ).digest()).decode()
    package = {"name": "demo-app", "version": "1.0.0", "private": True,
               "scripts": {"start": "node server.js", "build": "node build.js"},
               "dependencies": {"greeting": "file:vendor/greeting-1.0.0.tgz"}}
    lock = {"name": "demo-app", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {"": {"name": "demo-app", "version": "1.0.0",
                              "dependencies": {"greeting": "file:vendor/greeting-1.0.0.tgz"}},
                         "node_modules/greeting": {"version": "1.0.0", "resolved": "file:vendor/greeting-1.0.0.tgz",
                                                   "integrity": integrity}}}
    files = {
        "package.json": json.dumps(package, indent=2).encode(),
        "package-lock.json": json.dumps(lock, indent=2).encode(),
        "vendor/greeting-1.0.0.tgz": GREETING_TGZ,
        "server.js": (SERVER_JS % {"version": version, "startup": startup, "health_status": health_status,
                                   "health_path": health_path}).encode(),
        # `npm run build` leaves a marker, so tests see the build step ran.
        "build.js": b"require('fs').writeFileSync('BUILT', process.env.NODE_ENV || 'unset');\n",
    }
    for name, text in (extra or {}).items():
        files[name] = text.encode()
    return files


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "DPL tests", "GIT_AUTHOR_EMAIL": "tests@dpl.invalid",
                               "GIT_COMMITTER_NAME": "DPL tests", "GIT_COMMITTER_EMAIL": "tests@dpl.invalid",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)}).stdout.strip()


class AppRepo:
    """A bare repository of the test app, with a work tree to commit versions from."""

    def __init__(self, root: Path, name: str, default_branch: str = "main"):
        self.name = name
        self.default_branch = default_branch
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        self.work.mkdir(parents=True)
        # The bare repository's HEAD names its default branch, as a forge's does.
        git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(self.bare), cwd=root)
        git("init", "--quiet", f"--initial-branch={default_branch}", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        self.commits: dict[str, str] = {}

    def commit(self, label: str, files: dict[str, bytes], tag: str | None = None, branch: str | None = None) -> str:
        branch = branch or self.default_branch
        for old in self.work.rglob("*"):
            if old.is_file() and ".git" not in old.parts:
                old.unlink()
        for name, data in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if (self.work / "deploy.sh").exists():
            (self.work / "deploy.sh").chmod(0o755)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", label, cwd=self.work)
        if tag:
            git("tag", tag, cwd=self.work)
        git("push", "--quiet", "--force", "--tags", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        sha = git("rev-parse", "HEAD", cwd=self.work)
        self.commits[label] = sha
        return sha


class GitDaemon:
    """``git daemon`` serving a folder of bare repositories on the bridge's host address."""

    def __init__(self, base: Path, address: str = BRIDGE_ADDRESS):
        self.base = base
        self.address = address
        with socket.socket() as probe:
            probe.bind((address, 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}", f"--listen={address}",
             f"--port={self.port}", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((address, self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)

    def url(self, repo: AppRepo) -> str:
        return f"git://{self.address}:{self.port}/{repo.bare.name}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def free_addresses(client: lxd.LXDClient, count: int) -> list[str]:
    """Random addresses of the bridge that no instance holds or has reserved (others run tests
    on this LXD at the same time, with their own registries that start at .10)."""
    used = {BRIDGE_ADDRESS}
    for instance in client.get("/1.0/instances", {"recursion": 1}):
        for device in (instance.get("expanded_devices") or {}).values():
            if device.get("ipv4.address"):
                used.add(device["ipv4.address"])
        if instance.get("status") == "Running":
            try:
                used.update(client.ipv4_addresses(instance["name"]))
            except lxd.LXDError:
                pass
    prefix = BRIDGE_ADDRESS.rsplit(".", 1)[0]
    return random.sample([f"{prefix}.{n}" for n in range(100, 250) if f"{prefix}.{n}" not in used], count)
