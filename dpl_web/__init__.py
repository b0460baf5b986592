"""DPL's control plane: the registry, the jobs that run the playbooks, the web UI and the CLI."""

from __future__ import annotations

import os

from dpl_web import paths


def create_app(test_config: dict | None = None):
    """Build the Flask application (the factory pattern of Flask's tutorial)."""
    # Imported here, not at the top: the CLI, the inventory plugin and the lookup import
    # dpl_web too, and Flask would cost each of them ~100 ms for nothing.
    from flask import Flask

    app = Flask(__name__)
    app.config.from_mapping(REGISTRY=str(paths.registry_path()),
                            SESSION_IDLE_SECONDS=int(os.environ.get("DPL_SESSION_IDLE_SECONDS") or 7200))
    if test_config:
        app.config.update(test_config)

    from dpl_web import api, health, hooks, metrics, web

    app.register_blueprint(health.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(metrics.bp)
    api.register(app)
    web.register(app)
    return app
