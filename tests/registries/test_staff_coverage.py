"""Coverage of "一村一警一律师" and grid workers: a small hand-built county, then the service on the demo."""
import pandas as pd
import pytest

from gridmap.analysis.staffing import gap_summary, grid_coverage, village_coverage
from gridmap.services import registries
from gridmap.errors import Forbidden, ValidationError
from tests.conftest import auth
from tests.registries.conftest import FANYING, NAODIAN, counts

# Two towns; T1 has villages A (2 grids) and B (1 grid), T2 has village C (1 grid).
VILLAGES = pd.DataFrame({"code": ["A", "B", "C"], "name": ["甲村", "乙村", "丙村"], "town_code": ["T1", "T1", "T2"]})
GRIDS = pd.DataFrame({"code": ["A1", "A2", "B1", "C1"], "village_code": ["A", "A", "B", "C"]})
STAFF = pd.DataFrame({
    "role": ["police", "lawyer", "grid_worker", "grid_worker", "police", "lawyer", "grid_worker", "mediator",
             "lawyer"],
    "village_code": ["A", "A", "A", "B", "B", "C", "C", "C", "B"],
    "grid_code": [None, None, "A1", "B1", None, None, "C1", None, None],
    # B's lawyer has left: an inactive assignment covers nothing.
    "active": [True, True, True, True, True, True, True, True, False],
})


def test_gaps_on_a_hand_built_county():
    coverage = village_coverage(VILLAGES, GRIDS, STAFF).set_index("code")
    assert coverage.loc["A", "gaps"] == ["grid_worker"]          # grid A2 has nobody
    assert coverage.loc["B", "gaps"] == ["lawyer"]
    assert coverage.loc["C", "gaps"] == ["police"]
    assert coverage.loc["A", ["police", "lawyer", "grid_worker", "grids", "grids_without_worker"]].tolist() == \
        [1, 1, 1, 2, 1]
    assert coverage.loc["C", "mediator"] == 1
    grids = grid_coverage(GRIDS, STAFF).set_index("code")
    assert grids["missing_grid_worker"].to_dict() == {"A1": False, "A2": True, "B1": False, "C1": False}
    summary = gap_summary(coverage.reset_index())
    assert summary.to_dict("index") == {
        "T1": {"villages": 2, "missing_police": 0, "missing_lawyer": 1, "grids": 3, "grids_without_worker": 1,
               "complete": 0},
        "T2": {"villages": 1, "missing_police": 1, "missing_lawyer": 0, "grids": 1, "grids_without_worker": 0,
               "complete": 0}}


def test_a_village_with_no_staff_lacks_everything_and_unknown_roles_are_refused():
    coverage = village_coverage(VILLAGES, GRIDS, STAFF.iloc[0:0])
    assert coverage["gaps"].tolist() == [["police", "lawyer", "grid_worker"]] * 3
    with pytest.raises(ValueError, match="unknown staff role"):
        village_coverage(VILLAGES, GRIDS, STAFF.assign(role="priest"))


def test_assigning_police_and_lawyer_closes_the_gap(db_session, users):
    county_officer = users["county_officer"][0]
    db_session.execute(registries.StaffAssignment.__table__.delete().where(
        registries.StaffAssignment.village_code == FANYING))
    before = registries.staff_coverage(db_session, county_officer, town=NAODIAN)
    village = next(v for v in before["villages"] if v["code"] == FANYING)
    assert village["gaps"] == ["police", "lawyer", "grid_worker"]
    registries.create_staff(db_session, county_officer, {"role": "police", "name": "测试民警", "village_code": FANYING,
                                                         "organisation": "闹店派出所", "phone": "0375-6000000"})
    registries.create_staff(db_session, users["town_supervisor"][0],
                            {"role": "lawyer", "name": "测试律师", "village_code": FANYING})
    after = registries.staff_coverage(db_session, county_officer, town=NAODIAN)
    village = next(v for v in after["villages"] if v["code"] == FANYING)
    assert village["gaps"] == ["grid_worker"]
    assert after["totals"]["missing_police"] == before["totals"]["missing_police"] - 1
    assert after["totals"]["missing_lawyer"] == before["totals"]["missing_lawyer"] - 1
    assert {g["village_code"] for g in after["grids_without_worker"]} >= {FANYING}


def test_staff_rules_and_scope(db_session, users):
    town = users["town_supervisor"][0]
    with pytest.raises(ValidationError) as err:
        registries.create_staff(db_session, town, {"role": "grid_worker", "name": "某", "village_code": FANYING})
    assert err.value.field == "grid_code"
    with pytest.raises(ValidationError) as err:
        registries.create_staff(db_session, town, {"role": "police", "name": "某", "village_code": "410421999999"})
    assert err.value.field == "village_code"
    other_town = users["other_town"][0]
    with pytest.raises(Forbidden):
        registries.create_staff(db_session, other_town, {"role": "lawyer", "name": "某", "village_code": FANYING})
    with pytest.raises(Forbidden):
        registries.create_staff(db_session, users["grid_worker"][0],
                                {"role": "lawyer", "name": "某", "village_code": FANYING})


def test_viewer_sees_no_staff_phone_numbers(client, users):
    body = client.get(f"/api/staff?village={FANYING}", headers=auth(users["viewer"][1])).get_json()
    assert body["staff"] and all(s["phone"] is None for s in body["staff"])
    body = client.get(f"/api/staff?village={FANYING}", headers=auth(users["county_officer"][1])).get_json()
    assert any(s["phone"] for s in body["staff"])
    assert client.get("/api/staff", headers=auth(users["mediator"][1])).status_code == 403


def test_staff_api_bad_input_names_the_field_and_writes_nothing(client, db_session, users):
    before = counts(db_session, "village_staff", "audit_log")
    response = client.post("/api/staff", json={"role": "police", "name": "某", "village_code": FANYING,
                                               "phone": "<script>"}, headers=auth(users["county_officer"][1]))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "phone"
    response = client.post("/api/staff", json={"role": "sheriff", "name": "某", "village_code": FANYING},
                           headers=auth(users["county_officer"][1]))
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "role"
    assert counts(db_session, "village_staff", "audit_log") == before
    response = client.post("/api/staff", json={"role": "elder", "name": "五老甲", "village_code": FANYING},
                           headers=auth(users["county_officer"][1]))
    assert response.status_code == 201
    assert counts(db_session, "village_staff")[0] == before[0] + 1
