"""Where DPL keeps its files: one place to look, each overridable by the environment.

Defaults follow the XDG base directories, so a root user finds everything under
``/root/.local/share/dpl``, ``/root/.local/state/dpl`` and ``/root/.cache/dpl``.
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkout: the collection root, which is also where the playbooks live.
REPO_ROOT = Path(__file__).resolve().parent.parent


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "dpl"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "dpl"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "dpl"


def alert_urls_path() -> Path:
    """Where alerts go (apprise URLs, one a line; mode 0600: they may hold tokens)."""
    return config_dir() / "alert-urls"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "dpl"


def registry_path() -> Path:
    """The registry database: ``$DPL_REGISTRY``, else ``<data dir>/registry.sqlite3``."""
    value = os.environ.get("DPL_REGISTRY")
    return Path(value) if value else data_dir() / "registry.sqlite3"


def host_backups_dir(registry: Path | str) -> Path:
    """Where copies of the apps' backups are kept on the control plane's machine, so that
    they outlive the container they were made in: ``backups/<project>/<app>/`` beside the
    registry (``~/.local/share/dpl/backups`` for the default registry)."""
    return Path(registry).parent / "backups"


def admin_password_path() -> Path:
    """Where scripts/setup leaves the first admin's password (mode 0600)."""
    return data_dir() / "admin-password"


def log_dir() -> Path:
    return state_dir() / "log"


def image_cache_dir() -> Path:
    return cache_dir() / "images"


def collections_dir() -> Path:
    """A collections path in which ``ansible_collections/dpl/platform`` is this checkout."""
    return REPO_ROOT / ".ansible" / "collections"
