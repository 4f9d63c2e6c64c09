"""The `gridmap` command: database, demo county, users, imports, server."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from gridmap.errors import GridmapError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def readable_errors(func):
    """Turn a service's typed error into a readable message and exit status 2."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GridmapError as err:
            where = f" [{err.field}]" if err.field else ""
            click.echo(f"error{where}: {err.message}", err=True)
            sys.exit(2)
    return wrapper


@click.group()
def main():
    """gridmap — 网格化管理地图 (grid-management map)."""


# --- database -------------------------------------------------------------------------------

@main.group()
def db():
    """Create and migrate the PostGIS database."""


def alembic_config(url: str | None = None):
    from alembic.config import Config

    from gridmap.config import database_url

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it is missing; True when created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": target.database}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return not exists


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Create the database if missing and migrate it to REVISION (default head)."""
    from alembic import command

    from gridmap.config import database_url

    if ensure_database(database_url()):
        click.echo("created database")
    command.upgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision):
    """Migrate down to REVISION (default: one step; `base` removes every table)."""
    from alembic import command

    command.downgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db.command("current")
def db_current():
    from alembic import command

    command.current(alembic_config())


# --- demo county ----------------------------------------------------------------------------

@main.group()
def demo():
    """The synthetic demo county (Baofeng 宝丰县)."""


@demo.command("build")
@click.option("--source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=PROJECT_ROOT / "geodata" / "sources" / "baofeng", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=PROJECT_ROOT / "geodata" / "baofeng", show_default=True)
@click.option("--seed", type=int, default=2023, show_default=True)
def demo_build(source, out, seed):
    """Regenerate geodata/baofeng/ from the real outline, names and codes."""
    from gridmap.demo.generator import build_demo
    from gridmap.demo.registries import build_registries

    counts = build_demo(source, out, seed=seed)
    # Places, inspections, staff and activities sit in the villages and grids just built.
    counts.update(build_registries(out, seed=seed))
    from gridmap.demo.patrol import build_demo_tracks

    counts.update(build_demo_tracks(out, seed=seed))
    for layer, n in counts.items():
        click.echo(f"{layer}: {n}")


@demo.command("load")
@click.option("--password", default="gridmap-demo", show_default=True, help="password of the demo accounts")
@readable_errors
def demo_load(password):
    """Load geodata/baofeng/ into the database, replacing the county's places and incidents."""
    from gridmap.db import session_scope
    from gridmap.services.demo import DEMO_USERS, load_demo

    with session_scope() as session:
        counts = load_demo(session, password=password)
    for table, n in counts.items():
        click.echo(f"{table}: {n}")
    click.echo("demo accounts: " + ", ".join(u[0] for u in DEMO_USERS) + f" (password: {password})")


# --- users ----------------------------------------------------------------------------------

