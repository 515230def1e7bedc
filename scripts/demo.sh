#!/usr/bin/env bash
# The demo, set-up included: bash scripts/demo.sh
set -euo pipefail
source "$(dirname "$0")/setup.sh"
exec .venv/bin/hspkcs11-util demo "$@"
