"""Bulk import of incidents: CSV (lon/lat columns), GeoJSON, GeoPackage, Shapefile or KML.

Every row is checked in memory (vectorised), the rows go to a temporary staging table by COPY,
and one INSERT … SELECT joins them to the grids and writes them with their grid, village and
town. A point in no grid refuses the whole file (or, with ``skip_outside``, is left out and
counted); so does any other bad row. All of it runs in the caller's transaction.

A large import (see :func:`_bulk_pays`) writes with the table's secondary indexes, foreign keys
and placement trigger set aside and rebuilds them afterwards, in the same transaction: one pass
over the table per index instead of one probe per row and index.
"""
from __future__ import annotations

import io
import sys
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
import shapely
from sqlalchemy.orm import Session
from tqdm import tqdm

from gridmap.catalog import CATEGORIES, LEGAL_CLASS_ZH, LEGAL_CLASSES, STATUS_ZH, STATUSES
from gridmap.errors import ValidationError
from gridmap.services.accounts import audit
from gridmap.services.importing import (ImportRefused, RowProblem, SourceOptions, as_text, check_coordinates,
                                        expected_extent, map_distinct, read_features, resolve_columns)

DEFAULT_TIMEZONE = "Asia/Shanghai"
DESCRIPTION_MAX = 2000
COPY_CHUNK = 50_000
# Below this many rows, or when the table holds over four times as many, rows are written
# through the indexes; above, the indexes are rebuilt (see indexes_set_aside).
BULK_MIN_ROWS = 100_000
# Allowed lead of a timestamp over the clock, as in the pinning API.
CLOCK_SKEW = pd.Timedelta(minutes=5)

TEXT_FIELDS = ("category", "subcategory", "status", "description", "legal_class", "enterprise_involved", "client_id",
               "unit_ref")
INCIDENT_FIELDS = {
    "category": True, "subcategory": False, "severity": False, "occurred_at": True, "reported_at": False,
    "status": False, "description": False, "legal_class": False, "enterprise_involved": False, "client_id": False,
    # The registry's own id (places.ref) of the enterprise or unit the incident concerns.
    "unit_ref": False,
}
CATEGORY_BY_LABEL = {label: c.code for c in CATEGORIES for label in (c.code.lower(), c.name_zh, c.name_en.lower())}
SUBCATEGORY_BY_LABEL = {c.code: {label: code for code, zh, en in c.subcategories for label in (code.lower(), zh, en.lower())}
                        for c in CATEGORIES}
STATUS_BY_LABEL = {**{s: s for s in STATUSES}, **{zh: s for s, zh in STATUS_ZH.items()}}
LEGAL_CLASS_BY_LABEL = {**{c: c for c in LEGAL_CLASSES}, **{zh: c for c, zh in LEGAL_CLASS_ZH.items()}}
TRUE_WORDS = {"true", "t", "yes", "y", "1", "是", "涉企"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "否", ""}


@dataclass
class IncidentImportReport:
    rows: int
    imported: int = 0
    outside: int = 0                 # left out by skip_outside
    already_present: int = 0         # same client_id already stored
    bulk: bool = False               # indexes rebuilt instead of written through
    seconds: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"incidents: {self.rows:,} rows read, {self.imported:,} imported"]
        if self.outside:
            out.append(f"left out {self.outside:,} rows lying in no grid (--skip-outside)")
        if self.already_present:
            out.append(f"left out {self.already_present:,} rows whose client_id is already stored")
        if self.bulk:
            out.append("indexes, foreign keys and tile counts were rebuilt after the rows were written")
        out.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return out


