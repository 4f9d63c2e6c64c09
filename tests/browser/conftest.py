"""Fixtures of the browser tests (the session's server and Chromium are in tests/conftest.py)."""
import pytest
from sqlalchemy import text


@pytest.fixture
def new_routes(engine):
    """Removes the patrol routes a test plans from the committed demo data."""
    with engine.connect() as conn:
        last = conn.execute(text("SELECT coalesce(max(id), 0) FROM patrol_routes")).scalar()
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM patrol_routes WHERE id > :i"), {"i": last})
