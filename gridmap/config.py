"""Settings from the environment. Fail fast on what a deployment must set."""
from __future__ import annotations

import os
import secrets

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/gridmap"


def database_url() -> str:
    url = os.environ.get("GRIDMAP_DATABASE_URL", DEFAULT_DATABASE_URL)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    if not url.startswith("postgresql"):
        raise RuntimeError("GRIDMAP_DATABASE_URL must be a PostgreSQL/PostGIS URL")
    return url


class Config:
    """Defaults; every key can be overridden by a GRIDMAP_<KEY> environment variable."""

    SQLALCHEMY_DATABASE_URI = None  # filled by load_config
    SECRET_KEY = None
    # Metric CRS for areas, distances and buffers (CGCS2000 / 3-degree GK CM 114E).
    METRIC_CRS = "EPSG:4547"
    # Basemap: "osm" tiles, an intranet/Tianditu URL template, or "" for none.
    BASEMAP_URL = ""
    BASEMAP_ATTRIBUTION = ""
    COUNTY_CODE = "410421"
    COUNTY_NAME = "宝丰县"
    DEMO_SYNTHETIC = True
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_SUPPORTED_LOCALES = ("zh_CN", "en")
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 200 * 1024 * 1024
    API_PAGE_SIZE = 500
    API_MAX_FEATURES = 5000
    # Possible duplicates of a new incident: open, same category, this close in space and time.
    DUPLICATE_DISTANCE_M = 200
    DUPLICATE_WINDOW_HOURS = 72
    # Risk map: an incident adds its severity weight x 0.5 ** (age in days / half-life) to its grid's
    # score; scores are cut into RISK_CLASSES levels by natural_breaks (Fisher-Jenks) or quantiles.
    RISK_SEVERITY_WEIGHTS = "1:1,2:2,3:4,4:8"
    RISK_HALF_LIFE_DAYS = 30
    RISK_CLASSES = 5
    RISK_CLASS_METHOD = "natural_breaks"
    RISK_DEFAULT_DAYS = 90
    # Gi* hot spots: grid neighbours "queen" (shared edge or corner) or "distance_band:<metres>".
    RISK_ADJACENCY = "queen"
    # What Gi* tests: score_per_km2 (grids differ in size, so densities), score, per_km2, per_1000, n_total.
    RISK_HOTSPOT_VALUE = "score_per_km2"
    RISK_PERMUTATIONS = 999
    RISK_SEED = 12345
    # Grid layers larger than this are fetched by the map page instead of inlined in it.
    RISK_INLINE_MAX_FEATURES = 3000
    HEATMAP_CELL_M = 200
    MEDIATION_GAP_DISTANCE_M = 2000
    # Patrol: straight-line speed when no roads are loaded, the fastest believable GPS movement, what
    # counts as a visit (fixes within this distance; a gap this long splits it), the risk level from
    # which a grid is a route candidate, the default coverage period and look-back for last visits,
    # and the route solver's time limit (plan in about this plus 0.5 s).
    PATROL_SPEED_KMH = 30
    PATROL_MAX_SPEED_KMH = 120
    PATROL_VISIT_DISTANCE_M = 50
    PATROL_GAP_MINUTES = 10
    PATROL_HIGH_RISK_LEVEL = 3
    PATROL_LOOKBACK_DAYS = 14
    PATROL_ROUTE_TIME_LIMIT_S = 2
    PATROL_ROAD_SNAP_M = 500


def load_config(overrides: dict | None = None) -> dict:
    cfg = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    for key in list(cfg):
        env = os.environ.get(f"GRIDMAP_{key}")
        if env is not None:
            cfg[key] = env
    cfg["SQLALCHEMY_DATABASE_URI"] = database_url()
    cfg["SECRET_KEY"] = os.environ.get("GRIDMAP_SECRET_KEY") or _dev_secret()
    cfg.update(overrides or {})
    return cfg


def _dev_secret() -> str:
    """A per-installation secret kept in the instance folder, so sessions survive restarts."""
    path = os.path.join(os.environ.get("GRIDMAP_INSTANCE", os.path.expanduser("~/.gridmap")), "secret_key")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(secrets.token_hex(32))
    with open(path) as fh:
        return fh.read().strip()
