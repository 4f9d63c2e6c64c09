"""Bulletins on seeded data whose answer is written down here; the Excel and PDF read back; who may
read which bulletin."""
import io
from datetime import date, datetime, timedelta, timezone

import openpyxl
import pytest
from pypdf import PdfReader
from sqlalchemy import text

from gridmap.models import Incident, Inspection, LegalActivity, Place
from gridmap.services import bulletins
from gridmap.errors import Forbidden, ValidationError
from tests.conftest import auth
from tests.registries.conftest import FANYING, NAODIAN, interior_point, other_village

CST = timezone(timedelta(hours=8))
PERIOD = "2024-03"   # before the demo's incidents, inspections and activities


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=CST)


@pytest.fixture
def seeded(db_session):
    """In 闹店镇, village A (范营村) and village B, in March 2024:

    incidents: A1 dispute accepted 03-05, resolved 03-10 (on time), closed 03-12;
               A2 criminal theft accepted 03-09, deadline 03-16, never resolved (overdue; A loses "三零");
               A3 a duplicate report (left out);
               B1 petition escalated to the county (B loses "三零");
               B2 fire hazard accepted 03-20, deadline 03-23, resolved late 03-25, closed 03-26;
               B3 dispute reported in February, accepted 03-01, resolved 03-10 (on time).
    places: P1 (30 days, last inspected 02-20, due 03-21, inspected 03-18) owed and done;
            P2 (30 days, registered 01-01, never inspected) owed, not done;
            P3 (180 days, registered 01-01) not owed, inspected 03-05 with a hazard.
    activities: two in A (50 and 70 people), one in B (30), one in A in February (left out).
    """
    s = db_session
    for table in ("case_review_items", "inspections", "places", "legal_activities"):
        s.execute(text(f"DELETE FROM {table}"))
    village_b = other_village(s, NAODIAN, FANYING)
    _, ax, ay = interior_point(s, FANYING)
    _, bx, by = interior_point(s, village_b)
    a, b = f"SRID=4326;POINT({ax} {ay})", f"SRID=4326;POINT({bx} {by})"

    def incident(geom, category, subcategory, status, reported, accepted=None, deadline=None, resolved=None,
                 closed=None, legal_class="none", severity=2, occurred=None):
        s.add(Incident(category=category, subcategory=subcategory, severity=severity, legal_class=legal_class,
                       status=status, occurred_at=at(occurred or reported, 8), reported_at=at(reported),
                       accepted_at=accepted and at(accepted), deadline_at=deadline and at(deadline),
                       resolved_at=resolved and at(resolved), closed_at=closed and at(closed),
                       description="测试", geom=geom))

    incident(a, "DSP", "neighbour", "closed", "2024-03-05", "2024-03-05", "2024-03-20", "2024-03-10", "2024-03-12")
    incident(a, "SEC", "theft", "accepted", "2024-03-08", "2024-03-09", "2024-03-16", legal_class="criminal",
             severity=3)
    incident(a, "DSP", "neighbour", "duplicate", "2024-03-06")
    incident(b, "PET", "county", "reported", "2024-03-15")
    incident(b, "FIR", "ebike", "closed", "2024-03-20", "2024-03-20", "2024-03-23", "2024-03-25", "2024-03-26")
    incident(b, "DSP", "land", "resolved", "2024-02-28", "2024-03-01", "2024-03-16", "2024-03-10")
    places = [Place(kind="nine_small", name="P1", inspection_interval_days=30, registered_on=date(2023, 12, 1),
                    geom=a),
              Place(kind="delivery", name="P2", inspection_interval_days=30, registered_on=date(2024, 1, 1), geom=a),
              Place(kind="enterprise", name="P3", inspection_interval_days=180, registered_on=date(2024, 1, 1),
                    geom=b)]
    s.add_all(places)
    s.flush()
    s.add_all([Inspection(place_id=places[0].id, inspected_on=date(2024, 2, 20), checklist={}, passed=True),
               Inspection(place_id=places[0].id, inspected_on=date(2024, 3, 18), checklist={}, passed=True),
               Inspection(place_id=places[2].id, inspected_on=date(2024, 3, 5), checklist={}, passed=False,
                          hazard_found=True, hazard_description="消防栓无水")])
    s.add_all([LegalActivity(held_on=date(2024, 3, 3), kind="villages", title="民法典", audience=50, geom=a),
               LegalActivity(held_on=date(2024, 3, 23), kind="schools", title="禁毒", audience=70, geom=a),
               LegalActivity(held_on=date(2024, 3, 9), kind="villages", title="反诈", audience=30, geom=b),
               LegalActivity(held_on=date(2024, 2, 9), kind="villages", title="宪法", audience=99, geom=a)])
    s.flush()
    villages_in_town = s.execute(text("SELECT count(*) FROM villages WHERE town_code = :t"),
                                 {"t": NAODIAN}).scalar_one()
    villages_in_county = s.execute(text("SELECT count(*) FROM villages")).scalar_one()
    return {"village_b": village_b, "town_villages": villages_in_town, "county_villages": villages_in_county}


def build(session, user, **args):
    request = bulletins.parse_request(session, {"period": PERIOD, **args}, date(2026, 11, 1))
    return bulletins.build_bulletin(session, user, request, now=at("2026-11-01"))


