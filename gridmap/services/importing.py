"""Import a county's own places: towns, villages, grids, patrol zones, police stations, mediation points.

Files are GeoPackage, Shapefile, GeoJSON or KML (read by pyogrio), or CSV with lon/lat columns
for point layers. Any CRS is reprojected to EPSG:4326; a file without one is refused unless the
caller names it; coordinates picked on AMap/Tencent maps (GCJ-02) are shifted back to WGS84.
Columns are mapped by option, codes of a foreign data set can be fitted into the county's
hierarchy with a code template, invalid polygons are repaired (and named), and the whole file is
written in the caller's transaction or, on any refused row, not at all.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from psycopg2.extras import execute_values
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import text
from sqlalchemy.orm import Session
from tqdm import tqdm

from gridmap.analysis.gcj02 import gcj02_to_wgs84
from gridmap.analysis.grid_tiling import grid_tiling_problems
from gridmap.catalog import MEDIATION_KIND_ZH, MEDIATION_KINDS
from gridmap.config import Config
from gridmap.errors import ValidationError
from gridmap.services.accounts import audit

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".kml", ".zip")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
# Rows named in a refusal message; the full list is in the error's details.
LISTED_ROWS = 20
# Margin around the county's known extent within which new data is believable (degrees, ~20 km).
EXTENT_MARGIN_DEG = 0.2
# Margin around the metric CRS's area of use when the database holds no county yet.
AREA_OF_USE_MARGIN_DEG = 1.0


def default_metric_crs() -> str:
    import os

    return os.environ.get("GRIDMAP_METRIC_CRS", Config.METRIC_CRS)


@dataclass
class SourceOptions:
    """How to read a file: which layer, its CRS, GCJ-02, column mapping and codes."""

    layer: str | None = None
    crs: str | None = None
    from_gcj02: bool = False
    mapping: dict[str, str] = field(default_factory=dict)     # target field -> source column
    constants: dict[str, str] = field(default_factory=dict)   # target field -> one value for every row
    code_template: str | None = None
    dissolve: bool = False      # rows sharing a code are parts of one area
    metric_crs: str = field(default_factory=default_metric_crs)
    progress: bool = False


@dataclass(frozen=True)
class RowProblem:
    row: int
    code: str | None
    reason: str

    def __str__(self) -> str:
        code = f" (code {self.code})" if self.code else ""
        return f"row {self.row}{code}: {self.reason}"


class ImportRefused(ValidationError):
    """Rows were refused; nothing was written. ``details`` lists every problem."""

    code = "import_refused"

    def __init__(self, what: str, problems: list[RowProblem], hint: str = ""):
        listed = "\n".join(f"  {p}" for p in problems[:LISTED_ROWS])
        more = f"\n  … and {len(problems) - LISTED_ROWS:,} more" if len(problems) > LISTED_ROWS else ""
        noun = "row" if len(problems) == 1 else "rows"
        message = (f"{what}: {len(problems):,} {noun} refused, nothing was imported\n{listed}{more}"
                   + (f"\n{hint}" if hint else ""))
        super().__init__(message, "file",
                         details=[{"row": p.row, "code": p.code, "reason": p.reason} for p in problems])
        self.problems = problems


@dataclass
class ImportReport:
    layer: str
    rows: int
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    repaired: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: int = 0
    problems_path: Path | None = None

    def lines(self) -> list[str]:
        out = [f"{self.layer}: {self.rows:,} rows read, {self.inserted:,} new, {self.updated:,} updated"
               + (f", {self.skipped:,} skipped" if self.skipped else "")]
        if self.repaired:
            out.append(f"repaired {len(self.repaired)} invalid geometr{'y' if len(self.repaired) == 1 else 'ies'}"
                       " (shapely make_valid):")
            out.extend(f"  {p}" for p in self.repaired)
        out.extend(self.notes)
        return out


# --- reading -------------------------------------------------------------------------------------

def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def _parse_crs(value: str, option: str = "--crs") -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise ValidationError(f"unknown CRS {value!r} given to {option} (try e.g. EPSG:4547)", "crs") from None


def _find_column(columns, wanted: str) -> str | None:
    lowered = {str(c).strip().lower(): c for c in columns}
    return lowered.get(wanted.strip().lower())


def _read_csv_points(path: Path, options: SourceOptions) -> gpd.GeoDataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, OSError) as err:
        raise ValidationError(f"cannot read {path.name} as a UTF-8 CSV file: {err}", "file") from None

    def coordinate_column(target: str, names: tuple[str, ...]) -> str:
        if target in options.mapping:
            column = _find_column(frame.columns, options.mapping[target])
            if column is None:
                raise ValidationError(f"--map {target}={options.mapping[target]}: the file has no such column "
                                      f"(it has: {', '.join(map(str, frame.columns))})", target)
            return column
        for name in names:
            column = _find_column(frame.columns, name)
            if column is not None:
                return column
        raise ValidationError(f"{path.name} needs a {target} column ({', '.join(names)}) or --map {target}=COLUMN "
                              f"(it has: {', '.join(map(str, frame.columns))})", target)

    lon_col = coordinate_column("lon", LON_NAMES)
    lat_col = coordinate_column("lat", LAT_NAMES)
    lon = pd.to_numeric(frame[lon_col].str.strip(), errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(frame[lat_col].str.strip(), errors="coerce").to_numpy(dtype=float)
    geometry = shapely.points(lon, lat)
    geometry[~(np.isfinite(lon) & np.isfinite(lat))] = None
    attributes = frame.drop(columns=[lon_col, lat_col])
    # Lon/lat columns hold degrees; unless told otherwise they are WGS84.
    return gpd.GeoDataFrame(attributes, geometry=geometry, crs=None if options.crs else "EPSG:4326")


def _read_vector(path: Path, options: SourceOptions) -> gpd.GeoDataFrame:
    try:
        layers = pyogrio.list_layers(path)
    except Exception as err:  # pyogrio's DataSourceError and friends
        raise ValidationError(f"cannot read {path.name}: {err}", "file") from None
    names = [str(name) for name, _ in layers]
    if options.layer is None and len(names) > 1:
        raise ValidationError(f"{path.name} holds several layers ({', '.join(names)}); choose one with --layer",
                              "layer")
    if options.layer is not None and options.layer not in names:
        raise ValidationError(f"{path.name} has no layer {options.layer!r} (it has: {', '.join(names)})", "layer")
    if not names:
        raise ValidationError(f"{path.name} holds no layers", "file")
    try:
        return pyogrio.read_dataframe(path, layer=options.layer or names[0], use_arrow=True)
    except Exception as err:
        raise ValidationError(f"cannot read {path.name}: {err}", "file") from None


def read_features(path: Path | str, options: SourceOptions, *, allow_csv: bool) -> gpd.GeoDataFrame:
    """The file's features in EPSG:4326 (WGS84), GCJ-02 undone when asked, in file order.

    Geometries that could not be read (a CSV row without numeric lon/lat) are None; the
    attribute columns are those of the file.
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"no such file: {path}", "file")
    suffix = _suffix(path)
    if suffix in CSV_SUFFIXES:
        if not allow_csv:
            raise ValidationError("CSV files carry points (lon/lat columns); polygons need a GeoPackage, "
                                  "Shapefile, GeoJSON or KML file", "file")
        frame = _read_csv_points(path, options)
    elif suffix in VECTOR_SUFFIXES:
        frame = _read_vector(path, options)
    else:
        kinds = "GeoPackage, Shapefile, GeoJSON, KML" + (" or CSV" if allow_csv else "")
        raise ValidationError(f"{path.name}: unknown file type {suffix!r} (use {kinds})", "file")
    if len(frame) == 0:
        raise ValidationError(f"{path.name} holds no features", "file")

    if options.crs:
        source_crs = _parse_crs(options.crs)
    elif frame.crs is None:
        raise ValidationError(f"{path.name} does not say which coordinate reference system it uses; "
                              "name it with --crs (e.g. --crs EPSG:4547, or EPSG:4326 for lon/lat)", "crs")
    else:
        source_crs = CRS.from_user_input(frame.crs)
    if options.from_gcj02 and not source_crs.is_geographic:
        raise ValidationError(f"--from-gcj02 expects longitude/latitude, but the file's CRS "
                              f"({source_crs.name}) is projected", "crs")
    frame = frame.set_crs(source_crs, allow_override=True)
    geometries = frame.geometry.to_numpy()
    if shapely.has_z(geometries).any():   # rebuilding every geometry costs ~0.6 s a million points
        frame.geometry = shapely.force_2d(geometries)
    if not source_crs.equals(CRS.from_epsg(4326)):
        frame = frame.to_crs(4326)
    if options.from_gcj02:
        frame.geometry = shapely.transform(
            frame.geometry.to_numpy(), lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))
    frame.attrs["source_crs"] = source_crs.to_string()
    return frame.reset_index(drop=True)


