"""Fixtures of the browser tests (the session's server and Chromium are in tests/conftest.py)."""
import uuid

import pytest
from sqlalchemy import text

from tests.incident_helpers import FANYING

FANYING_ENTERPRISE = "范营测试机械厂"


@pytest.fixture
def marker_text(engine):
    """A unique description prefix; the incidents it marks are deleted afterwards."""
    tag = f"浏览器测试-{uuid.uuid4().hex[:8]}"
    yield tag
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM incidents WHERE description LIKE :t"), {"t": f"%{tag}%"})


@pytest.fixture
def new_routes(engine):
    """Removes the patrol routes a test plans from the committed demo data."""
    with engine.connect() as conn:
        last = conn.execute(text("SELECT coalesce(max(id), 0) FROM patrol_routes")).scalar()
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM patrol_routes WHERE id > :i"), {"i": last})


@pytest.fixture
def fanying_enterprise(engine):
    """A registered enterprise in 范营村 (the demo has none there), near its first grid's centre;
    removed afterwards. Its name is the fixture's ``name`` attribute."""
    with engine.begin() as conn:
        place = conn.execute(text(
            "INSERT INTO places (kind, name, inspection_interval_days, geom) "
            "SELECT 'enterprise', :name, 180, ST_Translate(ST_PointOnSurface(geom), 0.0005, 0) FROM grids "
            "WHERE village_code = :v ORDER BY code LIMIT 1 RETURNING id"),
            {"name": FANYING_ENTERPRISE, "v": FANYING}).scalar_one()
    yield place
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM places WHERE id = :p"), {"p": place})
