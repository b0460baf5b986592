"""Adopting an operator's hand-written server blocks as DPL's vhosts: `dpl vhost import`.

An existing server keeps its domains in one nginx file (Debian's ``sites-available/default``),
one hand-written server block per domain. :func:`plan` parses the file with crossplane (a
directive tree with line numbers; includes are not followed) and matches each block to an
app by where it proxies: ``proxy_pass http://<address>:<port>`` where the address is a
recorded container's and the port one of an app's ports. A block that only redirects to
https goes with the domains it redirects once all of them are adopted (DPL's vhost does that
redirect itself). Anything else stays in the file, with the reason.

``services.import_vhosts`` then takes the adopted blocks out of the file (a copy kept beside
it, nginx not reloaded yet), adds the domains to the apps' records, and runs ONE vhost job
that writes DPL's own vhost per domain, tests the whole configuration and reloads nginx
once: the old blocks go and DPL's vhosts come in the same reload, so no request goes astray.
When the job fails (nginx -t refuses), the file and the records are put back; the job has
reloaded nothing. Running it again finds nothing left to adopt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpl_web.collection import validation
from dpl_web.errors import DplError

DEFAULT_FILE = "default"  # in the host's nginx_sites_dir
REDIRECT_CODES = ("301", "302", "307", "308")


@dataclass
class Block:
    """One server block of the file, as far as adopting it goes."""

    line: int  # where its `server` directive is (1-based)
    names: list[str]
    listens: list[str]
    upstream: tuple[str, int] | None = None  # (address, port) it proxies to
    redirects: bool = False  # it only answers with a redirect (an 80 -> https block)
    app: str | None = None  # PROJECT/APP it belongs to, once matched
    why: str = ""  # why it stays in the file
    domains: list[str] = field(default_factory=list)  # the names DPL takes


def _directives(tree: list[dict[str, Any]]):
    for directive in tree:
        yield directive
        yield from _directives(directive.get("block") or [])


def _upstream(target: str) -> tuple[str, int] | None:
    """``http://10.210.0.12:3000`` (a path after it is allowed) -> ("10.210.0.12", 3000)."""
    if not target.startswith(("http://", "https://")):
        return None
    address, _sep, port = target.split("://", 1)[1].split("/", 1)[0].partition(":")
    if not port.isdigit():
        port = "443" if target.startswith("https://") else "80"
    return address, int(port)


def read_blocks(path: Path) -> list[Block]:
    """The file's server blocks. Raises DplError when crossplane cannot parse it."""
    import crossplane

    parsed = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False, comments=False)
    if parsed["status"] != "ok":
        error = parsed["errors"][0] if parsed["errors"] else {"error": "cannot parse it", "line": "?"}
        raise DplError(f"{path} line {error.get('line')}: {error.get('error')}",
                       "fix the file (nginx -t says the same), then import again")
    blocks = []
    for directive in _directives(parsed["config"][0]["parsed"]):
        if directive["directive"] != "server" or "block" not in directive:
            continue
        inside = directive["block"]
        block = Block(line=directive["line"],
                      names=[name for one in inside if one["directive"] == "server_name" for name in one["args"]],
                      listens=[" ".join(one["args"]) for one in inside if one["directive"] == "listen"])
        proxies = [_upstream(one["args"][0]) for one in _directives(inside)
                   if one["directive"] == "proxy_pass" and one["args"]]
        block.upstream = next((proxy for proxy in proxies if proxy), None)
        returns = [one for one in inside if one["directive"] == "return"]
        block.redirects = not proxies and bool(returns) and all(one["args"][0] in REDIRECT_CODES for one in returns)
        blocks.append(block)
    return blocks