class _Problems:
    """Row problems gathered column by column, vectorised."""

    def __init__(self, codes: pd.Series | None):
        self.found: list[tuple[np.ndarray, list[str]]] = []
        self.codes = codes

    def add(self, mask, reason) -> None:
        """``reason`` is a string, or a function of the offending values' positions."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if positions.size:
            reasons = reason(positions) if callable(reason) else [reason] * positions.size
            self.found.append((positions, list(reasons)))

    def bad_positions(self) -> np.ndarray:
        if not self.found:
            return np.array([], dtype=int)
        return np.unique(np.concatenate([p for p, _ in self.found]))

    def as_list(self) -> list[RowProblem]:
        items = [(int(p), r) for positions, reasons in self.found for p, r in zip(positions, reasons)]
        items.sort(key=lambda item: item[0])
        code = (lambda p: self.codes.iat[p]) if self.codes is not None else (lambda p: None)
        return [RowProblem(p + 1, code(p), r) for p, r in items]


def _labels(series: pd.Series, table: dict[str, str]) -> tuple[pd.Series, np.ndarray]:
    """Map labels (codes or Chinese/English names, any case) to codes; returns codes and the unknown mask."""
    mapped = map_distinct(series, lambda v: table.get(v) or table.get(str(v).lower()))
    return mapped, (series.notna() & mapped.isna()).to_numpy()


def _uuid_text(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def _quoted(values: pd.Series, positions: np.ndarray, template: str) -> list[str]:
    return [template.format(values.iat[p]) for p in positions]


def _timestamps(raw: pd.Series, name: str, tz: str, problems: _Problems, now_local: pd.Timestamp) -> pd.Series:
    """Naive wall-clock times in ``tz`` (NaT where missing or bad)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
        bad = np.zeros(len(raw), dtype=bool)
    else:
        text_values = as_text(raw)
        parsed = pd.to_datetime(text_values, errors="coerce", format="ISO8601")
        if parsed.isna().sum() > text_values.isna().sum():
            parsed = pd.to_datetime(text_values, errors="coerce", format="mixed")
        bad = (text_values.notna() & parsed.isna()).to_numpy()
        problems.add(bad, lambda ps: _quoted(text_values, ps, f"{name} {{!r}} is not a date and time"))
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(tz).dt.tz_localize(None)
    parsed = parsed.astype("datetime64[us]")
    problems.add((parsed > now_local + CLOCK_SKEW).to_numpy(),
                 lambda ps: [f"{name} {parsed.iat[p]} is in the future" for p in ps])
    return parsed


def _check_values(values: pd.DataFrame, problems: _Problems, tz: str) -> pd.DataFrame:
    """Clean, typed columns for the staging table; problems gathered on the way.

    ``values`` holds the file's columns as read (text for the label fields)."""
    n = len(values)
    clean = pd.DataFrame(index=values.index)
    now_local = pd.Timestamp.now(tz=tz).tz_localize(None)

    category, unknown = _labels(values["category"], CATEGORY_BY_LABEL)
    problems.add(values["category"].isna().to_numpy(), "has no category")
    problems.add(unknown, lambda ps: _quoted(values["category"], ps, "unknown category {!r}"))
    clean["category"] = category

    if "subcategory" in values:
        sub = values["subcategory"]
        given = sub.notna() & category.notna()
        keys = pd.Series(list(zip(category, sub)), index=sub.index).where(given, None)
        mapped = map_distinct(keys, lambda key: SUBCATEGORY_BY_LABEL[key[0]].get(key[1])
                              or SUBCATEGORY_BY_LABEL[key[0]].get(key[1].lower()))
        problems.add((given & mapped.isna()).to_numpy(),
                     lambda ps: [f"unknown subcategory {sub.iat[p]!r} of {category.iat[p]}" for p in ps])
        clean["subcategory"] = mapped

    if "severity" in values:
        severity = pd.to_numeric(values["severity"], errors="coerce")
        ok = severity.isin([1, 2, 3, 4])
        problems.add((~ok).to_numpy(), lambda ps: _quoted(values["severity"], ps, "severity {!r} is not 1, 2, 3 or 4"))
        clean["severity"] = severity.where(ok).astype("Int16")

    occurred = _timestamps(values["occurred_at"], "occurred_at", tz, problems, now_local)
    problems.add((values["occurred_at"].isna()).to_numpy(), "has no occurred_at")
    clean["occurred_at"] = occurred
    if "reported_at" in values:
        reported = _timestamps(values["reported_at"], "reported_at", tz, problems, now_local)
        problems.add((reported < occurred).to_numpy(), "reported_at is before occurred_at")
        clean["reported_at"] = reported

    for name, table in (("status", STATUS_BY_LABEL), ("legal_class", LEGAL_CLASS_BY_LABEL)):
        if name in values:
            mapped, unknown = _labels(values[name], table)
            problems.add(unknown, lambda ps, name=name: _quoted(values[name], ps, f"unknown {name} {{!r}}"))
            clean[name] = mapped

    if "enterprise_involved" in values:
        words = values["enterprise_involved"].fillna("").astype(str).str.lower()
        truthy = words.isin(TRUE_WORDS)
        problems.add((~truthy & ~words.isin(FALSE_WORDS)).to_numpy(),
                     lambda ps: _quoted(values["enterprise_involved"], ps, "enterprise_involved {!r} is not yes/no"))
        clean["enterprise_involved"] = truthy

    if "description" in values:
        description = values["description"]
        problems.add((description.str.len() > DESCRIPTION_MAX).fillna(False).to_numpy(),
                     f"description is longer than {DESCRIPTION_MAX} characters")
        clean["description"] = description

    if "client_id" in values:
        ids = values["client_id"]
        mapped = map_distinct(ids, _uuid_text)
        problems.add((ids.notna() & mapped.isna()).to_numpy(), lambda ps: _quoted(ids, ps, "client_id {!r} is not a UUID"))
        repeated = mapped.notna() & mapped.duplicated(keep="first")
        problems.add(repeated.to_numpy(), "client_id repeats an earlier row")
        clean["client_id"] = mapped
    if "unit_ref" in values:
        clean["unit_ref"] = values["unit_ref"]
    assert len(clean) == n
    return clean


