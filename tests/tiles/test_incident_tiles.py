"""Tiles built by gridmap.tiles.registry, decoded and checked against an independent reckoning
of the demo county's incidents (web-Mercator maths in Python)."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime

import pytest
from sqlalchemy import text

from gridmap.errors import NotFound, ValidationError
from gridmap.tiles import registry
from gridmap.tiles.registry import IncidentFilter, Scope
from tests.tiles.helpers import (CHINA, EXTENT, cell_of, decode, drawn_cells, expected_cells, incidents,
                                 mercator, tile_of, width)

NAODIAN = "410421102000"
FANYING = "410421102204"


@pytest.fixture
def busiest_point(db_session):
    """The incident nearest the middle of the busiest 0.005-degree square: inside a dense tile."""
    return db_session.execute(text("""
        WITH dense AS (SELECT ST_SnapToGrid(geom, 0.005) AS centre, count(*) AS n
                         FROM incidents GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1)
        SELECT i.id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
          FROM incidents AS i, dense ORDER BY i.geom <-> dense.centre, i.id LIMIT 1""")).mappings().one()


def in_tile(r, z, x, y, buffer_px=registry.POINT_BUFFER_PX) -> bool:
    px, py = mercator(r["lon"], r["lat"])
    w = width(z)
    pad = w * buffer_px / 256
    west, north = -20037508.342789244 + x * w, 20037508.342789244 - y * w
    return west - pad <= px <= west + w + pad and north - w - pad <= py <= north + pad


def test_a_high_zoom_tile_holds_exactly_the_incidents_there(db_session, busiest_point):
    z = 16
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], z)
    data = registry.render_tile(db_session, "incidents", z, x, y)
    layer = decode(data)["incidents"]
    assert layer["extent"] == EXTENT
    features = {f["id"]: f for f in layer["features"]}
    rows = {r["id"]: r for r in incidents(db_session) if in_tile(r, z, x, y)}
    assert busiest_point["id"] in features
    assert set(features) == set(rows)
    for incident_id, r in rows.items():
        f = features[incident_id]
        assert f["properties"]["category"] == r["category"]
        assert f["properties"]["status"] == r["status"]
        assert f["properties"]["severity"] == r["severity"]
        # Where the point is drawn: its Mercator position in tile units (0..4096, y down).
        px, py = mercator(r["lon"], r["lat"])
        w = width(z)
        ex = (px - (-20037508.342789244 + x * w)) / w * EXTENT
        ey = ((20037508.342789244 - y * w) - py) / w * EXTENT
        fx, fy = f["geometry"]["coordinates"]
        assert abs(fx - ex) <= 1 and abs(fy - ey) <= 1


@pytest.mark.parametrize("z", [8, 10, 12])
def test_low_zoom_tiles_count_per_cell_like_a_fresh_count(db_session, busiest_point, z):
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], z)
    data = registry.render_tile(db_session, "incidents", z, x, y)
    assert "incidents" not in decode(data)
    drawn = drawn_cells(data)
    assert drawn == expected_cells(incidents(db_session), z, x, y)
    assert sum(drawn.values()) > 100


def test_a_tile_outside_the_county_is_empty(db_session):
    x, y = tile_of(116.39, 39.91, 10)    # Beijing
    for layer in registry.LAYERS:
        assert registry.render_tile(db_session, layer, 10, x, y) == b""
    x, y = tile_of(116.39, 39.91, 16)
    assert registry.render_tile(db_session, "incidents", 16, x, y) == b""


def test_category_and_status_filters_change_the_content(db_session, busiest_point):
    z = 11
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], z)
    everything = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y))
    flt = IncidentFilter.parse(["DSP,PET"], ["open"])
    filtered = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y, flt))
    rows = [r for r in incidents(db_session) if r["category"] in ("DSP", "PET")
            and r["status"] in registry.OPEN_STATUSES]
    assert filtered == expected_cells(rows, z, x, y)
    assert 0 < sum(filtered.values()) < sum(everything.values())


@pytest.mark.parametrize("period", [
    ("2026-01-01", "2026-03-31"),      # whole months only
    ("2026-01-10", "2026-04-20"),      # whole months and days at both ends
    ("2026-02-03", "2026-02-17"),      # days within one month
    ("2026-05-15", None),              # open end
    (None, "2025-12-09"),              # open start
])
def test_period_filter_counts_whole_months_and_the_days_around_them(db_session, busiest_point, period):
    start, end = period
    z = 10
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], z)
    flt = IncidentFilter.parse(None, None, start, end)
    drawn = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y, flt))
    low = date.fromisoformat(start) if start else date.min
    high = date.fromisoformat(end) if end else date.max
    rows = [r for r in incidents(db_session) if low <= r["occurred_at"].astimezone(CHINA).date() <= high]
    assert drawn == expected_cells(rows, z, x, y)
    assert sum(drawn.values()) > 0


def _overdue_ids(db_session) -> set[int]:
    """Overdue by the rule the case list uses (services.incidents.overdue_condition)."""
    from sqlalchemy import select

    from gridmap.models import Incident
    from gridmap.services.incidents import overdue_condition
    return set(db_session.scalars(select(Incident.id).where(overdue_condition(datetime.now(CHINA)))))


def test_overdue_filter_and_the_ring_property(db_session):
    overdue = _overdue_ids(db_session)
    assert len(overdue) > 20
    rows = [r for r in incidents(db_session) if r["id"] in overdue]
    # A tile of points around an overdue incident: only overdue ones with the filter, and every
    # point carries when it is overdue (the map rings it once that time has passed).
    first = min(rows, key=lambda r: r["id"])
    z = 15
    x, y = tile_of(first["lon"], first["lat"], z)
    only = decode(registry.render_tile(db_session, "incidents", z, x, y, IncidentFilter.parse(overdue="1")))
    assert {f["id"] for f in only["incidents"]["features"]} == {r["id"] for r in rows if in_tile(r, z, x, y)}
    everything = decode(registry.render_tile(db_session, "incidents", z, x, y))["incidents"]["features"]
    now = datetime.now(CHINA).timestamp()
    ringed = {f["id"] for f in everything if (f["properties"].get("overdue_at") or now + 1) < now}
    assert ringed == {r["id"] for r in rows if in_tile(r, z, x, y)}
    not_late = decode(registry.render_tile(db_session, "incidents", z, x, y, IncidentFilter.parse(overdue="0")))
    assert {f["id"] for f in not_late["incidents"]["features"]} == {f["id"] for f in everything} - ringed
    # Counts at low zoom are made from incidents (the cell tables do not know deadlines).
    for z in (9, 11):
        x, y = tile_of(first["lon"], first["lat"], z)
        drawn = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y, IncidentFilter.parse(overdue="1")))
        assert drawn == expected_cells(rows, z, x, y)
    # What is at a point says so, and counts only overdue incidents with the filter.
    answer = registry.incidents_at(db_session, first["lon"], first["lat"], 18)
    assert any(i["id"] == first["id"] and i["overdue"] for i in answer["incidents"])
    cell = registry.incidents_at(db_session, first["lon"], first["lat"], 9, IncidentFilter.parse(overdue="1"))
    gx, gy = cell_of(first["lon"], first["lat"], 13)
    assert cell["n"] == sum(1 for r in rows if cell_of(r["lon"], r["lat"], 13) == (gx, gy))


def test_overdue_filter_keys_the_etag_by_the_minute():
    plain, late = IncidentFilter.parse(), IncidentFilter.parse(overdue="yes")
    assert late.overdue is True and late.as_of.second == 0 and late.key() != plain.key()
    assert IncidentFilter.parse(overdue="0").key() != late.key()
    assert not late.counted_in_tables and plain.counted_in_tables


def test_month_decomposition():
    flt = IncidentFilter.parse(None, None, "2026-01-10", "2026-04-20")
    parts = flt.month_params()
    assert (parts["month_from"], parts["month_to"]) == (date(2026, 2, 1), date(2026, 3, 1))
    assert parts["edge1_from"] == datetime(2026, 1, 10, tzinfo=CHINA)
    assert parts["edge1_to"] == datetime(2026, 2, 1, tzinfo=CHINA)
    assert parts["edge2_from"] == datetime(2026, 4, 1, tzinfo=CHINA)
    assert parts["edge2_to"] == datetime(2026, 4, 21, tzinfo=CHINA)
    whole = IncidentFilter.parse(None, None, "2026-02-01", "2026-02-28").month_params()
    assert (whole["month_from"], whole["month_to"]) == (date(2026, 2, 1), date(2026, 2, 1))
    assert whole["edge1_from"] is None and whole["edge2_from"] is None


@pytest.mark.parametrize("role, scopes", [
    ("town_supervisor", [NAODIAN]),          # answered from the cell tables (counted per town)
    ("grid_worker", [FANYING]),              # counted from incidents (finer than a town)
    ("police", ["__ZONE__"]),                # a patrol zone
])
def test_tiles_show_only_the_users_scope(db_session, make_user, role, scopes):
    if scopes == ["__ZONE__"]:
        scopes = [db_session.execute(text("SELECT min(code) FROM patrol_zones")).scalar_one()]
    user, _ = make_user("scoped", role, scopes)
    scope = Scope.for_user(role, scopes, user.id)
    assert scope.counted_per_town == (role == "town_supervisor")
    from gridmap.models import Incident
    from gridmap.services.scopes import coded_condition
    from sqlalchemy import select
    visible = set(db_session.scalars(select(Incident.id).where(coded_condition(
        user, Incident.town_code, Incident.village_code, Incident.grid_code, Incident.geom))))
    rows = [r for r in incidents(db_session) if r["id"] in visible]
    assert rows
    lon = sorted(r["lon"] for r in rows)[len(rows) // 2]
    lat = sorted(r["lat"] for r in rows)[len(rows) // 2]
    for z in (10, 12):
        x, y = tile_of(lon, lat, z)
        drawn = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y, scope=scope))
        assert drawn == expected_cells(rows, z, x, y)
        everything = drawn_cells(registry.render_tile(db_session, "incidents", z, x, y))
        assert sum(drawn.values()) < sum(everything.values())


def test_a_grid_worker_also_sees_own_reports_and_a_mediator_nothing_else(db_session, make_user):
    user, _ = make_user("reporter", "grid_worker", [FANYING])
    far = db_session.execute(text("SELECT id, ST_X(geom), ST_Y(geom) FROM incidents "
                                  "WHERE town_code <> :t ORDER BY id LIMIT 1"), {"t": NAODIAN}).one()
    db_session.execute(text("UPDATE incidents SET reporter_id = :u WHERE id = :i"), {"u": user.id, "i": far[0]})
    z = 16
    x, y = tile_of(far[1], far[2], z)
    scope = Scope.for_user("grid_worker", [FANYING], user.id)
    ids = {f["id"] for f in decode(registry.render_tile(db_session, "incidents", z, x, y, scope=scope))["incidents"]["features"]}
    assert ids == {far[0]}
    mediator = Scope.for_user("mediator", ["999"], 1)
    assert registry.render_tile(db_session, "incidents", z, x, y, scope=mediator) == b""


def test_a_dense_tile_at_high_zoom_falls_back_to_counts(db_session, busiest_point, monkeypatch, make_user):
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], 14)
    assert "incidents" in decode(registry.render_tile(db_session, "incidents", 14, x, y))
    monkeypatch.setattr(registry, "MAX_POINTS", 5)
    # Up to z14 from the cell tables, at their finest zoom (16): 4 x 4 cells a tile.
    data = registry.render_tile(db_session, "incidents", 14, x, y)
    assert "incidents" not in decode(data)
    assert drawn_cells(data) == expected_cells(incidents(db_session), 14, x, y, c=16)
    # Further in, or for a scope finer than a town, counted from incidents at 16 x 16 a tile.
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], 15)
    assert drawn_cells(registry.render_tile(db_session, "incidents", 15, x, y)) == \
        expected_cells(incidents(db_session), 15, x, y)
    village = db_session.execute(text("SELECT village_code FROM incidents WHERE id = :i"),
                                 {"i": busiest_point["id"]}).scalar_one()
    user, _ = make_user("worker", "grid_worker", [village])
    scope = Scope.for_user("grid_worker", [village], user.id)
    x, y = tile_of(busiest_point["lon"], busiest_point["lat"], 14)
    data = registry.render_tile(db_session, "incidents", 14, x, y, scope=scope)
    rows = [r for r in incidents(db_session, "village_code = :v", {"v": village})]
    assert len(rows) > 5
    assert drawn_cells(data) == expected_cells(rows, 14, x, y)


def test_no_tile_is_over_500_kb(db_session):
    """Every tile over the county at the zooms where layers are busiest."""
    box = db_session.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                  "FROM (SELECT ST_Extent(geom) AS e FROM counties) AS s")).one()
    biggest = Counter()
    for layer, zooms in {"incidents": (9, 11, 13), "grids": (10, 11), "villages": (8, 10), "towns": (6, 9)}.items():
        for z in zooms:
            x0, y0 = tile_of(box[0], box[3], z)
            x1, y1 = tile_of(box[2], box[1], z)
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    size = len(registry.render_tile(db_session, layer, z, x, y))
                    biggest[layer] = max(biggest[layer], size)
    assert all(0 < size <= registry.MAX_TILE_BYTES for size in biggest.values()), biggest


def test_polygons_are_simplified_more_at_low_zoom_and_scoped(db_session, make_user):
    code, lon, lat, vertices = db_session.execute(text("""
        SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), ST_NPoints(geom)
          FROM grids ORDER BY ST_NPoints(geom) DESC, code LIMIT 1""")).one()

    def drawn_vertices(z):
        layer = decode(registry.render_tile(db_session, "grids", z, *tile_of(lon, lat, z)))["grids"]
        feature = next(f for f in layer["features"] if f["properties"]["code"] == code)
        return sum(len(ring) for poly in _polygons(feature["geometry"]) for ring in poly)

    assert drawn_vertices(10) < drawn_vertices(13) <= vertices + 2
    x, y = tile_of(lon, lat, 10)
    user, _ = make_user("sup", "town_supervisor", [NAODIAN])
    scoped = decode(registry.render_tile(db_session, "grids", 10, x, y, scope=Scope.for_user(
        "town_supervisor", [NAODIAN], user.id)))
    codes = {f["properties"]["code"] for f in scoped.get("grids", {"features": []})["features"]}
    assert codes and all(c.startswith("410421102") for c in codes)
    towns = decode(registry.render_tile(db_session, "towns", 8, *tile_of(lon, lat, 8)))["towns"]
    assert len(towns["features"]) == 13
    assert registry.render_tile(db_session, "grids", 9, *tile_of(lon, lat, 9)) == b""   # below its zoom


def _polygons(geometry):
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


@pytest.mark.parametrize("layer, z, x, y, error", [
    ("roads", 10, 0, 0, NotFound),
    ("incidents", 23, 0, 0, ValidationError),
    ("incidents", -1, 0, 0, ValidationError),
    ("incidents", 3, 8, 0, ValidationError),
    ("grids", 3, 0, 8, ValidationError),
])
def test_unknown_layers_and_tiles_out_of_range_are_refused(db_session, layer, z, x, y, error):
    with pytest.raises(error):
        registry.render_tile(db_session, layer, z, x, y)


@pytest.mark.parametrize("args, field", [
    ({"categories": ["XYZ"]}, "category"),
    ({"statuses": ["lost"]}, "status"),
    ({"date_from": "2026-02-30"}, "from"),
    ({"date_to": "yesterday"}, "to"),
    ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "from"),
    ({"overdue": "maybe"}, "overdue"),
])
def test_bad_filters_name_their_field(args, field):
    with pytest.raises(ValidationError) as caught:
        IncidentFilter.parse(**args)
    assert caught.value.field == field


def test_what_is_at_a_point_points_and_cells(db_session, busiest_point):
    answer = registry.incidents_at(db_session, busiest_point["lon"], busiest_point["lat"], 17)
    assert answer["mode"] == "points"
    assert answer["incidents"][0]["id"] == busiest_point["id"]
    assert answer["total"] >= 1 and answer["incidents"][0]["category_name"]
    cell = registry.incidents_at(db_session, busiest_point["lon"], busiest_point["lat"], 10)
    assert cell["mode"] == "cell"
    gx, gy = cell_of(busiest_point["lon"], busiest_point["lat"], 14)
    expected = Counter(r["category"] for r in incidents(db_session) if cell_of(r["lon"], r["lat"], 14) == (gx, gy))
    assert {c["code"]: c["n"] for c in cell["by_category"]} == dict(expected)
    assert cell["n"] == sum(expected.values()) == sum(s["n"] for s in cell["by_status"])
    west, south, east, north = cell["bounds"]
    assert west <= busiest_point["lon"] <= east and south <= busiest_point["lat"] <= north
    with pytest.raises(ValidationError):
        registry.incidents_at(db_session, "x", 33.8, 10)
    with pytest.raises(ValidationError):
        registry.incidents_at(db_session, 113, 95, 10)