def test_town_bulletin_numbers(db_session, users, seeded):
    result = build(db_session, users["town_supervisor"][0], town=NAODIAN)
    n = result.numbers
    assert (n["reported"], n["accepted"], n["resolved"], n["on_time"], n["closed"], n["overdue"]) == (4, 4, 3, 2, 2, 1)
    assert n["by_category"] == {"DSP": 1, "SEC": 1, "FIR": 1, "HAZ": 0, "LOG": 0, "TRF": 0, "ACC": 0, "PET": 1}
    assert (n["villages"], n["three_zero_villages"]) == (seeded["town_villages"], seeded["town_villages"] - 2)
    assert (n["owed"], n["done"], n["inspections"], n["hazards"]) == (2, 1, 2, 1)
    assert (n["activities"], n["audience"]) == (3, 150)
    # 100 × (0.4 × 24/26 + 0.3 × 2/3 + 0.3 × 1/2); every other town has nothing owed or late, so scores 100.
    expected = round(100 * (0.4 * (seeded["town_villages"] - 2) / seeded["town_villages"] + 0.3 * 2 / 3 + 0.3 * 0.5), 2)
    ranking = {r["town_code"]: r for r in n["ranking"]}
    assert ranking[NAODIAN]["score"] == expected and ranking[NAODIAN]["rank"] == 13 == n["rank"]
    assert {r["score"] for code, r in ranking.items() if code != NAODIAN} == {100.0}
    three_zero = next(s for s in result.sections if s.key == "three_zero")
    by_code = {row["code"]: row for row in three_zero.rows}
    assert by_code[FANYING]["three_zero_label"] == "未达标" and by_code[FANYING]["serious_cases"] == 1
    assert by_code[seeded["village_b"]]["petitions"] == 1
    publicity = next(s for s in result.sections if s.key == "publicity")
    assert {r["code"]: (r["activities"], r["audience"]) for r in publicity.rows if r["activities"]} == \
        {FANYING: (2, 120), seeded["village_b"]: (1, 30)}


def test_county_bulletin_and_sections(db_session, users, seeded):
    result = build(db_session, users["county_officer"][0], sections="incidents,ranking", title="“六防六促”专项行动通报")
    assert [s.key for s in result.sections] == ["incidents", "ranking"]
    assert result.level == "county" and result.title == "“六防六促”专项行动通报"
    assert result.numbers["three_zero_villages"] == seeded["county_villages"] - 2
    incidents = result.sections[0]
    naodian = next(r for r in incidents.rows if r["code"] == NAODIAN)
    assert (naodian["cat_DSP"], naodian["reported"]) == (1, 4)
    assert incidents.total["reported"] == 4


def test_excel_and_pdf_read_back(client, users, seeded):
    token = users["town_supervisor"][1]
    response = client.get(f"/api/bulletins?period={PERIOD}&town={NAODIAN}&format=xlsx&title=六防六促通报",
                          headers=auth(token))
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    workbook = openpyxl.load_workbook(io.BytesIO(response.data))
    summary = {row[0]: row[1] for row in workbook["通报"].iter_rows(values_only=True) if row and row[0]}
    assert summary["闹店镇六防六促通报"] is None and summary["统计期间"] == "2024年03月"
    assert summary["上报事件"] == "4 件" and summary["期末超期"] == "1 件"
    assert summary["全县排名"].startswith("第 13 名")
    assert len(workbook["通报"]._images) == 1
    sheet = workbook["事件分类统计"]
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[1]
    total = rows[-1]
    assert header[0] == "村（社区）" and total[0] == "合计" and total[header.index("合计")] == 4

    response = client.get(f"/api/bulletins?period={PERIOD}&town={NAODIAN}&format=pdf", headers=auth(token))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(response.data))
    content = "".join(page.extract_text() for page in reader.pages)
    for expected in ("闹店镇定期通报", "2024年03月", "4 件", "第 13 名", "“三零”创建情况", "乡镇排名"):
        assert expected in content, expected
    assert any(page.images for page in reader.pages)  # the map image


def test_who_may_read_which_bulletin(client, users, seeded):
    def status(role, **args):
        query = "&".join(f"{k}={v}" for k, v in {"period": PERIOD, **args}.items())
        return client.get(f"/api/bulletins?{query}", headers=auth(users[role][1])).status_code

    assert status("county_officer") == status("viewer") == status("admin") == 200
    assert status("town_supervisor", town=NAODIAN) == 200
    assert status("town_supervisor") == 403                       # the county's bulletin
    assert status("other_town", town=NAODIAN) == 403              # another town's
    assert status("grid_worker", town=NAODIAN) == status("police") == status("mediator") == 403


@pytest.mark.parametrize("args, field", [
    ({"period": "March"}, "period"), ({"period": ""}, "period"), ({"period": "2024-03", "town": "410421999000"}, "town"),
    ({"period": "2024-03", "sections": "incidents,weather"}, "sections"), ({"period": "2099-01"}, "period"),
    ({"start": "2024-03-10", "end": "2024-03-01"}, "start"), ({"period": "2024-03", "format": "doc"}, "format"),
])
def test_bad_bulletin_requests_name_the_field(client, users, args, field):
    query = "&".join(f"{k}={v}" for k, v in args.items())
    response = client.get(f"/api/bulletins?{query}", headers=auth(users["county_officer"][1]))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field


def test_service_refuses_without_the_role(db_session, users):
    request = bulletins.parse_request(db_session, {"period": PERIOD}, date(2026, 11, 1))
    with pytest.raises(Forbidden):
        bulletins.build_bulletin(db_session, users["grid_worker"][0], request)
    with pytest.raises(ValidationError):
        bulletins.parse_request(db_session, {"start": "2023-01-01", "end": "2024-06-01"}, date(2026, 11, 1))
