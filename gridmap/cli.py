"""The `gridmap` command: database, demo county, users, imports, server."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from gridmap.services.errors import GridmapError

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
              default=PROJECT_ROOT.parent / "shared" / "geodata" / "baofeng", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=PROJECT_ROOT / "geodata" / "baofeng", show_default=True)
@click.option("--seed", type=int, default=2023, show_default=True)
def demo_build(source, out, seed):
    """Regenerate geodata/baofeng/ from the real outline, names and codes."""
    from gridmap.demo.generator import build_demo

    counts = build_demo(source, out, seed=seed)
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


@registries.command("import-places")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", default=None, help="CRS of CSV coordinates (default WGS84; gcj02 or EPSG:xxxx)")
@click.option("--layer", default=None, help="layer of a GeoPackage")
@readable_errors
def registries_import_places(file, crs, layer):
    """Import places from FILE (CSV with lon/lat columns, GeoJSON or GeoPackage); all rows or none."""
    from tqdm import tqdm

    from gridmap.db import session_scope
    from gridmap.services.registries import import_places

    with session_scope() as session, tqdm(desc="checking rows", unit="row", disable=None) as bar:
        report = import_places(session, None, file, crs=crs, layer=layer, progress=bar.update)
    click.echo(f"imported {report.imported} of {report.rows} rows: "
               + ", ".join(f"{kind} {n}" for kind, n in sorted(report.by_kind.items())))


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
    from gridmap.services.errors import ValidationError
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


# --- registries (issue 7) -------------------------------------------------------------------

@main.group()
def registries():
    """Inspected places, village staff, bulletins (重点场所、一村一警一律师、定期通报)."""


@registries.command("import-places")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", default=None, help="CRS of CSV coordinates (default WGS84; gcj02 or EPSG:xxxx)")
@click.option("--layer", default=None, help="layer of a GeoPackage")
@readable_errors
def registries_import_places(file, crs, layer):
    """Import places from FILE (CSV with lon/lat columns, GeoJSON or GeoPackage); all rows or none."""
    from tqdm import tqdm

    from gridmap.db import session_scope
    from gridmap.services.registries import import_places

    with session_scope() as session, tqdm(desc="checking rows", unit="row", disable=None) as bar:
        report = import_places(session, None, file, crs=crs, layer=layer, progress=bar.update)
    click.echo(f"imported {report.imported} of {report.rows} rows: "
               + ", ".join(f"{kind} {n}" for kind, n in sorted(report.by_kind.items())))


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
    from gridmap.services.errors import ValidationError
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


# --- server ---------------------------------------------------------------------------------

@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True)
def serve(host, port, workers):
    """Serve the app with gunicorn."""
    import os

    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--chdir", str(PROJECT_ROOT),
                               "-w", str(workers), "-b", f"{host}:{port}", "--access-logfile", "-", "wsgi:app"])


def register_cli(app) -> None:
    """Also offer the commands under `flask --app wsgi ...`."""
    for command in (db, demo, users):
        app.cli.add_command(command)

if __name__ == "__main__":
    main()