# --- where the data may lie ---------------------------------------------------------------------

@dataclass(frozen=True)
class Extent:
    west: float
    south: float
    east: float
    north: float
    what: str
    hint: str = ""

    def describe(self) -> str:
        return f"{self.what} (lon {self.west:.3f}..{self.east:.3f}, lat {self.south:.3f}..{self.north:.3f})"


def metric_crs_extent(metric_crs: str) -> Extent:
    crs = _parse_crs(metric_crs, "the metric CRS")
    if not crs.is_projected:
        raise ValidationError(f"the metric CRS {metric_crs} is not projected (areas need metres)", "metric_crs")
    use = crs.area_of_use
    if use is None:
        return Extent(-180, -90, 180, 90, f"the area of use of {metric_crs}")
    m = AREA_OF_USE_MARGIN_DEG
    return Extent(max(use.west - m, -180), max(use.south - m, -90), min(use.east + m, 180), min(use.north + m, 90),
                  f"the area of use of the metric CRS {metric_crs} ({crs.name})",
                  " If the data is right, this deployment needs a metric CRS for its region: set "
                  "GRIDMAP_METRIC_CRS (or --metric-crs), e.g. to the local UTM zone.")


def check_metric_crs(frame: gpd.GeoDataFrame, metric_crs: str) -> None:
    """Areas are measured in the metric CRS; refuse data far outside where that CRS is valid."""
    extent = metric_crs_extent(metric_crs)
    west, south, east, north = frame.total_bounds
    if not (west >= extent.west and east <= extent.east and south >= extent.south and north <= extent.north):
        raise ValidationError(
            f"the data (lon {west:.3f}..{east:.3f}, lat {south:.3f}..{north:.3f}) lies outside {extent.describe()}, "
            "so areas measured in it would be wrong." + extent.hint, "metric_crs")