@main.group()
def users():
    """Accounts, roles, scopes and API tokens."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, help="grid_worker, mediator, police, town_supervisor, county_officer, "
                                            "admin or viewer")
@click.option("--scope", "scopes", multiple=True, help="town, village, grid or patrol-zone code (repeatable)")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--display-name", default=None)
@readable_errors
def users_create(name, role, scopes, password, display_name):
    """Create user NAME with a role and scope."""
    from gridmap.db import session_scope
    from gridmap.services.accounts import create_user

    with session_scope() as session:
        user = create_user(session, name, password, role, list(scopes), display_name)
        click.echo(f"created {user.username} ({user.role}) scopes={','.join(user.scopes) or 'county'}")


@users.command("token")
@click.argument("name")
@readable_errors
def users_token(name):
    """Issue a new API token for NAME (printed once; use as `Authorization: Bearer <token>`)."""
    from gridmap.db import session_scope
    from gridmap.services.accounts import issue_token

    with session_scope() as session:
        click.echo(issue_token(session, name))


# --- registries (issue 7) -------------------------------------------------------------------

@main.group()
def registries():
    """Inspected places, village staff, bulletins (重点场所、一村一警一律师、定期通报)."""


@registries.command("bulletin")
@click.option("--period", help="a month such as 2023-05")
@click.option("--start", help="first day (instead of --period)")
@click.option("--end", help="last day (instead of --period)")
@click.option("--town", default=None, help="12-digit town code (default: the county)")
@click.option("--title", default="定期通报", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="file to write: .pdf, .xlsx or .json")
@readable_errors
def registries_bulletin(period, start, end, town, title, out):
    """Write a campaign bulletin (定期通报) for a town or the county as PDF, Excel or JSON."""
    import json

    from gridmap.db import session_scope
    from gridmap.services import bulletins
    from gridmap.errors import ValidationError
    from gridmap.services.registries import today_in_china

    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".xlsx", ".json"):
        raise ValidationError("--out must end in .pdf, .xlsx or .json", "out")
    with session_scope() as session:
        request = bulletins.parse_request(session, {"period": period, "start": start, "end": end, "town": town,
                                                    "title": title}, today_in_china())
        bulletin = bulletins.build_bulletin(session, None, request)
        if suffix == ".json":
            out.write_text(json.dumps(bulletin.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            image = bulletins.bulletin_map_png(session, bulletin)
            writer = bulletins.bulletin_pdf if suffix == ".pdf" else bulletins.bulletin_xlsx
            out.write_bytes(writer(bulletin, image))
    click.echo(f"wrote {out}")


# --- imports of a county's own data ---------------------------------------------------------

def _pairs(values, option: str) -> dict[str, str]:
    from gridmap.errors import ValidationError

    pairs = {}
    for value in values:
        key, sep, column = value.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise ValidationError(f"{option} takes FIELD=VALUE, got {value!r}", option.lstrip("-"))
        pairs[key.strip()] = column.strip()
    return pairs


def _source_options(layer, crs, from_gcj02, mappings, constants, code_template, dissolve, metric_crs, quiet):
    from gridmap.services.importing import SourceOptions, default_metric_crs

    return SourceOptions(layer=layer, crs=crs, from_gcj02=from_gcj02, mapping=_pairs(mappings, "--map"),
                         constants=_pairs(constants, "--set"), code_template=code_template, dissolve=dissolve,
                         metric_crs=metric_crs or default_metric_crs(), progress=not quiet)


def _import_options(func):
    options = [
        click.argument("file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--layer", default=None, help="layer of a GeoPackage or KML with several"),
        click.option("--crs", default=None, help="CRS of the file when it names none, or to override it "
                                                 "(EPSG:4547, EPSG:4326, …); CSV lon/lat default to EPSG:4326"),
        click.option("--from-gcj02", is_flag=True, help="coordinates were picked on AMap/Tencent maps (GCJ-02)"),
        click.option("--map", "mappings", multiple=True, metavar="FIELD=COLUMN",
                     help="take FIELD from the file's COLUMN (repeatable), e.g. --map code=XZQDM"),
        click.option("--set", "constants", multiple=True, metavar="FIELD=VALUE",
                     help="give FIELD one VALUE for every row (repeatable), e.g. --set category=SEC"),
        click.option("--metric-crs", default=None, help="projected CRS for areas (default GRIDMAP_METRIC_CRS "
                                                        "or EPSG:4547)"),
        click.option("--quiet", is_flag=True, help="no progress bar"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.group("import")
def import_group():
    """Import a county's own data: GeoPackage, Shapefile, GeoJSON, KML (and CSV for points).

    Every file is all-or-nothing: one refused row leaves the database unchanged, and the
    message names each refused row (1-based) with its code and the reason.
    """


def _area_import_command(layer: str, summary: str):
    @_import_options
    @click.option("--code-template", default=None, metavar="TEMPLATE",
                  help="fit the file's codes into the hierarchy: '#'s take the code, zero-padded "
                       "(e.g. 990000###001 makes 7 into 990000007001)")
    @click.option("--dissolve", is_flag=True, help="rows sharing a code are parts of one area: merge them")
    @readable_errors
    def command(file, **kw):
        from gridmap.db import session_scope
        from gridmap.services.importing import import_layer

        report_path = kw.pop("report", None)
        options = _source_options(kw["layer"], kw["crs"], kw["from_gcj02"], kw["mappings"], kw["constants"],
                                  kw["code_template"], kw["dissolve"], kw["metric_crs"], kw["quiet"])
        if layer == "grids" and report_path is None:
            report_path = Path.cwd() / f"{file.stem}.grid-check.geojson"
        with session_scope() as session:
            result = import_layer(session, layer, file, options, report_path=report_path)
        for line in result.lines():
            click.echo(line)

    command.__doc__ = summary
    if layer == "grids":
        command = click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
                               help="where to write the gaps and overlaps found (GeoJSON; default "
                                    "FILE-STEM.grid-check.geojson in the current directory)")(command)
    return import_group.command(layer)(command)


for _layer, _summary in (
        ("towns", "Import towns (乡镇/街道): code (12 digits), name."),
        ("villages", "Import villages (村/社区): code (12 digits), name, full_name; town_code defaults to the "
                     "code's first 9 digits + 000."),
        ("grids", "Import grids (网格): code (15 digits = village code + 3), name, population, households; "
                  "checks gaps and overlaps within each village."),
        ("zones", "Import patrol zones (巡区): code, name, station_code."),
        ("stations", "Import police stations (派出所) as points: code, name, town_code (else the town "
                     "they lie in)."),
        ("mediation-points", "Import mediation points (调解阵地): name, kind (bailitang/摆理堂, …), village_code "
                             "(else the village they lie in), contact, mediators, opening_hours.")):
    _area_import_command(_layer, _summary)


@import_group.command("incidents")
@_import_options
@click.option("--skip-outside", is_flag=True, help="leave out points in no grid (counted) instead of refusing")
@click.option("--timezone", default="Asia/Shanghai", show_default=True,
              help="time zone of times written without an offset")
@click.option("--bulk/--no-bulk", default=None,
              help="rebuild the incidents table's indexes after writing instead of writing through them "
                   "(faster for large files; locks the table until done). Default: when the file has at least "
                   "100,000 rows and a quarter of what the table holds")
@readable_errors
def import_incidents_command(file, layer, crs, from_gcj02, mappings, constants, metric_crs, quiet, skip_outside,
                             timezone, bulk):
    """Import incidents in bulk: lon/lat (CSV) or point geometry, category, subcategory, severity,
    occurred_at; optional reported_at, status, description, legal_class, enterprise_involved,
    client_id. Grids, villages and towns are assigned by the database."""
    from gridmap.db import session_scope
    from gridmap.services.importing_incidents import import_incidents

    options = _source_options(layer, crs, from_gcj02, mappings, constants, None, False, metric_crs, quiet)
    with session_scope() as session:
        report = import_incidents(session, file, options, skip_outside=skip_outside, timezone=timezone, bulk=bulk)
    for line in report.lines():
        click.echo(line)


@import_group.command("places")
@_import_options
@readable_errors
def import_places_command(file, layer, crs, from_gcj02, mappings, constants, metric_crs, quiet):
    """Import places that must be inspected (九小场所, 危爆物品, 寄递网点, enterprises): lon/lat (CSV)
    or point geometry, kind, name; optional ref, subkind, address, responsible_role,
    inspection_interval_days, registered_on. Grids, villages and towns are assigned by the database."""
    from gridmap.db import session_scope
    from gridmap.services.registries import import_places

    options = _source_options(layer, crs, from_gcj02, mappings, constants, None, False, metric_crs, quiet)
    with session_scope() as session:
        report = import_places(session, None, file, options)
    for line in report.lines():
        click.echo(line)


# --- risk and the county's numbers (issue 4) ------------------------------------------------

@main.command("risk")
@click.option("--from", "start", default=None, help="first day (YYYY-MM-DD, Beijing time; default: RISK_DEFAULT_DAYS "
                                                     "before --to)")
@click.option("--to", "end", default=None, help="first day NOT included (default: tomorrow, i.e. up to today)")
@click.option("--category", default=None, help="category codes, comma-separated (DSP,SEC,...; default: all)")
@click.option("--format", "fmt", required=True, help="csv, geojson, gpkg (grids, villages, towns layers) or xlsx")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="file to write")
@readable_errors
def risk_command(start, end, category, fmt, out):
    """Write the per-grid risk summary and Gi* hot spots for a period (county-wide)."""
    from gridmap.db import session_scope
    from gridmap.services import risk

    fmt = risk.parse_choice(fmt, "format", risk.FILE_FORMATS, "csv")
    settings = risk.RiskSettings.from_environment()
    period = risk.parse_period({"from": start, "to": end}, default_days=settings.default_days)
    categories = risk.parse_categories({"category": category})
    with session_scope() as session:
        result = risk.compute_risk(session, None, period, categories, settings)
        risk.write_risk_file(session, result, fmt, out)
    click.echo(f"wrote {out}: {len(result.grids)} grids, {period.label()}, "
               f"{int((result.grids['gi_bin'] > 0).sum())} hot spot grid(s)")


@main.command("report")
@click.option("--from", "start", default=None, help="first day (YYYY-MM-DD, Beijing time)")
@click.option("--to", "end", default=None, help="first day NOT included (default: up to today)")
@click.option("--distance", default=None, help="mediation-point reach in metres (default MEDIATION_GAP_DISTANCE_M)")
@click.option("--format", "fmt", required=True, help="json or xlsx")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="file to write")
@readable_errors
def report_command(start, end, distance, fmt, out):
    """Write the county's numbers ("三零", resolution levels, enterprise-related, mediation) for a period."""
    from gridmap.db import session_scope
    from gridmap.services import risk

    fmt = risk.parse_choice(fmt, "format", risk.REPORT_FORMATS, "json")
    settings = risk.RiskSettings.from_environment()
    period = risk.parse_period({"from": start, "to": end}, default_days=settings.default_days)
    reach = risk.parse_distance(distance, settings.mediation_distance_m)
    with session_scope() as session:
        report = risk.county_report(session, None, period, settings, reach)
        risk.write_report_file(report, fmt, out)
    click.echo(f"wrote {out}: {period.label()}")


