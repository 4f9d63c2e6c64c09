"""Serves the front-end packages installed from package.json (Leaflet and plugins), so maps
work without any CDN, e.g. on a government intranet."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, abort, send_from_directory

bp = Blueprint("assets", __name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = PROJECT_ROOT / "node_modules"


@lru_cache(maxsize=1)
def _packages() -> frozenset[str]:
    manifest = json.loads((PROJECT_ROOT / "package.json").read_text())
    return frozenset(manifest["dependencies"])


@bp.get("/vendor/<path:path>")
def vendor(path: str):
    parts = path.split("/")
    package = "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
    if package not in _packages():
        abort(404)
    response = send_from_directory(NODE_MODULES, path, max_age=7 * 24 * 3600)
    return response
