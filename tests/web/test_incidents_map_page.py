"""GET /incidents/map over HTTP: the page draws incidents from the scoped vector tiles (never
GeoJSON), its filters come from the address and bad ones are refused naming the field, its text
is Chinese first and English with ?lang=en, and the old tiles map's address leads to it."""
from __future__ import annotations

import json
import re

import pytest

from gridmap.catalog import CATEGORIES
from tests.conftest import PASSWORD, auth


@pytest.fixture
def token(make_user):
    return make_user("map_officer", "county_officer")[1]


def form_config(page: str) -> dict:
    return json.loads(re.search(r"\}\)\(vector_tile_layer_\w+, map_\w+, (\{.*\})\);", page).group(1))


def test_the_map_loads_scoped_tiles_by_url(client, token):
    response = client.get("/incidents/map?category=DSP&status=open&overdue=1&from=2026-01-01", headers=auth(token))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '"/tiles/incidents/{z}/{x}/{y}.pbf"' in page and 'var queryUrl = "/tiles/incidents/at"' in page
    assert '"/tiles/grids/{z}/{x}/{y}.pbf"' in page and '"/tiles/towns/{z}/{x}/{y}.pbf"' in page
    assert '"/incidents/{id}"' in page
    assert "/api/incidents" not in page and "markercluster" not in page.lower()
    assert form_config(page)["filters"] == {"category": "DSP", "status": "open", "overdue": "1", "from": "2026-01-01"}
    assert re.search(r'filters = \{"category": "DSP", "status": "open", "from": "2026-01-01", "overdue": "1"\}',
                     page)
    assert "/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js" in page
    assert "unpkg.com" not in page and "jsdelivr" not in page
    assert len(response.data) < 100_000
    for c in CATEGORIES:
        assert c.name_zh in page


@pytest.mark.parametrize("query, field", [
    ("category=XX", "category"), ("status=lost", "status"), ("from=2026-13-01", "from"),
    ("from=2026-03-01&to=2026-02-01", "from"), ("overdue=maybe", "overdue"),
])
def test_a_bad_filter_is_a_4xx_naming_the_field(client, token, query, field):
    response = client.get(f"/incidents/map?{query}", headers=auth(token))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_chinese_first_and_english_on_request(client, make_user):
    make_user("map_reader", "county_officer")
    client.post("/login", data={"username": "map_reader", "password": PASSWORD})
    zh = form_config(client.get("/incidents/map").get_data(as_text=True))
    assert zh["labels"]["category"] == "类别" and zh["labels"]["overdue_only"] == "仅超期"
    assert ["DSP", "矛盾纠纷"] in zh["categories"] and ["reported", "上报"] in zh["statuses"]
    page = client.get("/incidents/map?lang=en").get_data(as_text=True)
    en = form_config(page)
    assert en["labels"]["category"] == "Category" and en["labels"]["overdue_only"] == "Overdue only"
    assert en["labels"]["cell_total"] == "{n} incidents in this cell"
    assert ["DSP", "Dispute"] in en["categories"] and ["reported", "Reported"] in en["statuses"]
    assert ["open", "Open (all in progress)"] in en["statuses"]
    names = json.loads(re.search(r"names = (\{.*?\}), labels = ", page).group(1))
    assert names["statuses"]["in_progress"] == "In progress"
    assert names["categories"]["DSP"]["subcategories"]["neighbour"] == "Neighbour"
    labels = json.loads(re.search(r"labels = (\{.*?\});", page).group(1))
    assert labels["open_case"] == "Open case" and labels["severity"] == "Severity"
    assert '"Incidents" : vector_tile_layer_' in page and "<b>Incident category</b>" in page
    # Nothing Chinese is left in the map's own text.
    for text in list(en["labels"].values()) + list(labels.values()) + [n for _, n in en["statuses"]]:
        assert not re.search(r"[\u4e00-\u9fff]", text), text


def test_login_is_required_and_the_old_tiles_map_leads_here(client, token):
    assert client.get("/incidents/map").status_code == 302
    old = client.get("/map/incidents-tiles?category=DSP&status=open&junk=1")
    assert old.status_code == 301
    assert old.headers["Location"] == "/incidents/map?category=DSP&status=open"