def expected_extent(session: Session, metric_crs: str) -> Extent:
    """Where imported data should lie: around the county and towns already stored, or else
    where the deployment's metric CRS is meant to be used."""
    row = session.execute(text(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM ("
        "SELECT geom FROM counties UNION ALL SELECT geom FROM towns) AS places) AS x")).one()
    if row[0] is None:
        return metric_crs_extent(metric_crs)
    m = EXTENT_MARGIN_DEG
    return Extent(row[0] - m, row[1] - m, row[2] + m, row[3] + m, "the county's extent")


def check_coordinates(frame: gpd.GeoDataFrame, extent: Extent, codes: list[str | None] | None = None
                      ) -> list[RowProblem]:
    """Refuse a file whose coordinates cannot be longitude/latitude here (a wrong CRS), and
    return row problems for the few rows that lie far away when most are fine."""
    geoms = frame.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return []
    bounds = shapely.bounds(geoms)
    source = frame.attrs.get("source_crs", "EPSG:4326")
    finite = np.isfinite(bounds).all(axis=1)
    in_range = finite & (bounds[:, 0] >= -180) & (bounds[:, 2] <= 180) & (bounds[:, 1] >= -90) & (bounds[:, 3] <= 90)
    inside = in_range & (bounds[:, 2] >= extent.west) & (bounds[:, 0] <= extent.east) \
        & (bounds[:, 3] >= extent.south) & (bounds[:, 1] <= extent.north)
    outside = present & ~inside
    if not outside.any():
        return []
    rows = np.flatnonzero(outside)
    if outside.sum() * 2 > present.sum():
        sample = rows[:5]
        where = "; ".join(f"row {i + 1} at ({bounds[i, 0]:.6g}, {bounds[i, 1]:.6g})" for i in sample)
        swapped = all(extent.west <= bounds[i, 1] <= extent.east and extent.south <= bounds[i, 0] <= extent.north
                      for i in sample)
        hint = (" Longitude and latitude look swapped." if swapped else
                " Is the CRS right? Name the file's real CRS with --crs (e.g. EPSG:4547 for "
                "CGCS2000 3-degree Gauss-Kruger 114E, EPSG:4326 for lon/lat)." + extent.hint)
        raise ValidationError(
            f"{outside.sum():,} of {present.sum():,} features lie outside {extent.describe()} after reading "
            f"the file as {source}: {where}.{hint}", "crs")
    return [RowProblem(int(i) + 1, codes[i] if codes else None,
                       f"lies outside {extent.what} at ({bounds[i, 0]:.6f}, {bounds[i, 1]:.6f})")
            for i in rows]


# --- columns -------------------------------------------------------------------------------------

def as_text(series: pd.Series) -> pd.Series:
    """Cell values as stripped strings (None for empty); integral floats lose their '.0'."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=float)
        integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 1e15)
        out = pd.Series([None] * len(series), index=series.index, dtype=object)
        out[integral] = [str(int(v)) for v in values[integral]]
        other = np.isfinite(values) & ~integral
        out[other] = [repr(float(v)) for v in values[other]]
        return out
    if pd.api.types.is_integer_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.astype(str).astype(object)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object).where(series.notna(), None)
    return map_distinct(series, _stripped)


def _stripped(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def map_distinct(series: pd.Series, function) -> pd.Series:
    """``function`` of each value (None where missing) as an object column, called once per distinct
    value: a million rows of a few labels cost one hash pass, not a million calls or lookups."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)   # code -1 (missing) picks the last, None
    results[:-1] = [function(value) for value in uniques]
    return pd.Series(results[codes], index=series.index, dtype=object)


def resolve_columns(frame: pd.DataFrame, fields: dict[str, bool], options: SourceOptions, layer: str,
                    *, ignore: tuple[str, ...] = (), raw: bool = False) -> tuple[pd.DataFrame, set[str]]:
    """Target fields from ``--map`` / same-named columns / ``--set`` constants.

    ``fields`` maps each target field to whether it is required. Columns come as text (see
    :func:`as_text`) unless ``raw``; constants are always text. Returns the frame of present
    fields and the names that came from a constant.
    """
    known = set(fields) | set(ignore)
    for option, given in (("--map", options.mapping), ("--set", options.constants)):
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValidationError(f"{option} {unknown[0]}=…: {layer} have no field {unknown[0]!r} "
                                  f"(fields: {', '.join(fields)})", unknown[0])
    both = sorted(set(options.mapping) & set(options.constants) - set(ignore))
    if both:
        raise ValidationError(f"{both[0]} is given both by --map and --set; choose one", both[0])
    columns = [c for c in frame.columns if c != frame.geometry.name] if isinstance(frame, gpd.GeoDataFrame) \
        else list(frame.columns)
    out: dict[str, pd.Series] = {}
    constant: set[str] = set()
    for name, required in fields.items():
        if name in options.constants:
            value = str(options.constants[name]).strip()
            out[name] = pd.Series([value or None] * len(frame), index=frame.index, dtype=object)
            constant.add(name)
            continue
        source = options.mapping.get(name, name)
        column = _find_column(columns, source)
        if column is None and name in options.mapping:
            raise ValidationError(f"--map {name}={source}: the file has no column {source!r} "
                                  f"(it has: {', '.join(map(str, columns))})", name)
        if column is None:
            if required:
                raise ValidationError(
                    f"missing column {name!r} for {layer}: map one with --map {name}=COLUMN or give one value "
                    f"for every row with --set {name}=VALUE (the file has: {', '.join(map(str, columns)) or 'none'})",
                    name)
            continue
        out[name] = frame[column] if raw else as_text(frame[column])
    return pd.DataFrame(out, index=frame.index), constant


_TEMPLATE = re.compile(r"^([^#]*)(#+)([^#]*)$")


def apply_code_template(codes: pd.Series, template: str) -> tuple[pd.Series, dict[int, str]]:
    """Fit foreign codes into ours: ``990000001###`` turns 7 into ``990000001007``.

    The run of ``#`` takes the source code, zero-padded; the rest is copied. Returns the new
    codes and, by position, why a code did not fit.
    """
    match = _TEMPLATE.match(template)
    if not match:
        raise ValidationError(f"--code-template {template!r} needs exactly one run of '#' for the file's code, "
                              "e.g. 410421999###", "code_template")
    prefix, hashes, suffix = match.groups()
    width = len(hashes)
    out = []
    problems: dict[int, str] = {}
    for position, value in enumerate(codes):
        if not isinstance(value, str):
            out.append(None)
        elif not value.isdigit() or len(value.lstrip("0") or "0") > width:
            out.append(None)
            problems[position] = f"code {value!r} does not fit --code-template {template} (at most {width} digits)"
        else:
            out.append(f"{prefix}{int(value):0{width}d}{suffix}")
    return pd.Series(out, index=codes.index, dtype=object), problems


# --- geometry ------------------------------------------------------------------------------------

def _polygons_of(geom) -> list:
    if geom.geom_type == "Polygon":
        return [geom]
    if geom.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [p for part in geom.geoms for p in _polygons_of(part)]
    return []


def area_geometry(geom) -> tuple[object | None, str | None, str | None]:
    """(multipolygon, refusal, repair note) for one feature."""
    if geom is None or geom.is_empty:
        return None, "has no geometry", None
    polygons = _polygons_of(geom)
    if not polygons:
        return None, f"the geometry is a {geom.geom_type}, not a polygon", None
    shape = shapely.MultiPolygon(polygons)
    if shape.is_valid:
        return shape, None, None
    reason = shapely.is_valid_reason(shape)
    repaired = _polygons_of(shapely.make_valid(shape))
    if not repaired:
        return None, f"invalid polygon ({reason}) that cannot be repaired", None
    fixed = shapely.MultiPolygon(repaired)
    if not fixed.is_valid:  # parts of a collection may still overlap one another
        fixed = shapely.MultiPolygon(_polygons_of(shapely.union_all(repaired)))
    return fixed, None, reason


def point_geometry(geom) -> tuple[object | None, str | None]:
    if geom is None or geom.is_empty:
        return None, "has no point (are lon/lat numbers?)"
    if geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    if geom.geom_type != "Point":
        return None, f"the geometry is a {geom.geom_type}, not a point"
    return geom, None


# --- the layers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    table: str
    fields: dict[str, bool]     # field -> required
    points: bool = False
    code_digits: int | None = None


LAYER_SPECS: dict[str, LayerSpec] = {
    "towns": LayerSpec("towns", {"code": True, "name": True}, code_digits=12),
    "villages": LayerSpec("villages", {"code": True, "name": True, "full_name": False, "town_code": False},
                          code_digits=12),
    "grids": LayerSpec("grids", {"code": True, "name": True, "village_code": False, "population": False,
                                 "households": False}, code_digits=15),
    "zones": LayerSpec("patrol_zones", {"code": True, "name": True, "station_code": False}),
    "stations": LayerSpec("police_stations", {"code": True, "name": True, "town_code": False}, points=True),
    "mediation-points": LayerSpec("mediation_points", {"name": True, "kind": True, "village_code": False,
                                                       "contact": False, "mediators": False,
                                                       "opening_hours": False}, points=True),
}
AREA_LAYERS = tuple(LAYER_SPECS)
TEXT_LIMITS = {"code": 40, "name": 100, "full_name": 200, "contact": 100, "opening_hours": 200}
KIND_BY_LABEL = {**{k: k for k in MEDIATION_KINDS}, **{zh: k for k, zh in MEDIATION_KIND_ZH.items()}}


def _existing_codes(session: Session, table: str, codes) -> set[str]:
    codes = sorted({c for c in codes if c})
    if not codes:
        return set()
    rows = session.execute(text(f"SELECT code FROM {table} WHERE code = ANY(:codes)"), {"codes": codes})
    return {r[0] for r in rows}


def _geometries_by_code(session: Session, table: str, codes) -> dict[str, object]:
    codes = sorted({c for c in codes if c})
    if not codes:
        return {}
    rows = session.execute(text(f"SELECT code, ST_AsBinary(geom) FROM {table} WHERE code = ANY(:codes)"),
                           {"codes": codes})
    return {code: shapely.from_wkb(bytes(wkb)) for code, wkb in rows}


def _count(value: str | None, name: str) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    try:
        number = float(value)
    except ValueError:
        return None, f"{name} {value!r} is not a number"
    if number < 0 or number != int(number):
        return None, f"{name} {value!r} must be a whole number ≥ 0"
    return int(number), None


def _progress(options: SourceOptions, total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="row", disable=not options.progress, file=sys.stderr,
                leave=False, dynamic_ncols=True)


def import_layer(session: Session, layer: str, path: Path | str, options: SourceOptions | None = None, *,
                 report_path: Path | None = None, user_id: int | None = None) -> ImportReport:
    """Import one file into towns, villages, grids, zones, stations or mediation-points.

    Rows are matched on their code (mediation points on name and village): new ones are
    inserted, known ones updated. Everything runs in the caller's transaction; any refused row
    raises :class:`ImportRefused` before anything is written. For grids the gaps and overlaps
    between the grids of each village touched are counted and, with ``report_path``, written there
    as GeoJSON.
    """
    if layer not in LAYER_SPECS:
        raise ValidationError(f"unknown layer {layer!r} (one of {', '.join(AREA_LAYERS)})", "layer")
    options = options or SourceOptions()
    spec = LAYER_SPECS[layer]
    path = Path(path)
    frame = read_features(path, options, allow_csv=spec.points)
    values, _ = resolve_columns(frame, spec.fields, options, layer, ignore=("lon", "lat"))
    report = ImportReport(layer=layer, rows=len(frame))
    problems: dict[int, list[str]] = {}

    def refuse(position: int, reason: str) -> None:
        problems.setdefault(position, []).append(reason)

    if "code" in values:
        if options.code_template:
            values["code"], misfits = apply_code_template(values["code"], options.code_template)
            for position, reason in misfits.items():
                refuse(position, reason)
    elif options.code_template:
        raise ValidationError(f"--code-template applies to codes, and {layer} have none", "code_template")
    codes = values["code"].tolist() if "code" in values else [None] * len(frame)
    merged = _dissolve(frame, values, report) if options.dissolve and "code" in values else set()

    extent = expected_extent(session, options.metric_crs)
    for problem in check_coordinates(frame, extent, codes):
        refuse(problem.row - 1, problem.reason)
    if layer == "grids":
        check_metric_crs(frame, options.metric_crs)

    rows = _validate_rows(session, layer, spec, frame, values, refuse, report, options, merged)
    if problems:
        listed = [RowProblem(position + 1, codes[position], reason)
                  for position in sorted(problems) for reason in problems[position]]
        raise ImportRefused(f"{path.name} ({layer})", listed)

    changed = _changed_areas(session, layer, rows) if layer in ("grids", "villages") else []
    if layer == "mediation-points":
        _write_mediation_points(session, rows, report, options)
    else:
        _upsert(session, layer, spec, rows, report, options)
    if changed:
        _reassign_incidents(session, changed)
    if layer == "grids":
        _check_tiling(session, rows, options, report, report_path)
    audit(session, user_id, f"import.{layer}", layer, None,
          {"file": path.name, "rows": report.rows, "inserted": report.inserted, "updated": report.updated,
           "repaired": [p.row for p in report.repaired]})
    session.flush()
    return report


def _dissolve(frame: gpd.GeoDataFrame, values: pd.DataFrame, report: ImportReport) -> set[int]:
    """Union the geometries of rows sharing a code into the first of them; returns the others."""
    geoms = frame.geometry.to_numpy().copy()
    merged: set[int] = set()
    for code, positions in values.groupby("code", dropna=True).indices.items():
        if len(positions) < 2:
            continue
        parts = [g if g is None or g.is_valid else shapely.make_valid(g) for g in geoms[positions]]
        geoms[positions[0]] = shapely.union_all(np.array(parts, dtype=object))
        merged.update(int(p) for p in positions[1:])
        report.notes.append(f"dissolved rows {', '.join(str(p + 1) for p in positions)} (code {code}) into one")
    frame.geometry = geoms
    return merged


def _validate_rows(session: Session, layer: str, spec: LayerSpec, frame: gpd.GeoDataFrame, values: pd.DataFrame,
                   refuse, report: ImportReport, options: SourceOptions, merged: set[int]) -> list[dict]:
    records = values.to_dict("records")
    geoms = frame.geometry.to_numpy()
    seen: dict[str, int] = {}
    rows: list[dict] = []
    for position, record in enumerate(records):
        if position in merged:
            continue
        record = {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else v) for k, v in record.items()}
        code = record.get("code")
        if "code" in spec.fields:
            if code is None:
                refuse(position, "has no code")
            elif spec.code_digits and not re.fullmatch(rf"[0-9]{{{spec.code_digits}}}", code):
                refuse(position, f"code {code!r} must have {spec.code_digits} digits")
            elif len(code) > TEXT_LIMITS["code"]:
                refuse(position, f"code {code!r} is longer than {TEXT_LIMITS['code']} characters")
            elif code in seen:
                refuse(position, f"code {code} also on row {seen[code] + 1} (if rows are parts of one area, "
                                 "use --dissolve)")
            else:
                seen[code] = position
        if record.get("name") is None:
            refuse(position, "has no name")
        for name, limit in TEXT_LIMITS.items():
            if name != "code" and record.get(name) is not None and len(record[name]) > limit:
                refuse(position, f"{name} is longer than {limit} characters")
        if spec.points:
            geom, reason = point_geometry(geoms[position])
        else:
            geom, reason, repaired = area_geometry(geoms[position])
            if repaired:
                report.repaired.append(RowProblem(position + 1, code, f"{repaired}, repaired"))
        if reason:
            refuse(position, reason)
        record["geom"] = geom
        record["position"] = position
        rows.append(record)

    if layer == "villages":
        for row in rows:
            if row.get("town_code") is None and row.get("code") and len(row["code"]) == 12:
                row["town_code"] = row["code"][:9] + "000"  # statistical codes: the town is the first 9 digits
        _check_parents(session, rows, "town_code", "towns", "town", refuse, must_contain=True)
    elif layer == "grids":
        for row in rows:
            code = row.get("code")
            if code and len(code) == 15:
                if row.get("village_code") is None:
                    row["village_code"] = code[:12]
                elif row["village_code"] != code[:12]:
                    refuse(row["position"], f"code {code} does not start with its village code {row['village_code']}")
            for name in ("population", "households"):
                row[name], reason = _count(row.get(name), name)
                row[name] = row[name] or 0
                if reason:
                    refuse(row["position"], reason)
        _check_parents(session, rows, "village_code", "villages", "village", refuse, must_contain=True)
        metric = gpd.GeoSeries([r["geom"] for r in rows], crs=4326).to_crs(options.metric_crs)
        for row, area in zip(rows, metric.area.to_numpy()):
            row["area_km2"] = None if np.isnan(area) else round(float(area) / 1e6, 6)
    elif layer == "zones":
        _check_parents(session, rows, "station_code", "police_stations", "police station", refuse)
    elif layer == "stations":
        _check_parents(session, rows, "town_code", "towns", "town", refuse)
        _locate_parents(session, rows, "town_code", "towns")
    elif layer == "mediation-points":
        for row in rows:
            kind = row.get("kind")
            if kind is not None:
                row["kind"] = KIND_BY_LABEL.get(kind) or KIND_BY_LABEL.get(kind.lower())
                if row["kind"] is None:
                    refuse(row["position"], f"unknown kind {kind!r} (one of "
                                            + ", ".join(f"{k}/{MEDIATION_KIND_ZH[k]}" for k in MEDIATION_KINDS) + ")")
            row["mediators"], reason = _count(row.get("mediators"), "mediators")
            if reason:
                refuse(row["position"], reason)
        _check_parents(session, rows, "village_code", "villages", "village", refuse)
        _locate_parents(session, rows, "village_code", "villages")
    return rows