STAGING_TYPES = {
    "category": "text", "subcategory": "text", "severity": "smallint", "occurred_at": "timestamp",
    "reported_at": "timestamp", "status": "text", "description": "text", "legal_class": "text",
    "enterprise_involved": "boolean", "client_id": "uuid", "unit_ref": "text",
}
STAGING_TABLE = "gridmap_incident_import"
POINT_SQL = "ST_SetSRID(ST_MakePoint(lon, lat), 4326)"
# Most the staging table may hold in the session's buffers (allocated as it fills).
STAGING_BUFFERS = "1GB"


def _column_sql(name: str, staged: set[str], constants: dict) -> str:
    """The SELECT expression for one incidents column."""
    if name in ("occurred_at", "reported_at"):
        source = name if (name in staged or name in constants) else "occurred_at"
        value = f"s.{source}" if source in staged else f"CAST(%({source})s AS timestamp)"
        return f"({value} AT TIME ZONE %(tz)s)"
    defaults = {"subcategory": "NULL", "severity": "1", "status": "'reported'", "description": "''",
                "legal_class": "'none'", "enterprise_involved": "false", "client_id": "NULL"}
    if name in staged:
        return f"coalesce(s.{name}, '')" if name == "description" else f"s.{name}"
    if name in constants:
        return f"CAST(%({name})s AS {STAGING_TYPES[name]})"
    return defaults[name]


