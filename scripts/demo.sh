#!/usr/bin/env bash
# The README's main-job command: set-up, then the demo (see scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/scripts/demo.js "$@"