def _check_parents(session: Session, rows: list[dict], column: str, table: str, what: str, refuse,
                   must_contain: bool = False) -> None:
    wanted = {r.get(column) for r in rows}
    known = _existing_codes(session, table, wanted)
    parents = _geometries_by_code(session, table, known) if must_contain else {}
    for row in rows:
        parent = row.get(column)
        if parent is None:
            continue
        if parent not in known:
            refuse(row["position"], f"unknown {what} {parent}"
                   + (f" (import the {table} first)" if not known else ""))
        elif must_contain and row["geom"] is not None and not row["geom"].intersects(parents[parent]):
            refuse(row["position"], f"lies entirely outside its {what} {parent} (wrong code, or wrong CRS?)")


def _locate_parents(session: Session, rows: list[dict], column: str, table: str) -> None:
    """Points without a parent code get the area they lie in, if any."""
    missing = [r for r in rows if r.get(column) is None and r["geom"] is not None]
    if not missing:
        return
    result = session.execute(text(
        f"SELECT p.i, (SELECT t.code FROM {table} t WHERE ST_Intersects(t.geom, p.geom) ORDER BY t.code LIMIT 1) "
        "FROM (SELECT i, ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom "
        "      FROM unnest(CAST(:i AS int[]), CAST(:x AS float8[]), CAST(:y AS float8[])) AS u(i, x, y)) AS p"),
        {"i": list(range(len(missing))), "x": [r["geom"].x for r in missing], "y": [r["geom"].y for r in missing]})
    for i, code in result:
        missing[i][column] = code


