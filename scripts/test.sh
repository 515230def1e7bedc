#!/usr/bin/env bash
# The whole test suite, set-up included: bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "$0")/setup.sh"
# pytest exits 5 when it collected no test: that is a failure here too.
exec .venv/bin/python -m pytest "$@"
