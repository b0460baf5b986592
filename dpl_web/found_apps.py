"""The apps already in a container made outside DPL: its ``/root/apps/<project>/<app>``
folders, each with what its ``package.json`` says (name, start script), the port its process
listens on when it runs, and the git remote it was cloned from (credentials left out).

One exec runs :data:`SCRIPT` (POSIX sh and /proc only: it works in Alpine's busybox as in
Debian); it reads, and changes nothing. :func:`parse` turns its output into offers that
`dpl container import` shows, each with the `dpl app add` that records it.
"""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dpl_web.collection import lxd, releases, validation

READ_TIMEOUT = 20
MAX_PACKAGE_JSON = 65536

SCRIPT = r"""
root=$1
for dir in "$root"/*/*; do
  [ -d "$dir" ] || continue
  printf '@app %s\n' "$dir"
  if [ -f "$dir/package.json" ]; then
    printf '@package\n'; head -c 65536 "$dir/package.json"; printf '\n@end\n'
  fi
  if [ -f "$dir/.git/config" ]; then
    printf '@git\n'; head -c 65536 "$dir/.git/config"; printf '\n@end\n'
  fi
done
printf '@listen\n'
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
printf '@sockets\n'
for proc in /proc/[0-9]*; do
  cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
  case "$cwd" in "$root"/*) ;; *) continue ;; esac
  for fd in "$proc"/fd/*; do
    target=$(readlink "$fd" 2>/dev/null) || continue
    case "$target" in socket:*) printf '%s %s\n' "$cwd" "$target" ;; esac
  done
done
"""


def read(client: lxd.LXDClient, container: str) -> str:
    """The script's output from ``container`` ("" when it cannot run there)."""
    try:
        code, out, _err = client.execute(container, ["sh", "-c", SCRIPT, "dpl-found-apps", releases.APPS_ROOT],
                                         timeout=READ_TIMEOUT)
    except lxd.LXDError:
        return ""
    return out.decode("utf-8", "replace") if code == 0 else ""


def _remote(git_config: str) -> str | None:
    """The origin's URL, without any user or token in it (those are secrets)."""
    section, url = None, None
    for line in git_config.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == '[remote "origin"]' and line.startswith("url"):
            url = line.partition("=")[2].strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        url = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
    return url


def _listening(table: list[str]) -> dict[str, int]:
    """Socket inode -> port, for the TCP sockets in LISTEN state (/proc/net/tcp and tcp6)."""
    ports = {}
    for line in table:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A" and ":" in fields[1]:  # 0A: LISTEN
            ports[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return ports


def parse(output: str) -> list[dict[str, Any]]:
    """Offers: ``[{"project", "name", "path", "package_name", "start", "port", "repo", "why"}]``;
    ``why`` says what keeps one from being recorded as it is (a name DPL does not take)."""
    apps: dict[str, dict[str, Any]] = {}
    current, section, buffer = None, None, []
    listen_lines, socket_lines = [], []
    for line in output.splitlines():
        if section in ("package", "git"):
            if line == "@end":
                text = "\n".join(buffer)
                if section == "package":
                    try:
                        package = json.loads(text)
                    except ValueError:
                        package = {}
                    package = package if isinstance(package, dict) else {}
                    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
                    current["package_name"] = package.get("name") if isinstance(package.get("name"), str) else None
                    current["start"] = "npm start" if isinstance(scripts.get("start"), str) else None
                    current["start_script"] = scripts.get("start") if isinstance(scripts.get("start"), str) else None
                else:
                    current["repo"] = _remote(text)
                section, buffer = None, []
            else:
                buffer.append(line)
        elif line.startswith("@app "):
            path = line[5:]
            project, name = path.rsplit("/", 2)[1:]
            current = apps.setdefault(path, {"project": project, "name": name, "path": path, "package_name": None,
                                             "start": None, "start_script": None, "port": None, "repo": None})
            section = None
        elif line in ("@package", "@git") and current is not None:
            section, buffer = line[1:], []
        elif line == "@listen":
            section = "listen"
        elif line == "@sockets":
            section = "sockets"
        elif section == "listen":
            listen_lines.append(line)
        elif section == "sockets":
            socket_lines.append(line)
    ports = _listening(listen_lines)
    for line in socket_lines:
        cwd, _sep, target = line.rpartition(" ")
        inode = target[len("socket:["):-1]
        if inode not in ports:
            continue
        for app in apps.values():
            # A process runs in the app's folder, or in one of DPL's releases of it.
            releases_dir = f"{app['path'].rsplit('/', 1)[0]}/.releases/{app['name']}"
            if cwd == app["path"] or cwd.startswith((app["path"] + "/", releases_dir + "/")):
                app["port"] = app["port"] or ports[inode]
    offers = []
    for app in sorted(apps.values(), key=lambda one: one["path"]):
        if app["name"].startswith(".") or app["project"].startswith("."):
            continue  # DPL's own .releases
        try:
            validation.name(app["project"], "project")
            validation.app_name(app["name"], "app")
            app["why"] = ""
        except validation.ValidationError as exc:
            app["why"] = str(exc)
        offers.append(app)
    return offers


def add_command(container: str, app: dict[str, Any]) -> str:
    """The `dpl app add` that records an offer (its repository still to be filled in when
    the folder is no git clone)."""
    words = ["dpl", "app", "add", f"{app['project']}/{app['name']}", "--container", container,
             "--repo", app["repo"] or "REPO-URL"]
    if app["port"]:
        words += ["--port", str(app["port"])]
    return shlex.join(words)