UPSERT_SQL = {
    "towns": ("INSERT INTO towns (code, name, geom) VALUES %s "
              "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom RETURNING (xmax = 0)",
              "(%(code)s, %(name)s, ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)))"),
    "villages": ("INSERT INTO villages (code, name, full_name, town_code, geom) VALUES %s "
                 "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, full_name = EXCLUDED.full_name, "
                 "town_code = EXCLUDED.town_code, geom = EXCLUDED.geom RETURNING (xmax = 0)",
                 "(%(code)s, %(name)s, %(full_name)s, %(town_code)s, ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)))"),
    "grids": ("INSERT INTO grids (code, name, village_code, population, households, area_km2, geom) VALUES %s "
              "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, village_code = EXCLUDED.village_code, "
              "population = EXCLUDED.population, households = EXCLUDED.households, "
              "area_km2 = EXCLUDED.area_km2, geom = EXCLUDED.geom RETURNING (xmax = 0)",
              "(%(code)s, %(name)s, %(village_code)s, %(population)s, %(households)s, %(area_km2)s, "
              "ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)))"),
    "zones": ("INSERT INTO patrol_zones (code, name, station_code, geom) VALUES %s "
              "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, station_code = EXCLUDED.station_code, "
              "geom = EXCLUDED.geom RETURNING (xmax = 0)",
              "(%(code)s, %(name)s, %(station_code)s, ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)))"),
    "stations": ("INSERT INTO police_stations (code, name, town_code, geom) VALUES %s "
                 "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, town_code = EXCLUDED.town_code, "
                 "geom = EXCLUDED.geom RETURNING (xmax = 0)",
                 "(%(code)s, %(name)s, %(town_code)s, ST_GeomFromWKB(%(wkb)s, 4326))"),
}
WRITE_CHUNK = 500


