"""Map layers as GeoJSON FeatureCollections, filtered by bbox and by what the user may see."""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridmap.errors import NotFound, ValidationError
from gridmap.models import Grid, MediationPoint, PatrolZone, PoliceStation, Town, User, Village
from gridmap.services.scopes import area_condition


@dataclass(frozen=True)
class Layer:
    model: type
    properties: tuple[str, ...]
    id_column: str = "code"
    points: bool = False


LAYERS: dict[str, Layer] = {
    "towns": Layer(Town, ("code", "name")),
    "villages": Layer(Village, ("code", "name", "town_code")),
    "grids": Layer(Grid, ("code", "name", "village_code", "population", "households", "area_km2")),
    "stations": Layer(PoliceStation, ("code", "name", "town_code"), points=True),
    "patrol-zones": Layer(PatrolZone, ("code", "name", "station_code")),
    "mediation-points": Layer(MediationPoint, ("id", "name", "kind", "village_code", "contact",
                                               "mediators", "opening_hours"), id_column="id", points=True),
}


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` in WGS84, or None when absent."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise ValidationError("bbox must be minlon,minlat,maxlon,maxlat", "bbox")
    try:
        minx, miny, maxx, maxy = (float(p) for p in parts)
    except ValueError:
        raise ValidationError("bbox values must be numbers", "bbox") from None
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise ValidationError("bbox must satisfy -180<=minlon<maxlon<=180 and -90<=minlat<maxlat<=90", "bbox")
    return minx, miny, maxx, maxy


def layer_geojson(session: Session, user: User, name: str, bbox=None, simplify_m: float = 0.0) -> dict:
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no layer {name!r}", "layer")
    model = layer.model
    geom = model.geom
    if simplify_m > 0:
        # Degrees per metre at this latitude is close enough for display simplification.
        geom = func.ST_SimplifyPreserveTopology(model.geom, simplify_m / 111_000.0)
    columns = [getattr(model, p) for p in layer.properties]
    query = select(func.ST_AsGeoJSON(geom, 6).label("geometry"), *columns).where(
        area_condition(session, user, model.geom, layer.points))
    if bbox is not None:
        query = query.where(func.ST_Intersects(model.geom, func.ST_MakeEnvelope(*bbox, 4326)))
    query = query.order_by(getattr(model, layer.id_column))
    features = []
    for row in session.execute(query):
        props = {p: getattr(row, p) for p in layer.properties}
        features.append({"type": "Feature", "id": props[layer.id_column],
                         "geometry": json.loads(row.geometry), "properties": props})
    return {"type": "FeatureCollection", "features": features}


def county_geojson(session: Session) -> dict:
    """The county outline(s) as a FeatureCollection; the outline is public to every user."""
    from gridmap.models import County

    rows = session.execute(select(County.code, County.name, func.ST_AsGeoJSON(County.geom, 6).label("g")))
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r.code, "geometry": json.loads(r.g), "properties": {"code": r.code, "name": r.name}}
        for r in rows]}


def bounds(collection: dict) -> tuple[float, float, float, float]:
    """(minlon, minlat, maxlon, maxlat) of a FeatureCollection; the whole of China when empty."""
    xs, ys = [], []

    def walk(coords):
        if coords and isinstance(coords[0], (int, float)):
            xs.append(coords[0])
            ys.append(coords[1])
        else:
            for c in coords:
                walk(c)

    for f in collection["features"]:
        walk(f["geometry"]["coordinates"])
    if not xs:
        return 73.5, 18.0, 135.0, 53.5
    return min(xs), min(ys), max(xs), max(ys)
