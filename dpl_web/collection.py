"""Import the collection's own code (the one LXD access layer) into the control plane.

The LXD client lives in the collection's module_utils because modules need it on their
side; the control plane imports that same file instead of keeping a second client. The
checkout is linked as ``ansible_collections/dpl/platform`` (scripts/setup makes the link,
and :func:`ensure_link` repairs it), which makes it an importable namespace package.
"""

from __future__ import annotations

import os
import sys

from dpl_web.paths import REPO_ROOT, collections_dir


def ensure_link() -> None:
    """Make ``<collections dir>/ansible_collections/dpl/platform`` point at the checkout."""
    link = collections_dir() / "ansible_collections" / "dpl" / "platform"
    if link.is_symlink() and link.resolve() == REPO_ROOT:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    os.symlink(os.path.relpath(REPO_ROOT, link.parent), link)


def ensure_importable() -> None:
    ensure_link()
    path = str(collections_dir())
    if path not in sys.path:
        sys.path.append(path)


ensure_importable()

from ansible_collections.dpl.platform.plugins.module_utils import git_access, lxd, nginx, releases, validation  # noqa: E402


def host_client(host: dict, timeout: float = 10) -> lxd.LXDClient:
    """The LXD client of a host record (its endpoint, and its certificates for https)."""
    return lxd.LXDClient(endpoint=host["endpoint"], client_cert=host.get("client_cert"),
                         client_key=host.get("client_key"), server_cert=host.get("server_cert"), timeout=timeout)


__all__ = ["git_access", "lxd", "nginx", "releases", "validation", "ensure_link", "host_client"]
