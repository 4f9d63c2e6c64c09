"""Case-quality review: sampling reproducible from a seed, rules, checklist scoring, reports by town
and by handling unit, permissions, and bad input that writes nothing."""
import pytest
from sqlalchemy import select, text

from gridmap.models import CaseReviewItem, Incident
from gridmap.services import case_review
from gridmap.errors import Forbidden, ValidationError
from tests.conftest import auth
from tests.registries.conftest import NAODIAN, counts

PERIOD = {"period_start": "2026-01-01", "period_end": "2026-06-30"}


def test_draw_sample_is_reproducible_and_order_free():
    ids = list(range(1000, 1100))
    first = case_review.draw_sample(ids, 10, seed=7)
    assert first == case_review.draw_sample(list(reversed(ids)), 10, seed=7)
    assert len(first) == 10 and set(first) <= set(ids) and first == sorted(first)
    assert first != case_review.draw_sample(ids, 10, seed=8)
    assert case_review.draw_sample([3, 1, 2], 10, seed=1) == [1, 2, 3]


def test_review_sample_is_reproducible_from_its_seed(db_session, users):
    officer = users["county_officer"][0]
    one = case_review.create_review(db_session, officer, {**PERIOD, "method": "random", "sample_size": 12, "seed": 42})
    two = case_review.create_review(db_session, officer, {**PERIOD, "method": "random", "sample_size": 12, "seed": 42})
    three = case_review.create_review(db_session, officer, {**PERIOD, "method": "random", "sample_size": 12,
                                                            "seed": 43})

    def sample(review):
        return db_session.scalars(select(CaseReviewItem.incident_id).where(CaseReviewItem.review_id == review.id)
                                  .order_by(CaseReviewItem.incident_id)).all()

    assert len(sample(one)) == 12 and sample(one) == sample(two) != sample(three)
    # The sample is the seeded draw over the rule's cases, so anyone can check it.
    candidates = db_session.scalars(select(Incident.id).where(
        case_review.candidate_condition("random", one.period_start, one.period_end, None))).all()
    assert sample(one) == case_review.draw_sample(candidates, 12, 42)
    unseeded = case_review.create_review(db_session, officer, {**PERIOD, "sample_size": 5})
    assert unseeded.seed is not None and len(sample(unseeded)) == 5


def test_rules_select_the_cases_they_name(db_session, users):
    officer = users["county_officer"][0]
    review = case_review.create_review(db_session, officer, {**PERIOD, "method": "complaints", "sample_size": 500,
                                                             "town_code": NAODIAN, "seed": 1})
    rows = db_session.execute(text(
        "SELECT i.satisfaction, i.town_code, i.status FROM case_review_items r JOIN incidents i ON i.id = r.incident_id "
        "WHERE r.review_id = :r"), {"r": review.id}).all()
    assert rows and all(s <= 2 and t == NAODIAN and st in ("closed", "followed_up") for s, t, st in rows)
    overdue = case_review.create_review(db_session, officer, {**PERIOD, "method": "overdue", "sample_size": 20,
                                                              "seed": 1})
    late = db_session.execute(text(
        "SELECT bool_and(coalesce(i.resolved_at, i.closed_at) > i.deadline_at) FROM case_review_items r "
        "JOIN incidents i ON i.id = r.incident_id WHERE r.review_id = :r"), {"r": overdue.id}).scalar_one()
    assert late is True
    chosen_ids = db_session.scalars(select(Incident.id).where(
        case_review.candidate_condition("random", overdue.period_start, overdue.period_end, None))
        .order_by(Incident.id).limit(3)).all()
    chosen = case_review.create_review(db_session, officer, {**PERIOD, "method": "chosen",
                                                             "incident_ids": ",".join(map(str, chosen_ids))})
    assert sorted(i["incident_id"] for i in case_review.review_items(db_session, officer, chosen.id)) == chosen_ids


def test_scoring_and_reports_by_town_and_unit(client, db_session, users):
    token = users["county_officer"][1]
    response = client.post("/api/reviews", headers=auth(token),
                           json={**PERIOD, "method": "random", "sample_size": 4, "seed": 5, "title": "上半年评查"})
    assert response.status_code == 201
    review = response.get_json()
    items = review["cases"]
    assert len(items) == 4 and all(i["handling_unit"] for i in items)
    totals = [100, 70, 40]
    for item, total in zip(items, totals):
        scores = {"facts": 30, "deadline": 30, "level": 20, "follow_up": 20} if total == 100 else \
            {"facts": 30, "deadline": 0, "level": 20, "follow_up": 20} if total == 70 else \
            {"facts": 10, "deadline": 0, "level": 10, "follow_up": 20}
        response = client.post(f"/api/reviews/{review['id']}/items/{item['id']}", headers=auth(token),
                               json={"scores": scores, "findings": "超期未说明原因" if total < 100 else ""})
        assert response.status_code == 200 and response.get_json()["total"] == total
    report = client.get(f"/api/reviews/{review['id']}", headers=auth(token)).get_json()
    assert (report["items"], report["scored"], report["mean_total"]) == (4, 3, 70.0)
    by_town = {g["code"]: g for g in report["by_town"]}
    expected: dict[str, list[int]] = {}
    for item, total in zip(items, totals):
        expected.setdefault(item["town_code"], []).append(total)
    for code, values in expected.items():
        assert by_town[code]["mean_total"] == round(sum(values) / len(values), 1)
    assert sum(g["items"] for g in report["by_unit"]) == 4
    assert sum(g["scored"] for g in report["by_unit"]) == 3
    # The leader reads the report but may not score.
    viewer = users["viewer"][1]
    assert client.get(f"/api/reviews/{review['id']}", headers=auth(viewer)).status_code == 200
    assert client.post(f"/api/reviews/{review['id']}/items/{items[3]['id']}", headers=auth(viewer),
                       json={"scores": {"facts": 1, "deadline": 1, "level": 1, "follow_up": 1}}).status_code == 403


