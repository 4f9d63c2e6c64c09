"""HTML pages: thin views that ask services for data and maps/ for the folium map."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for
from flask_login import login_required

from gridmap.maps.home import build_home_map
from gridmap.maps.render import map_parts
from gridmap.services import layers
from gridmap.web import db_session
from gridmap.web.auth import current_db_user

bp = Blueprint("pages", __name__)


@bp.get("/")
@login_required
def home():
    session = db_session()
    user = current_db_user()
    county = layers.county_geojson(session)
    m = build_home_map(
        bounds=layers.bounds(county),
        county=county,
        towns=layers.layer_geojson(session, user, "towns", simplify_m=20),
        stations=layers.layer_geojson(session, user, "stations"),
        zones=layers.layer_geojson(session, user, "patrol-zones", simplify_m=20),
        mediation_points=layers.layer_geojson(session, user, "mediation-points"),
        villages_url=url_for("api.layer", name="villages", simplify=5),
        grids_url=url_for("api.layer", name="grids"),
        basemap_url=current_app.config["BASEMAP_URL"],
        basemap_attribution=current_app.config["BASEMAP_ATTRIBUTION"],
    )
    return render_template("map_page.html", map=map_parts(m))
