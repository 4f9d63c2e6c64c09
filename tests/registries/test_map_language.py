"""The registry maps' popups, tooltips and legends are built in the browser from labels the page
passes in the interface language: English with ?lang=en, Chinese by default, escaped either way."""
import pytest

from gridmap.maps.registries import DEFAULT_LABELS, build_activities_map
from tests.conftest import PASSWORD

PAGES = {
    "/registries/places": ('"Inspections / record an inspection"', '"View incident"', '"Last inspection"'),
    "/registries/staff": ('"Village police officer"', '"Grids without a grid worker"',
                          "Black dashes: grid without a grid worker"),
    "/registries/activities": ('"Audience size"', '"Organizer"', "Law education in six settings"),
}


@pytest.mark.parametrize("path, english", PAGES.items())
def test_registry_maps_follow_the_interface_language(client, users, path, english):
    client.post("/login", data={"username": "r_county", "password": PASSWORD})
    page = client.get(f"{path}?lang=en").get_data(as_text=True)
    for text in english:
        assert text in page, text
    assert '"受众人数"' not in page and '"检查记录 / 登记检查"' not in page and '"驻村民警"' not in page
    chinese = client.get(f"{path}?lang=zh_CN").get_data(as_text=True)
    assert not any(text in chinese for text in english)


def test_labels_are_escaped_in_the_legend_and_default_to_chinese():
    evil = '<img src=x onerror="alert(1)">'
    county = {"type": "FeatureCollection", "features": []}
    page = build_activities_map(bounds=(113.0, 33.8, 113.1, 33.9), county=county, towns=county,
                                activities_url="/a", labels={"publicity_legend": evil}).get_root().render()
    assert evil not in page and "alert(1)" in page
    default = build_activities_map(bounds=(113.0, 33.8, 113.1, 33.9), county=county, towns=county,
                                   activities_url="/a").get_root().render()
    assert DEFAULT_LABELS["audience"] == "受众人数" and '"受众人数"' in default