def _dbapi_cursor(session: Session):
    return session.connection().connection.dbapi_connection.cursor()


def _upsert(session: Session, layer: str, spec: LayerSpec, rows: list[dict], report: ImportReport,
            options: SourceOptions) -> None:
    sql, template = UPSERT_SQL[layer]
    fields = list(spec.fields) + (["area_km2"] if layer == "grids" else [])
    with _dbapi_cursor(session) as cur, _progress(options, len(rows), f"writing {layer}") as bar:
        for start in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[start:start + WRITE_CHUNK]
            params = [{**{f: r.get(f) for f in fields}, "wkb": shapely.to_wkb(r["geom"])} for r in chunk]
            created = execute_values(cur, sql, params, template=template, page_size=WRITE_CHUNK, fetch=True)
            report.inserted += sum(1 for (new,) in created if new)
            report.updated += sum(1 for (new,) in created if not new)
            bar.update(len(chunk))


def _write_mediation_points(session: Session, rows: list[dict], report: ImportReport,
                            options: SourceOptions) -> None:
    """Mediation points have no code: a row with the name and village of a stored one updates it."""
    columns = ("name", "kind", "village_code", "contact", "mediators", "opening_hours")
    with _progress(options, len(rows), "writing mediation points") as bar:
        for row in rows:
            params = {c: row.get(c) for c in columns} | {"wkb": shapely.to_wkb(row["geom"])}
            updated = session.execute(text(
                "UPDATE mediation_points SET kind = :kind, contact = :contact, mediators = :mediators, "
                "opening_hours = :opening_hours, geom = ST_GeomFromWKB(:wkb, 4326) "
                "WHERE name = :name AND village_code IS NOT DISTINCT FROM :village_code"), params).rowcount
            if updated:
                report.updated += 1
            else:
                session.execute(text(
                    "INSERT INTO mediation_points (name, kind, village_code, contact, mediators, opening_hours, geom) "
                    "VALUES (:name, :kind, :village_code, :contact, :mediators, :opening_hours, "
                    "ST_GeomFromWKB(:wkb, 4326))"), params)
                report.inserted += 1
            bar.update(1)


