"""Fixtures of the browser tests (the session's server and Chromium are in tests/conftest.py)."""
import uuid

import pytest
from sqlalchemy import text


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
