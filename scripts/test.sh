#!/usr/bin/env bash
# Set up everything (including Debian's Chromium for browser tests) and run the whole test suite.
# Extra arguments go to pytest. Skipped database or browser tests count as failures.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WANT_BROWSER=1 source "$ROOT/scripts/setup.sh"
export CI=${CI:-1}
exec .venv/bin/python -m pytest "$@"
