#!/usr/bin/env bash
# The whole test suite: set-up (packages, builds), lint, typecheck, then every test with vitest.
# Ends with one line "N passed, N failed[, N skipped]" from vitest's results; exits non-zero if
# any step failed. Extra arguments go to vitest (e.g. a file filter).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

status=0
echo "== lint"
npx --no-install eslint --max-warnings 0 . || { echo "lint: FAILED"; status=1; }
echo "== typecheck"
npx --no-install tsc -p tsconfig.json --noEmit || { echo "typecheck: FAILED"; status=1; }

echo "== tests"
results=$(mktemp /tmp/tswarm-vitest-XXXXXX.json)
trap 'rm -f "$results"' EXIT
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=1

if [ -s "$results" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    let line = `${r.numPassedTests} passed, ${r.numFailedTests} failed`;
    if (skipped > 0) line += `, ${skipped} skipped`;
    if (r.numFailedTestSuites > 0 && r.numFailedTests === 0) line = `${r.numPassedTests} passed, ${r.numFailedTestSuites} failed`;
    console.log(line);
  ' "$results"
else
  echo "0 passed, 1 failed"
  status=1
fi
exit $status