def _changed_areas(session: Session, layer: str, rows: list[dict]) -> list:
    """Envelopes (old and new) of the grids or villages this import adds or changes."""
    parent = "village_code" if layer == "grids" else "town_code"
    stored = {code: (shapely.from_wkb(bytes(wkb)), parent_code) for code, wkb, parent_code in session.execute(
        text(f"SELECT code, ST_AsBinary(geom), {parent} FROM {layer} WHERE code = ANY(:codes)"),
        {"codes": [r["code"] for r in rows]})}
    envelopes = []
    for row in rows:
        old = stored.get(row["code"])
        if old is not None and old[1] == row.get(parent) and shapely.equals_exact(old[0], row["geom"], 0):
            continue
        envelopes.append(shapely.envelope(row["geom"]))
        if old is not None:
            envelopes.append(shapely.envelope(old[0]))
    return envelopes


def _reassign_incidents(session: Session, envelopes: list) -> None:
    """Incidents already stored where grids or villages changed get their grid, village and town
    again, in one statement; one that would now lie in no grid refuses the import."""
    placed = ("SELECT i.id, i.geom, i.grid_code, i.village_code, i.town_code, g.code AS new_grid, "
              "g.village_code AS new_village, v.town_code AS new_town FROM incidents i "
              "LEFT JOIN LATERAL (SELECT code, village_code FROM grids WHERE ST_Intersects(grids.geom, i.geom) "
              "ORDER BY code LIMIT 1) AS g ON true LEFT JOIN villages v ON v.code = g.village_code "
              "WHERE ST_Intersects(i.geom, ST_GeomFromWKB(:area, 4326))")
    params = {"area": shapely.to_wkb(shapely.union_all(envelopes))}
    lost = session.execute(text(f"SELECT id, ST_X(geom), ST_Y(geom) FROM ({placed}) AS p "
                                "WHERE new_grid IS NULL ORDER BY id LIMIT 21"), params).all()
    if lost:
        listed = "; ".join(f"incident {i} at ({x:.6f}, {y:.6f})" for i, x, y in lost[:20])
        raise ValidationError(f"after this import {'more than 20' if len(lost) > 20 else len(lost)} stored "
                              f"incident(s) would lie in no grid: {listed}. Nothing was imported.", "file")
    session.execute(text(
        f"UPDATE incidents SET grid_code = p.new_grid, village_code = p.new_village, town_code = p.new_town "
        f"FROM ({placed}) AS p WHERE incidents.id = p.id AND (p.grid_code, p.village_code, p.town_code) "
        "IS DISTINCT FROM (p.new_grid, p.new_village, p.new_town)"), params)


