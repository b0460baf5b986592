"""The example app a fresh set-up deploys (examples/hello), end to end.

``scripts/setup`` runs ``dpl example``: the folder is committed into a bare repository in
DPL's git folder (/srv/dpl/git, served to the containers by git daemon on the bridge address),
the app is recorded in the registry, and deployed into its own container behind nginx on
``hello.dpl.test``. Run again, it deploys only what changed: nothing, usually.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

from dpl_web import paths, services
from dpl_web.collection import validation
from dpl_web.errors import NotFound

EXAMPLE_DIR = paths.REPO_ROOT / "examples" / "hello"
REPO_NAME = "example.git"
PROJECT, APP, CONTAINER = "example", "hello", "example"
DOMAIN = "hello.dpl.test"
PORT = 3000
# Fixed dates: the same files always make the same commit, on every machine.
COMMIT_DATE = "2026-01-01T00:00:00+0000"


# git daemon serves a repository of git_dir() only when this file is in it (a published one).
EXPORT_MARK = "git-daemon-export-ok"


def git_dir() -> Path:
    """Where DPL keeps repositories it serves to containers itself (roles/control_plane serves it)."""
    return Path(validation.FILE_REPO_ROOT)


def curl_line() -> str:
    return f"curl --insecure --resolve {DOMAIN}:443:127.0.0.1 https://{DOMAIN}/"


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {}))).stdout.strip()


def publish() -> tuple[str, bool]:
    """Commit examples/hello into the bare repository's main branch; (commit, changed)."""
    bare = git_dir() / REPO_NAME
    if not (bare / "HEAD").exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        # Readable by all: git daemon runs as an unprivileged user.
        _git("init", "--quiet", "--bare", "--shared=0644", "--initial-branch=main", str(bare))
    (bare / EXPORT_MARK).touch()
    index = bare / "dpl-example.index"
    env = {"GIT_DIR": str(bare), "GIT_WORK_TREE": str(EXAMPLE_DIR), "GIT_INDEX_FILE": str(index),
           "GIT_AUTHOR_NAME": "DPL", "GIT_AUTHOR_EMAIL": "dpl@localhost", "GIT_COMMITTER_NAME": "DPL",
           "GIT_COMMITTER_EMAIL": "dpl@localhost", "GIT_AUTHOR_DATE": COMMIT_DATE,
           "GIT_COMMITTER_DATE": COMMIT_DATE}
    try:
        _git("read-tree", "--empty", env=env)
        _git("add", "--all", ".", env=env)
        tree = _git("write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    try:
        current = _git("rev-parse", "--verify", "--quiet", "refs/heads/main", env=env)
    except subprocess.CalledProcessError:
        current = ""
    if current and _git("rev-parse", f"{current}^{{tree}}", env=env) == tree:
        return current, False
    parent = ["-p", current] if current else []
    commit = _git("commit-tree", tree, *parent, "-m", "The example app, from examples/hello", env=env)
    _git("update-ref", "refs/heads/main", commit, env=env)
    return commit, True


def served() -> bool:
    """Does nginx serve the example over TLS on 127.0.0.1 under its name, as Cloudflare would see it?"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the origin certificate is self-signed by design
    try:
        with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    except OSError:
        return False
    return answer.startswith(b"HTTP/1.1 200") and b"Hello from DPL" in answer


def ensure(ctx: services.Context, bridge_address: str, on_event: Callable[[dict], None] | None = None,
           say: Callable[[str], None] = lambda line: None) -> dict:
    """Publish, record and deploy the example as needed, waiting for the deploy. Returns
    what was done; a deploy that fails raises dpl_web.errors.JobFailed."""
    commit, published = publish()
    repo = f"git://{bridge_address}/{REPO_NAME}"
    report = {"commit": commit, "published": published, "deployed": False, "changed": published,
              "url": f"https://{DOMAIN}/", "curl": curl_line()}
    with ctx.open() as reg:
        try:
            reg.get_app(PROJECT, APP)
            last = reg.list_jobs(app=f"{PROJECT}/{APP}", kind="deploy", status="successful", limit=1)
            up_to_date = bool(last) and last[0]["commit"] == commit
        except NotFound:
            up_to_date = False
    if up_to_date and served():
        return report
    say("deploying the example app example/hello (container 'example', https://hello.dpl.test/)")
    request = {"project": PROJECT, "name": APP, "container": CONTAINER, "repo": repo, "ref": "main",
               "port": PORT, "domain": DOMAIN, "health_path": "/health"}
    try:
        if services.get_container(ctx, CONTAINER)["status"] != "Running":
            # Queued first: the deploy waits for it (one job at a time per container).
            services.container_action(ctx, CONTAINER, "start")
    except NotFound:
        pass  # deploy_request creates it
    outcome = services.deploy_request(ctx, request)
    for note in outcome.notes:
        say(note)
    services.wait(ctx, outcome.job, on_event)
    report.update(deployed=True, changed=True)
    return report
