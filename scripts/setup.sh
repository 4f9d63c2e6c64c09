#!/usr/bin/env bash
# Set-up shared by serve.sh and test.sh: system packages, PostgreSQL+PostGIS, Python and front-end
# dependencies, translations, database schema. Safe to run again: each step skips what is done.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WANT_BROWSER=${WANT_BROWSER:-0}
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
need() { dpkg -s "$1" >/dev/null 2>&1 || apt_missing+=("$1"); }
command -v python3 >/dev/null || need python3
python3 -c 'import venv, ensurepip' 2>/dev/null || need python3-venv
command -v npm >/dev/null || need npm
command -v pg_isready >/dev/null || need postgresql-client
if [ -z "${GRIDMAP_DATABASE_URL:-}" ]; then
  command -v pg_ctlcluster >/dev/null || need postgresql
fi
[ "$WANT_BROWSER" = 1 ] && { [ -x /usr/bin/chromium ] || need chromium; }
[ "$WANT_BROWSER" = 1 ] && { command -v ogr2ogr >/dev/null || need gdal-bin; }
if [ ${#apt_missing[@]} -gt 0 ]; then
  log "installing ${apt_missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_missing[@]}"
fi

# PostgreSQL with PostGIS: use GRIDMAP_DATABASE_URL as given, else a local server on 127.0.0.1:5432.
if [ -z "${GRIDMAP_DATABASE_URL:-}" ]; then
  export GRIDMAP_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/gridmap"
  PGVER=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! ls /usr/share/postgresql/"$PGVER"/extension/postgis.control >/dev/null 2>&1; then
    log "installing PostGIS for PostgreSQL $PGVER"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "postgresql-$PGVER-postgis-3"
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if pg_lsclusters -h 2>/dev/null | grep -q .; then
      cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
      log "starting PostgreSQL cluster $cluster"
      as_root pg_ctlcluster --skip-systemctl-redirect $cluster start
    else
      log "creating PostgreSQL cluster $PGVER/main (trust on localhost)"
      as_root pg_createcluster "$PGVER" main --port 5432 --start -- --auth-local=trust --auth-host=trust
    fi
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi

# Python environment, reinstalled only when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat .venv/.gridmap-installed 2>/dev/null)" != "$stamp" ]; then
  log "installing Python packages"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  echo "$stamp" > .venv/.gridmap-installed
fi

# Front-end packages from the npm registry, served by the app under /vendor/.
stamp=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat node_modules/.gridmap-installed 2>/dev/null)" != "$stamp" ]; then
  log "installing front-end packages"
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  echo "$stamp" > node_modules/.gridmap-installed
fi

.venv/bin/pybabel compile -q -d gridmap/translations 2>/dev/null || .venv/bin/pybabel compile -d gridmap/translations

log "migrating the database"
.venv/bin/gridmap db upgrade