@import_group.command("tracks")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--zone", required=True, help="patrol zone code (巡区), e.g. 410421102000-Z1")
@click.option("--officer", required=True, help="officer or unit the track belongs to, e.g. 闹店派出所巡逻一组")
@click.option("--format", "fmt", type=click.Choice(["gpx", "geojson", "csv"]), default=None,
              help="file format (default: from the file name)")
@readable_errors
def import_tracks_command(file, zone, officer, fmt):
    """Import one patrol GPS track (GPX, GeoJSON or CSV time,lon,lat; CSV times without an offset are
    Beijing time). Wrong fixes (outside the county, faster than a car, repeated times) are dropped and
    counted."""
    from gridmap.db import session_scope
    from gridmap.errors import ValidationError
    from gridmap.services.patrol import PatrolSettings, upload_track

    try:
        content = file.read_bytes()
    except OSError as err:
        raise ValidationError(f"cannot read {file}: {err.strerror or err}", "file") from None
    with session_scope() as session:
        result = upload_track(session, None, content, zone_code=zone, filename=file.name, fmt=fmt, officer=officer,
                              settings=PatrolSettings.from_environment())
        click.echo(result.message_zh())


@import_group.command("roads")
@_import_options
@click.option("--append", is_flag=True, help="add to the roads loaded before instead of replacing them")
@readable_errors
def import_roads_command(file, layer, crs, from_gcj02, mappings, constants, metric_crs, quiet, append):
    """Import the road network routes are planned on: lines from a GeoPackage, Shapefile or GeoJSON
    (e.g. an OSM extract), with optional name, road_class (or OSM highway/fclass) and speed_kmh (or
    maxspeed); roads without a speed get their class's usual speed. Replaces the stored roads."""
    from gridmap.db import session_scope
    from gridmap.services.patrol import PatrolSettings, import_roads

    options = _source_options(layer, crs, from_gcj02, mappings, constants, None, False, metric_crs, quiet)
    with session_scope() as session:
        report = import_roads(session, None, file, options, append=append, settings=PatrolSettings.from_environment())
    for line in report.lines():
        click.echo(line)


# --- server ---------------------------------------------------------------------------------

@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True)
def serve(host, port, workers):
    """Serve the app with gunicorn."""
    import os

    # gunicorn.conf.py: gthread workers with keep-alive (its docstring says why).
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--chdir", str(PROJECT_ROOT),
                               "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
                               "-w", str(workers), "-b", f"{host}:{port}", "--access-logfile", "-", "wsgi:app"])


def register_cli(app) -> None:
    """Also offer the commands under `flask --app wsgi ...`."""
    for command in (db, demo, users, import_group):
        app.cli.add_command(command)

if __name__ == "__main__":
    main()