def import_incidents(session: Session, path: Path | str, options: SourceOptions | None = None, *,
                     skip_outside: bool = False, timezone: str = DEFAULT_TIMEZONE,
                     user_id: int | None = None, bulk: bool | None = None) -> IncidentImportReport:
    """Import every incident of a file, or none.

    Parameters are as for the area importers (:class:`SourceOptions`); ``timezone`` says how to
    read times without an offset; ``skip_outside`` leaves out points in no grid instead of
    refusing the file. Rows whose ``client_id`` is already stored are left out and counted,
    so importing the same file twice adds nothing. ``bulk`` forces (True) or forbids (False)
    rebuilding the table's indexes instead of writing through them; by default a large import
    does (:func:`_bulk_pays`). It holds an exclusive lock on ``incidents`` until the caller
    commits, so maps wait for it.
    """
    options = options or SourceOptions()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {timezone!r} (e.g. Asia/Shanghai)", "timezone") from None
    path = Path(path)
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now
        if options.progress:
            tqdm.write(f"{name}: {seconds[name]:.1f} s", file=sys.stderr)

    frame = read_features(path, options, allow_csv=True)
    lap("read")
    values, constant = resolve_columns(frame, INCIDENT_FIELDS, options, "incidents", ignore=("lon", "lat"),
                                       raw=True)
    for name in TEXT_FIELDS:
        if name in values:
            values[name] = as_text(values[name])
    problems = _Problems(values["client_id"] if "client_id" in values else None)
    report = IncidentImportReport(rows=len(frame))

    geoms = frame.geometry.to_numpy()
    kinds = shapely.get_type_id(geoms)
    single = (kinds == 4) & (shapely.get_num_geometries(geoms) == 1)
    if single.any():
        geoms = geoms.copy()
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    is_point = (shapely.get_type_id(geoms) == 0) & ~shapely.is_empty(geoms)
    problems.add(shapely.is_missing(geoms), "has no point (are lon/lat numbers?)")
    problems.add(~shapely.is_missing(geoms) & ~is_point,
                 lambda ps: [f"the geometry is a {geoms[p].geom_type}, not a point" for p in ps])
    lon = np.where(is_point, shapely.get_x(np.where(is_point, geoms, None)), np.nan)
    lat = np.where(is_point, shapely.get_y(np.where(is_point, geoms, None)), np.nan)
    check_coordinates(frame.set_geometry(np.where(is_point, geoms, None)), expected_extent(session, options.metric_crs))
    clean = _check_values(values, problems, timezone)
    lap("check")

    constants = {name: clean[name].iat[0] for name in constant if name in clean}
    for name, value in list(constants.items()):
        if isinstance(value, pd.Timestamp):
            constants[name] = value.isoformat()
        elif isinstance(value, (np.bool_, np.integer)):
            constants[name] = value.item()
        elif value is pd.NA:
            constants[name] = None
    staged = [c for c in clean.columns if c not in constant]
    usable = is_point & np.isfinite(lon) & np.isfinite(lat)
    staging = {"row_no": pa.array(np.flatnonzero(usable) + 1, pa.int32()),
               "lon": pa.array(lon[usable]), "lat": pa.array(lat[usable])}
    for name in staged:
        staging[name] = pa.Array.from_pandas(clean[name][usable])
    staging = pa.table(staging)

    conn = session.connection().connection.dbapi_connection
    with conn.cursor() as cur:
        _room_for_staging(cur)
        # For the whole import: the DISTINCT ON of the grid join sorts every row, and the staging
        # index and (on the bulk path) the table's indexes are built in memory. JIT compiling
        # cost the grid join and the INSERT a few tenths of a second each and saved nothing.
        cur.execute("SET LOCAL work_mem = '256MB'; SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL jit = off")
        cur.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
        # The point is made as each row arrives (a generated column), and indexed once loaded: the
        # grid join below then walks the grids and asks this index for each grid's points.
        cur.execute(f"CREATE TEMP TABLE {STAGING_TABLE} (row_no integer, lon float8, lat float8"
                    + "".join(f", {name} {STAGING_TYPES[name]}" for name in staged)
                    + f", geom geometry(Point, 4326) GENERATED ALWAYS AS ({POINT_SQL}) STORED) ON COMMIT DROP")
        _copy(cur, staging, options)
        cur.execute(f"CREATE INDEX ON {STAGING_TABLE} USING gist (geom)")
        cur.execute(f"ANALYZE {STAGING_TABLE}")
        lap("copy")
        params = {"tz": timezone, **constants}
        unit_ref = "s.unit_ref" if "unit_ref" in staged else ("%(unit_ref)s" if constants.get("unit_ref") else None)
        bad = problems.as_list() + (_unknown_units(cur, unit_ref, params, problems.codes) if unit_ref else [])
        if bad:
            bad += _outside_rows(cur, problems.codes)
            bad.sort(key=lambda p: p.row)
            raise ImportRefused(path.name, bad, _outside_hint(bad, report.rows))

        if "client_id" in staged:
            cur.execute(f"SELECT count(*) FROM {STAGING_TABLE} s JOIN incidents i ON i.client_id = s.client_id")
            report.already_present = cur.fetchone()[0]
        columns = ["category", "subcategory", "severity", "legal_class", "enterprise_involved", "status",
                   "occurred_at", "reported_at", "description", "client_id"]
        if options.progress:
            tqdm.write(f"placing {len(staging):,} incidents in grids and writing them (one SQL statement)…",
                       file=sys.stderr)
        select = ", ".join(_column_sql(c, set(staged), constants) for c in columns)
        # Checked above: each named unit is an active enterprise whose village holds the point.
        unit_column, unit_value, unit_join = (
            (", unit_id", ", u.id", f" LEFT JOIN places u ON u.ref = {unit_ref} AND u.kind = 'enterprise' AND u.active")
            if unit_ref else ("", "", ""))
        conflict = " ON CONFLICT (client_id) WHERE client_id IS NOT NULL DO NOTHING" if "client_id" in staged else ""
        bulk = _bulk_pays(cur, len(staging)) if bulk is None else bulk
        # The one set-based statement: each point joined to the lowest-coded grid it touches
        # (the trigger's rule, so the trigger agrees), its village and town. The join runs grid by
        # grid over the staging index, so each grid's polygon is prepared once for its points
        # (PostGIS caches it) instead of tested afresh per point; then DISTINCT ON keeps one grid
        # for the few points on a shared boundary.
        with indexes_set_aside(cur, lap) if bulk else nullcontext():
            cur.execute(
                f"INSERT INTO incidents ({', '.join(columns)}, grid_code, village_code, town_code, geom{unit_column}) "
                f"SELECT {select}, pl.code, pl.village_code, v.town_code, s.geom{unit_value} "
                f"FROM (SELECT DISTINCT ON (s.row_no) s.row_no, g.code, g.village_code "
                f"FROM grids g JOIN {STAGING_TABLE} s ON ST_Intersects(g.geom, s.geom) "
                "ORDER BY s.row_no, g.code) AS pl "
                f"JOIN {STAGING_TABLE} s ON s.row_no = pl.row_no "
                f"JOIN villages v ON v.code = pl.village_code{unit_join}{conflict}", params)
            report.imported = cur.rowcount
            report.bulk = bulk
        if not bulk:
            lap("insert")
        missing = len(staging) - report.imported - report.already_present
        if missing and skip_outside:
            report.outside = missing
        elif missing:
            outside = _outside_rows(cur, problems.codes)
            raise ImportRefused(path.name, outside, _outside_hint(outside, report.rows)
                                + " Or leave such rows out with --skip-outside.")
        cur.execute(f"DROP TABLE {STAGING_TABLE}")
    report.seconds = seconds
    audit(session, user_id, "import.incidents", "incidents", None,
          {"file": path.name, "rows": report.rows, "imported": report.imported, "outside": report.outside,
           "already_present": report.already_present})
    session.flush()
    return report