def plan(reg: Any, path: Path, host: str = "local") -> dict[str, Any]:
    """What importing ``path`` would do: ``{"file", "adopt": {app: [domains]}, "blocks":
    [Block]}``; each block says the app it goes to, or why it stays."""
    blocks = read_blocks(path)
    containers = {container["ipv4"]: container["name"] for container in reg.list_containers(host=host)}
    apps = reg.list_apps()
    owner = {domain: f"{app['project']}/{app['name']}" for app in apps for domain in app["domains"]}
    adopt: dict[str, list[str]] = {}
    for block in blocks:
        if block.redirects:
            continue
        if block.upstream is None:
            block.why = "it does not proxy to an address (proxy_pass http://ADDRESS:PORT)"
            continue
        address, port = block.upstream
        if address not in containers:
            block.why = f"it proxies to {address}, which is no recorded container's address on {host}"
            continue
        mine = [app for app in apps if app["container"] == containers[address] and port in app["ports"]]
        if not mine:
            block.why = f"no app of container {containers[address]} listens on port {port} (dpl app add, then import)"
            continue
        app = f"{mine[0]['project']}/{mine[0]['name']}"
        domains, refused = [], []
        for name in block.names:
            try:
                domains.append(validation.domain(name.lower(), "server_name"))
            except validation.ValidationError:
                refused.append(name)
        taken = [domain for domain in domains if owner.get(domain, app) != app]
        if refused or taken or not domains:
            block.why = (f"its names {', '.join(refused)} are not domains DPL serves (wildcards, regular "
                         f"expressions, _)" if refused else f"{', '.join(taken)} belongs to {owner[taken[0]]}"
                         if taken else "it has no server_name")
            continue
        block.app, block.domains = app, domains
        adopt.setdefault(app, [])
        adopt[app] += [domain for domain in domains if domain not in adopt[app]]
    adopted = {domain for domains in adopt.values() for domain in domains}
    for block in blocks:
        if block.redirects:
            if block.names and set(name.lower() for name in block.names) <= adopted:
                block.app, block.domains = "(redirect)", [name.lower() for name in block.names]
            else:
                block.why = "a redirect for names that are not all being imported"
    return {"file": str(path), "adopt": adopt, "blocks": blocks}


def _block_end(text: str, start: int) -> int:
    """The offset just after the ``}`` closing the block whose ``{`` comes first after
    ``start``: braces in quotes and comments do not count."""
    depth, index, quote = 0, start, None
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise DplError("a server block has no closing brace", "fix the file (nginx -t says the same)")


def without_blocks(text: str, lines: list[int]) -> str:
    """``text`` without the server blocks that start on ``lines`` (1-based), each with the
    end of its last line."""
    starts = [0]
    for position, char in enumerate(text):
        if char == "\n":
            starts.append(position + 1)
    spans = []
    for line in sorted(lines):
        start = starts[line - 1]
        end = _block_end(text, start)
        if text[end:end + 1] == "\n":
            end += 1
        spans.append((start, end))
    kept, last = [], 0
    for start, end in spans:
        kept.append(text[last:start])
        last = end
    kept.append(text[last:])
    return "".join(kept)


def nginx_test() -> str | None:
    """nginx's complaint about the whole configuration, or None when it is valid."""
    test = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True, timeout=30, check=False,
                          env=dict(os.environ, LC_ALL="C"))
    return None if test.returncode == 0 else (test.stderr.strip() or "nginx -t failed")


def write_without_blocks(path: Path, lines: list[int]) -> tuple[Path, str]:
    """Write ``path`` without the blocks starting on ``lines``, keeping a copy of it beside it
    first; nginx is not reloaded. Returns the copy's path and the original text (to put back)."""
    original = path.read_text()
    backup = path.with_name(f"{path.name}.dpl-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.bak")
    shutil.copy2(path, backup)
    mode = path.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(descriptor, "w") as out:
        out.write(without_blocks(original, lines))
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    return backup, original


def take_out_blocks(path: Path, lines: list[int]) -> Path:
    """Take the blocks starting on ``lines`` out of ``path`` on their own (their domains are
    DPL's already): a copy of the file is kept, the configuration tested, the file put back
    when nginx finds it invalid, and nginx reloaded when it is valid. Returns the copy."""
    backup, original = write_without_blocks(path, lines)
    complaint = nginx_test()
    if complaint is not None:
        path.write_text(original)
        raise DplError(f"nginx refused {path} without the imported blocks: {complaint}",
                       f"the file is as it was (a copy is in {backup}); fix what nginx says, then import again")
    reload = subprocess.run(["nginx", "-s", "reload"], capture_output=True, text=True, timeout=30, check=False)
    if reload.returncode != 0:
        raise DplError(f"nginx could not be reloaded: {reload.stderr.strip()}",
                       "reload it yourself (nginx -s reload, or systemctl reload nginx)")
    return backup
