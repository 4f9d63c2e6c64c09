"""Serves the front-end packages installed from package.json (Leaflet and plugins), so maps
work without any CDN, e.g. on a government intranet; and the pin page's service worker, which
keeps that page and its files so it opens offline after one visit."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, send_from_directory, url_for

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


# What the pin page needs to open without a network: its scripts and styles, and Leaflet's (with the
# marker images Leaflet loads only once a pin is placed).
PIN_SHELL_STATIC = ("incidents/incidents.css", "incidents/common.js", "incidents/pin.js", "favicon.svg")
PIN_SHELL_VENDOR = ("leaflet/dist/leaflet.css", "leaflet/dist/leaflet.js", "leaflet/dist/images/marker-icon.png",
                    "leaflet/dist/images/marker-icon-2x.png", "leaflet/dist/images/marker-shadow.png",
                    "leaflet/dist/images/layers.png", "leaflet/dist/images/layers-2x.png")
PIN_SERVICE_WORKER = "incidents/pin-sw.js"


@lru_cache(maxsize=8)
def _shell_version(stamps: tuple) -> str:
    """A digest of the shell files' contents: a new one makes browsers install the worker again."""
    digest = hashlib.sha256()
    for path, _, _ in stamps:
        digest.update(path.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


@bp.get("/pin-sw.js")
def pin_service_worker():
    static = Path(current_app.static_folder)
    files = [static / name for name in PIN_SHELL_STATIC + (PIN_SERVICE_WORKER,)]
    files += [NODE_MODULES / name for name in PIN_SHELL_VENDOR]
    try:
        stamps = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except FileNotFoundError:
        abort(404)
    shell = {"page": url_for("incidents.pin_page"),
             "assets": [url_for("static", filename=name) for name in PIN_SHELL_STATIC]
             + [url_for("assets.vendor", path=name) for name in PIN_SHELL_VENDOR]}
    prelude = (f"self.GM_PIN_SHELL = {json.dumps(shell)};\n"
               f"self.GM_PIN_VERSION = {json.dumps(_shell_version(stamps))};\n")
    body = prelude + (static / PIN_SERVICE_WORKER).read_text(encoding="utf-8")
    # Browsers compare the worker byte for byte on every visit; no-cache keeps that check honest.
    return Response(body, mimetype="text/javascript", headers={"Cache-Control": "no-cache"})
