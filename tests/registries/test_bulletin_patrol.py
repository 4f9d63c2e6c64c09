"""The bulletins' patrol section on the demo county's seeded tracks (2026-10-18 to 2026-10-31),
checked against the same figures computed here another way: in SQL over the stored fixes
(window functions for the time between fixes, PostGIS for where they were and how close)."""
import io
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest
from pypdf import PdfReader
from sqlalchemy import text

from gridmap.services import bulletins, patrol, risk
from tests.conftest import auth
from tests.registries.conftest import NAODIAN

CST = timezone(timedelta(hours=8))
PERIOD = "2026-10"
LOWER = datetime(2026, 10, 1, tzinfo=CST)
CUT = datetime(2026, 11, 1, tzinfo=CST)   # the period's end: "now" is later
NOW = datetime(2026, 11, 26, 10, tzinfo=CST)
GAP_MINUTES = 10
VISIT_M = 50
METRIC_SRID = 4547


def sql_patrol_minutes(session, division: str, town: str | None = None) -> dict[str, float]:
    """Minutes between consecutive fixes of a track (at most GAP_MINUTES apart), by the division
    (towns or villages) holding the first fix; both fixes inside the period."""
    where = "" if town is None else "AND d.town_code = :town"
    rows = session.execute(text(f"""
        WITH f AS (SELECT track_id, t, geom, lead(t) OVER (PARTITION BY track_id ORDER BY t) AS t_next
                   FROM patrol_track_points WHERE t >= :lower AND t <= :cut)
        SELECT d.code, sum(extract(epoch FROM t_next - t) / 60.0)
        FROM f JOIN {division} d ON ST_Intersects(d.geom, f.geom)
        WHERE t_next > t AND t_next - t <= make_interval(mins => :gap) {where}
        GROUP BY d.code"""), {"lower": LOWER, "cut": CUT, "gap": GAP_MINUTES, "town": town}).all()
    return {code: float(minutes) for code, minutes in rows}


def sql_last_fix_near(session, grid_codes: list[str]) -> dict[str, datetime | None]:
    """The latest fix in the period within VISIT_M metres (in the metric CRS) of each grid."""
    rows = session.execute(text("""
        SELECT g.code, (SELECT max(p.t) FROM patrol_track_points p
                        WHERE p.t >= :lower AND p.t <= :cut
                          AND ST_DWithin(p.geom, g.geom, 0.002)
                          AND ST_DWithin(ST_Transform(p.geom, :srid), ST_Transform(g.geom, :srid), :metres))
        FROM grids g WHERE g.code = ANY(:codes)"""),
        {"lower": LOWER, "cut": CUT, "srid": METRIC_SRID, "metres": VISIT_M, "codes": grid_codes}).all()
    return dict(rows)


@pytest.fixture(scope="module")
def expected(database):
    """Per town and per village of 闹店镇: minutes, high-risk grids, visited, not visited in 24/48 h."""
    from gridmap.db import session_scope

    with session_scope(database) as session:
        grids = patrol.risk_for(session, CUT, risk.RiskSettings()).grids
        high = grids.loc[(grids["risk_level"] >= 3) | (grids["gi_bin"] > 0)]
        last = sql_last_fix_near(session, list(high["code"]))
        town_minutes = sql_patrol_minutes(session, "towns")
        village_minutes = sql_patrol_minutes(session, "villages", NAODIAN)
        all_minutes = session.execute(text("""
            WITH f AS (SELECT t, lead(t) OVER (PARTITION BY track_id ORDER BY t) AS t_next
                       FROM patrol_track_points WHERE t >= :lower AND t <= :cut)
            SELECT sum(extract(epoch FROM t_next - t) / 60.0) FROM f
            WHERE t_next > t AND t_next - t <= make_interval(mins => :gap)"""),
            {"lower": LOWER, "cut": CUT, "gap": GAP_MINUTES}).scalar_one()

    def figures(key):
        out = {}
        for code, group in high.groupby(key):
            times = [last[g] for g in group["code"]]
            out[code] = {"high_risk_grids": len(times), "high_risk_visited": sum(t is not None for t in times),
                         **{f"stale_{h}": sum(t is None or (CUT - t) >= timedelta(hours=h) for t in times)
                            for h in (24, 48)}}
        return out

    return {"towns": figures("town_code"), "villages": figures("village_code"), "town_minutes": town_minutes,
            "village_minutes": village_minutes, "all_minutes": float(all_minutes),
            "n_high": len(high), "n_visited": sum(v is not None for v in last.values())}


def build(session, user, **args):
    request = bulletins.parse_request(session, {"period": PERIOD, **args}, NOW.date())
    return bulletins.build_bulletin(session, user, request, now=NOW)


def section(bulletin):
    return next(s for s in bulletin.sections if s.key == "patrol")