class _CsvStream(io.RawIOBase):
    """The staging rows as CSV, formatted (by Arrow) a chunk at a time as COPY reads them, so the
    server parses one chunk while the next is being formatted."""

    def __init__(self, table: pa.Table, on_chunk):
        self.batches = iter(table.to_batches(max_chunksize=COPY_CHUNK))
        self.on_chunk = on_chunk
        self.pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while len(self.pending) < max(size, 1):
            batch = next(self.batches, None)
            if batch is None:
                break
            out = io.BytesIO()
            pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
            self.pending += out.getvalue()
            self.on_chunk(batch.num_rows)
        size = len(self.pending) if size is None or size < 0 else size
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


def _copy(cur, staging: pa.Table, options: SourceOptions) -> None:
    with tqdm(total=len(staging), desc="loading", unit="row", disable=not options.progress, file=sys.stderr,
              leave=False, dynamic_ncols=True) as bar:
        cur.copy_expert(f"COPY {STAGING_TABLE} ({', '.join(staging.column_names)}) FROM STDIN WITH (FORMAT csv)",
                        _CsvStream(staging, bar.update), size=1 << 20)


def _room_for_staging(cur) -> None:
    """Temporary tables live in the session's own buffers, 8 MB by default: a million staged rows
    (~200 MB) then go back and forth to the kernel on every pass, which doubles the grid join.
    The size can only be set before the session first uses a temporary table; a session that has
    (another import on the same connection) keeps its buffers."""
    cur.execute("SAVEPOINT gridmap_staging_buffers")
    try:
        cur.execute(f"SET LOCAL temp_buffers = '{STAGING_BUFFERS}'")
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT gridmap_staging_buffers")
    cur.execute("RELEASE SAVEPOINT gridmap_staging_buffers")


