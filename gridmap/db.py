"""Engine, sessions: one Session per request (Flask) and session_scope() for CLI and jobs."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gridmap.config import database_url

_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url not in _engines:
        _engines[url] = create_engine(url, pool_pre_ping=True, future=True)
    return _engines[url]


def make_session(url: str | None = None, **kw) -> Session:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False, **kw)()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction for a CLI command or job: commit on success, roll back on any error."""
    session = make_session(url)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
