"""Test fixtures: one real PostGIS database per test session, migrated with Alembic and loaded
with the demo county; each test runs in a transaction that is rolled back."""
from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gridmap.config import database_url

PASSWORD = "test-password-1"


def _server_url() -> str:
    return os.environ.get("GRIDMAP_TEST_DATABASE_URL") or database_url()


def create_scratch_database(prefix: str) -> str:
    """A new empty database on the test server with PostGIS enabled; returns its URL."""
    base = make_url(_server_url().replace("postgresql://", "postgresql+psycopg2://", 1))
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()
    return url


def drop_database(url: str) -> None:
    from gridmap.db import _engines

    for key in [k for k in _engines if k == url]:
        _engines.pop(key).dispose()
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def migrate(url: str, revision: str = "head", down: bool = False) -> None:
    from alembic import command

    from gridmap.cli import alembic_config

    cfg = alembic_config(url)
    cfg.attributes["configure_logging"] = False
    (command.downgrade if down else command.upgrade)(cfg, revision)


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """URL of the session's database: migrated to head, demo county loaded, committed."""
    url = create_scratch_database("gridmap_test")
    os.environ["GRIDMAP_DATABASE_URL"] = url
    os.environ.setdefault("GRIDMAP_INSTANCE", str(tmp_path_factory.mktemp("instance")))
    try:
        migrate(url)
        from gridmap.db import session_scope
        from gridmap.services.demo import load_demo

        with session_scope(url) as session:
            load_demo(session, password=PASSWORD)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def engine(database):
    eng = create_engine(database)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine):
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def db_session(connection) -> Session:
    """A Session inside the test's transaction; its commits become savepoints."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture
def app(database, connection):
    from gridmap import create_app

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "test"})
    app.extensions["gridmap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(db_session):
    """Create a user in the test transaction; returns (user, api token)."""
    from gridmap.services.accounts import create_user, issue_token

    def _make(username: str, role: str, scopes=()):
        user = create_user(db_session, username, PASSWORD, role, list(scopes))
        token = issue_token(db_session, username)
        db_session.flush()
        return user, token

    return _make


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(database):
    """The real app on a real port (werkzeug, threaded) over the committed demo data."""
    from werkzeug.serving import make_server

    from gridmap import create_app

    app = create_app({"SECRET_KEY": "live-test"})
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium"),
                              args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def terminate_backend(engine, pid: int) -> None:
    """End the server process behind a pooled connection, as a database restart would."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})


def watched_page(browser, **context_options):
    """A page in a new browser context that keeps its console errors and uncaught exceptions in
    ``page.gm_console_errors`` (tests assert it stays empty). Close ``page.context`` afterwards."""
    page = browser.new_context(**context_options).new_page()
    page.gm_console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.gm_console_errors.append(msg.text))
    page.on("pageerror", lambda err: page.gm_console_errors.append(str(err)))
    return page


@pytest.fixture
def page(browser):
    page = watched_page(browser, locale="zh-CN", viewport={"width": 1200, "height": 800})
    yield page
    page.context.close()


def login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test is a failure: database and browser tests must always run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (not allowed): {report.longrepr}"
