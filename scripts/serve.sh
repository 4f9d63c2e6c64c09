#!/usr/bin/env bash
# Set up everything, load the demo county and serve it at http://127.0.0.1:5000.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/setup.sh"
.venv/bin/gridmap demo load
exec .venv/bin/gridmap serve --host 127.0.0.1 --port "${PORT:-5000}"
