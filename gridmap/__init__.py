"""gridmap: grid-management map for a county's political-legal committee (网格化管理地图)."""
from __future__ import annotations

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Application factory: load config, init db, register blueprints and CLI."""
    from gridmap.config import load_config
    from gridmap.web import init_web

    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config.update(load_config(config))
    init_web(app)
    return app