def test_county_bulletin_patrol_per_town(db_session, users, expected):
    result = build(db_session, users["county_officer"][0], sections="patrol")
    patrol_section = section(result)
    assert [h for _, h in patrol_section.columns] == ["乡镇（街道）", "巡逻时长（分钟）", "日均巡逻（分钟）", "高风险网格",
                                                      "期内已到访", "到访率", "超过 24 小时未巡逻"]
    rows = {row["code"]: row for row in patrol_section.rows}
    assert len(rows) == db_session.execute(text("SELECT count(*) FROM towns")).scalar_one()
    # The seeded tracks patrol every town; the SQL figures cover them all.
    assert set(expected["town_minutes"]) == set(rows)
    for code, row in rows.items():
        minutes = expected["town_minutes"][code]
        assert row["patrol_minutes"] == pytest.approx(minutes, abs=0.051), code
        assert row["patrol_minutes_per_day"] == pytest.approx(minutes / 31, abs=0.051), code
        figures = expected["towns"].get(code, {"high_risk_grids": 0, "high_risk_visited": 0, "stale_24": 0})
        assert (row["high_risk_grids"], row["high_risk_visited"], row["high_risk_not_visited"]) == \
            (figures["high_risk_grids"], figures["high_risk_visited"], figures["stale_24"]), code
        share = figures["high_risk_visited"] / figures["high_risk_grids"] if figures["high_risk_grids"] else None
        assert row["high_risk_visited_share"] == ("—" if share is None else f"{share * 100:.1f}%"), code
    # Minutes are placed, not lost: the towns add up to every fix-to-fix interval in the period.
    assert patrol_section.total["patrol_minutes"] == pytest.approx(expected["all_minutes"], abs=0.051)
    n = result.numbers["patrol"]
    assert (n["high_risk_grids"], n["high_risk_visited"]) == (expected["n_high"], expected["n_visited"])
    # Not a degenerate demo: some high-risk grids were visited and some were missed.
    assert 0 < expected["n_visited"] < expected["n_high"]
    assert 0 < n["high_risk_not_visited"] <= expected["n_high"]
    summary = dict(result.summary)["巡逻覆盖"]
    assert f"高风险网格 {expected['n_high']} 个，期内到访 {expected['n_visited']} 个" in summary


def test_town_bulletin_patrol_per_village_in_excel_and_pdf(client, db_session, users, expected):
    token = users["town_supervisor"][1]
    query = f"period={PERIOD}&town={NAODIAN}&patrol_hours=48&sections=patrol,ranking"
    response = client.get(f"/api/bulletins?{query}&format=xlsx", headers=auth(token))
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(response.data))
    rows = list(workbook["巡逻覆盖情况"].iter_rows(values_only=True))
    header = rows[1]
    assert header == ("村（社区）", "巡逻时长（分钟）", "日均巡逻（分钟）", "高风险网格", "期内已到访", "到访率",
                      "超过 48 小时未巡逻")
    body = [r for r in rows[2:] if r[0] and r[0] != "合计" and r[1] is not None]
    names = dict(db_session.execute(text("SELECT name, code FROM villages WHERE town_code = :t"),
                                    {"t": NAODIAN}).all())
    assert len(body) == len(names)
    for row in body:
        code = names[row[0]]
        assert row[1] == pytest.approx(expected["village_minutes"].get(code, 0.0), abs=0.051), row
        figures = expected["villages"].get(code, {"high_risk_grids": 0, "high_risk_visited": 0, "stale_48": 0})
        assert (row[3], row[4], row[6]) == (figures["high_risk_grids"], figures["high_risk_visited"],
                                            figures["stale_48"]), row
    total = next(r for r in rows if r[0] == "合计")
    town = expected["towns"][NAODIAN]
    assert total[1] == pytest.approx(expected["town_minutes"][NAODIAN], abs=0.051)
    assert (total[3], total[4], total[6]) == (town["high_risk_grids"], town["high_risk_visited"], town["stale_48"])
    summary = {r[0]: r[1] for r in workbook["通报"].iter_rows(values_only=True) if r and r[0]}
    assert f"超过 48 小时未巡逻 {town['stale_48']} 个" in summary["巡逻覆盖"]

    response = client.get(f"/api/bulletins?{query}&format=pdf", headers=auth(token))
    assert response.status_code == 200
    content = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert "巡逻覆盖情况" in content and "超过 48 小时未巡逻" in content
    assert f"{expected['town_minutes'][NAODIAN]:.1f}" in content


def test_bulletin_page_shows_the_patrol_table(client, users, expected):
    from tests.conftest import PASSWORD

    client.post("/login", data={"username": "r_county", "password": PASSWORD})
    response = client.get(f"/registries/bulletins?period={PERIOD}&sections=patrol")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="section-patrol"' in page and 'name="patrol_hours"' in page
    minutes = expected["town_minutes"][NAODIAN]
    assert f'<tr class="" data-code="{NAODIAN}"><td>闹店镇</td><td>{round(minutes, 1)}</td>' in page


@pytest.mark.parametrize("hours", ["0", "abc", "5000"])
def test_bad_patrol_hours_name_the_field(client, users, hours):
    response = client.get(f"/api/bulletins?period={PERIOD}&patrol_hours={hours}",
                          headers=auth(users["county_officer"][1]))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "patrol_hours"


def test_a_month_before_the_tracks_has_no_patrol_and_every_high_risk_grid_unvisited(db_session, users):
    request = bulletins.parse_request(db_session, {"period": "2026-09", "sections": "patrol"}, NOW.date())
    result = bulletins.build_bulletin(db_session, users["viewer"][0], request, now=NOW)
    patrol_section = section(result)
    assert all(row["patrol_minutes"] == 0 and row["high_risk_visited"] == 0 for row in patrol_section.rows)
    assert patrol_section.total["high_risk_not_visited"] == patrol_section.total["high_risk_grids"] > 0