@pytest.mark.parametrize("scores, field", [
    ({"facts": 31, "deadline": 0, "level": 0, "follow_up": 0}, "scores.facts"),
    ({"facts": 1, "deadline": -1, "level": 0, "follow_up": 0}, "scores.deadline"),
    ({"facts": 1, "deadline": 1, "level": 0}, "scores.follow_up"),
    ({"facts": 1, "deadline": 1, "level": 0, "follow_up": 0, "tone": 5}, "scores.tone"),
    ({"facts": "a lot", "deadline": 1, "level": 0, "follow_up": 0}, "scores.facts"),
])
def test_bad_scores_name_the_field_and_write_nothing(client, db_session, users, scores, field):
    officer, token = users["county_officer"]
    review = case_review.create_review(db_session, officer, {**PERIOD, "sample_size": 1, "seed": 3})
    item = db_session.scalar(select(CaseReviewItem).where(CaseReviewItem.review_id == review.id))
    before = counts(db_session, "audit_log")
    response = client.post(f"/api/reviews/{review.id}/items/{item.id}", headers=auth(token), json={"scores": scores})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert db_session.execute(text("SELECT total FROM case_review_items WHERE id = :i"),
                              {"i": item.id}).scalar_one() is None
    assert counts(db_session, "audit_log") == before


@pytest.mark.parametrize("body, field", [
    ({"method": "lottery"}, "method"), ({"period_start": "2026-07-01"}, "period_start"),
    ({"sample_size": 0}, "sample_size"), ({"sample_size": 501}, "sample_size"), ({"seed": "abc"}, "seed"),
    ({"town_code": "410421999000"}, "town_code"), ({"method": "chosen"}, "incident_ids"),
    ({"method": "chosen", "incident_ids": [1, 2, 3]}, "incident_ids"),
    ({"period_start": "2020-01-01", "period_end": "2020-01-31"}, "period_start"),   # no closed case then
])
def test_bad_review_input_names_the_field_and_writes_nothing(client, db_session, users, body, field):
    before = counts(db_session, "case_reviews", "case_review_items")
    response = client.post("/api/reviews", headers=auth(users["county_officer"][1]), json={**PERIOD, **body})
    assert response.status_code == 400 and response.get_json()["error"]["field"] == field
    assert counts(db_session, "case_reviews", "case_review_items") == before


def test_only_county_officers_run_reviews(db_session, users, client):
    for role in ("town_supervisor", "grid_worker", "viewer", "police", "mediator"):
        with pytest.raises(Forbidden):
            case_review.create_review(db_session, users[role][0], {**PERIOD})
    assert client.get("/api/reviews", headers=auth(users["town_supervisor"][1])).status_code == 403
    with pytest.raises(ValidationError):
        case_review.create_review(db_session, users["admin"][0], {**PERIOD, "sample_size": -1})


def test_review_pages_score_through_the_form(client, db_session, users):
    officer = users["county_officer"][0]
    review = case_review.create_review(db_session, officer, {**PERIOD, "sample_size": 2, "seed": 11})
    item = db_session.scalar(select(CaseReviewItem).where(CaseReviewItem.review_id == review.id)
                             .order_by(CaseReviewItem.id))
    with client.session_transaction() as session:
        session["_user_id"] = str(officer.id)
        session["_fresh"] = True
    page = client.get(f"/registries/reviews/{review.id}").get_data(as_text=True)
    assert f'id="item-{item.id}"' in page and str(review.seed) in page
    response = client.post(f"/registries/reviews/{review.id}/items/{item.id}",
                           data={"score_facts": "20", "score_deadline": "30", "score_level": "10",
                                 "score_follow_up": "0", "findings": "<i>未回访</i>"})
    assert response.status_code == 302
    assert db_session.execute(text("SELECT total FROM case_review_items WHERE id = :i"),
                              {"i": item.id}).scalar_one() == 60
    page = client.get(f"/registries/reviews/{review.id}").get_data(as_text=True)
    assert "&lt;i&gt;未回访&lt;/i&gt;" in page and "<i>未回访</i>" not in page
    assert '<b id="review-mean">60.0</b>' in page and "已评 1/2" in page
    listing = client.get("/registries/reviews").get_data(as_text=True)
    assert "built-in method" not in listing and f"<td>{review.seed}</td><td>2</td><td>1</td><td>60.0</td>" in listing