def _check_tiling(session: Session, rows: list[dict], options: SourceOptions, report: ImportReport,
                  report_path: Path | None) -> None:
    village_codes = sorted({r["village_code"] for r in rows})
    params = {"codes": village_codes}
    villages = session.execute(text("SELECT code, ST_AsBinary(geom) FROM villages WHERE code = ANY(:codes)"),
                               params).all()
    grids = session.execute(text("SELECT code, village_code, ST_AsBinary(geom) FROM grids "
                                 "WHERE village_code = ANY(:codes)"), params).all()
    village_frame = gpd.GeoDataFrame({"code": [r[0] for r in villages]},
                                     geometry=shapely.from_wkb([bytes(r[1]) for r in villages]), crs=4326)
    grid_frame = gpd.GeoDataFrame({"code": [r[0] for r in grids], "village_code": [r[1] for r in grids]},
                                  geometry=shapely.from_wkb([bytes(r[2]) for r in grids]), crs=4326)
    problems = grid_tiling_problems(grid_frame, village_frame, options.metric_crs, min_area_m2=1.0)
    report.problems = len(problems)
    if problems.empty:
        report.notes.append(f"grids tile their {len(village_codes)} village(s): no gap, overlap or part "
                            "outside larger than 1 m²")
        return
    counts = problems["kind"].value_counts()
    summary = ", ".join(f"{counts.get(kind, 0)} {label}" for kind, label in
                        (("gap", "gap(s)"), ("overlap", "overlap(s)"), ("outside", "part(s) outside their village")))
    if report_path is not None:
        report_path = Path(report_path).resolve()
        report_path.parent.mkdir(parents=True, exist_ok=True)
        if report_path.exists():
            report_path.unlink()
        pyogrio.write_dataframe(problems, report_path, driver="GeoJSON")
        report.problems_path = report_path
        report.notes.append(f"grid check: {summary} larger than 1 m², written to {report_path}")
    else:
        report.notes.append(f"grid check: {summary} larger than 1 m²")
