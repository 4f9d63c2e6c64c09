"""Engine, sessions: one Session per request (Flask) and session_scope() for CLI and jobs."""
from __future__ import annotations

import hashlib
import re
import time
from collections import namedtuple
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, Mapping

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.orm import Session, sessionmaker

from gridmap.config import database_url

_engines: dict[str, Engine] = {}
_autocommit_engines: dict[Engine, Engine] = {}

# A pooled connection idle for longer than this is tested (SELECT 1) before use: after a database
# restart or a dropped connection the request gets a fresh one. Connections in steady use (a burst
# of tiles, a stream of reports) are not tested, which saves a round trip on every request that
# ``pool_pre_ping`` would spend. A connection dropped while in steady use fails one request, and the
# pool then replaces every connection older than the error (SQLAlchemy invalidates the pool on a
# disconnect).
PING_AFTER_IDLE_S = 10.0
# Close connections older than this so no firewall or server idle timeout ever cuts one in the pool.
POOL_RECYCLE_S = 1800


def get_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url not in _engines:
        _engines[url] = create_gridmap_engine(url)
    return _engines[url]


# Settings of the short-statement connections: PostgreSQL's JIT (set off by large cost estimates
# over big tables) compiles for longer than such statements run, and starting parallel workers
# costs more than they save.
SHORT_STATEMENT_OPTIONS = "-c jit=off -c max_parallel_workers_per_gather=0"


def autocommit_engine(engine: Engine) -> Engine:
    """A second engine on ``engine``'s database for short statements that are each a transaction
    of their own (a report, a vector tile's queries): its connections stay in autocommit, so there
    are no BEGIN, COMMIT or ROLLBACK round trips and no isolation level switched per checkout, and
    they run with ``SHORT_STATEMENT_OPTIONS``."""
    if engine not in _autocommit_engines:
        _autocommit_engines[engine] = create_gridmap_engine(
            engine.url, isolation_level="AUTOCOMMIT", connect_args={"options": SHORT_STATEMENT_OPTIONS})
        # Its connections close with the engine's (a test dropping its database, a CLI exiting).
        event.listen(engine, "engine_disposed", _dispose_autocommit_engine)
    return _autocommit_engines[engine]


def _dispose_autocommit_engine(engine: Engine) -> None:
    partner = _autocommit_engines.pop(engine, None)
    if partner is not None:
        partner.dispose()


def create_gridmap_engine(url: str, ping_after_idle_s: float = PING_AFTER_IDLE_S, **kw) -> Engine:
    """An engine whose pool tests only connections that sat idle (see PING_AFTER_IDLE_S)."""
    engine = create_engine(url, pool_recycle=POOL_RECYCLE_S, future=True, **kw)
    _ping_after_idle(engine, ping_after_idle_s)
    return engine


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record):
        record.info["gridmap_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy):
        idle_since = record.info.pop("gridmap_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= idle_s:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as err:  # noqa: BLE001 - any failure here means the connection is unusable
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"pooled connection failed its check: {err}") from err


_BIND_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


class PreparedStatement:
    """A statement PREPAREd once per database connection and run with EXECUTE afterwards.

    PostgreSQL then parses it once per connection instead of on every call, and with
    ``generic_plan`` plans it once too (``plan_cache_mode = force_generic_plan`` for the
    transaction): for a statement of many CTEs planning takes as long as running it. Use it only
    where one plan suits every value (equality on keys, bounding boxes on a GiST index).
    ``sql`` uses ``:name`` parameters like ``text()``; ``types`` gives each one's SQL type. The
    PREPARE is sent once per connection, before its first EXECUTE. Prepared statements outlive
    transactions (a rollback keeps them), and the pool forgets which ones a connection holds
    when it replaces the connection.
    """

    def __init__(self, name: str, sql: str, types: Mapping[str, str], generic_plan: bool = False):
        if "%" in sql:
            raise ValueError("a prepared statement's SQL must not contain %")
        self.names = tuple(dict.fromkeys(_BIND_PARAMETER.findall(sql)))
        missing = [n for n in self.names if n not in types]
        if missing:
            raise ValueError(f"no SQL type for {', '.join(missing)}")
        positional = _BIND_PARAMETER.sub(lambda m: f"${self.names.index(m.group(1)) + 1}", sql)
        # The name changes with the SQL, so a connection never runs an older text under a new meaning.
        self.name = f"{name}_{hashlib.sha1(sql.encode()).hexdigest()[:12]}"
        self.prepare_sql = f"PREPARE {self.name} ({', '.join(types[n] for n in self.names)}) AS {positional}"
        self.execute_sql = (("SET LOCAL plan_cache_mode = force_generic_plan; " if generic_plan else "")
                            + f"EXECUTE {self.name} ({', '.join(['%s'] * len(self.names))})")

    def execute(self, connection: Connection, params: Mapping) -> CursorResult:
        self._prepare_once(connection.connection.info, connection.exec_driver_sql)
        return connection.exec_driver_sql(self.execute_sql, self._values(params))

    def run_alone(self, engine: Engine, params: Mapping):
        """Run the statement as a transaction of its own on ``autocommit_engine(engine)`` and return
        its first row (a named tuple) or None. It talks to the driver directly: for a row of some
        forty columns SQLAlchemy's result set-up costs more than the row itself (bench_api)."""
        autocommit = autocommit_engine(engine)
        driver_error = autocommit.dialect.loaded_dbapi.Error
        pooled = autocommit.raw_connection()
        try:
            with pooled.cursor() as cursor:
                try:
                    self._prepare_once(pooled.info, cursor.execute)
                    cursor.execute(self.execute_sql, self._values(params))
                    row = cursor.fetchone()
                except driver_error as err:
                    # A lost connection is thrown away when it goes back to the pool (its reset
                    # fails); the caller sees SQLAlchemy's error, as from ``execute``.
                    raise exc.DBAPIError.instance(self.execute_sql, None, err, driver_error,
                                                  dialect=autocommit.dialect) from err
                names = tuple(column.name for column in cursor.description)
        finally:
            pooled.close()
        return None if row is None else _row_type(names)(*row)

    def _prepare_once(self, connection_info: dict, send) -> None:
        """PREPARE on a pooled connection that has not had it (``connection_info`` is the pool's
        record of it), as its own round trip: sent in one batch with an EXECUTE that fails, the
        PREPARE would stay on the server without the pool knowing it."""
        prepared = connection_info.setdefault("gridmap_prepared", set())
        if self.name not in prepared:
            send(self.prepare_sql)
            prepared.add(self.name)

    def _values(self, params: Mapping) -> tuple:
        return tuple(params[n] for n in self.names)


@lru_cache(maxsize=64)
def _row_type(names: tuple[str, ...]):
    return namedtuple("Row", names)


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