def _bulk_pays(cur, rows: int) -> bool:
    """Whether rebuilding the indexes beats writing through them: many rows, not few beside the table."""
    if rows < BULK_MIN_ROWS:
        return False
    cur.execute("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'incidents'::regclass")
    return rows * 4 >= cur.fetchone()[0]


# The per-row placement and the per-statement tile counts (rebuilt in one pass instead, 0007).
SET_ASIDE_TRIGGERS = ("incidents_assign_place", "incidents_cells_insert")


@contextmanager
def indexes_set_aside(cur, lap):
    """Rows written meanwhile skip incidents' secondary indexes, foreign keys, per-row placement
    trigger and tile-count trigger; afterwards each index is rebuilt, each key checked and the
    tile counts recomputed, each in one pass.

    The unique indexes (id, client_id) stay: ON CONFLICT needs them. The rows must come with
    their grid, village and town (the INSERT … SELECT places them by the trigger's rule). All of
    it is inside the caller's transaction, under an exclusive lock: a failure leaves the table as
    it was, and no one sees it without its indexes."""
    cur.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
    cur.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'incidents'::regclass AND NOT indisunique ORDER BY 1")
    indexes = cur.fetchall()
    cur.execute("SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'incidents'::regclass AND contype = 'f' ORDER BY 1")
    foreign_keys = cur.fetchall()
    for name, _ in foreign_keys:
        cur.execute(f"ALTER TABLE incidents DROP CONSTRAINT {name}")
    for name, _ in indexes:
        cur.execute(f"DROP INDEX {name}")
    for trigger in SET_ASIDE_TRIGGERS:
        cur.execute(f"ALTER TABLE incidents DISABLE TRIGGER {trigger}")
    yield
    lap("insert")
    for _, definition in indexes:
        cur.execute(definition)
    lap("indexes")
    for name, definition in foreign_keys:
        cur.execute(f"ALTER TABLE incidents ADD CONSTRAINT {name} {definition}")
    lap("foreign keys")
    cur.execute("SELECT gridmap_rebuild_cell_counts()")
    for trigger in SET_ASIDE_TRIGGERS:
        cur.execute(f"ALTER TABLE incidents ENABLE TRIGGER {trigger}")
    lap("tile counts")


def _unknown_units(cur, unit_ref: str, params: dict, codes: pd.Series | None) -> list[RowProblem]:
    """Rows naming a unit that is no active enterprise of the registry in the village the point lies in."""
    cur.execute(f"SELECT s.row_no, {unit_ref} FROM {STAGING_TABLE} s WHERE {unit_ref} IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM places p JOIN grids g ON g.village_code = p.village_code "
                f"WHERE p.ref = {unit_ref} AND p.kind = 'enterprise' AND p.active AND ST_Intersects(g.geom, s.geom)) "
                "ORDER BY s.row_no", params)
    return [RowProblem(row, codes.iat[row - 1] if codes is not None else None,
                       f"unit_ref {ref!r} is no active enterprise of the registry in the village of the point")
            for row, ref in cur.fetchall()]


def _outside_rows(cur, codes: pd.Series | None) -> list[RowProblem]:
    cur.execute(f"SELECT s.row_no, s.lon, s.lat FROM {STAGING_TABLE} s WHERE NOT EXISTS "
                f"(SELECT 1 FROM grids g WHERE ST_Intersects(g.geom, s.geom)) ORDER BY s.row_no")
    return [RowProblem(row, codes.iat[row - 1] if codes is not None else None,
                       f"the point ({lon:.6f}, {lat:.6f}) lies in no grid") for row, lon, lat in cur.fetchall()]


def _outside_hint(problems: list[RowProblem], rows: int) -> str:
    outside = sum(1 for p in problems if p.reason.endswith("lies in no grid"))
    if not outside:
        return ""
    hint = f"{outside:,} of {rows:,} rows lie in no grid."
    if outside * 2 > rows:
        hint += " When most points miss the grids, check the CRS (--crs) and whether they are GCJ-02 (--from-gcj02)."
    return hint

