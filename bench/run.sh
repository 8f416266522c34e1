#!/usr/bin/env bash
# Runs one benchmark after the set-up:
#   bench/run.sh raft [--seconds 4] [--rounds 4] [--trials 20] [--steady-seconds 600]
#   bench/run.sh raft-cpu [--trials 6] [--seconds 5] [--clients 1]
#   bench/run.sh runtime [--count 200] [--rounds 3] [--no-options]
#   bench/run.sh containers [--count 100] [--parallel 4] [--network bridge|none]
#   bench/run.sh controlapi [--rounds 4] [--seconds 8] [--warm-up-seconds 3] [--via-follower] [--steady-seconds 600] [--report-every 60] [--snapshot-interval N] [--kind secret|config]
#   bench/run.sh scheduler [--nodes 5000] [--tasks 10000] [--managers 1|3] [--phase pending|services|both] [--trials 3]
#   bench/run.sh orchestration [--replicas 100] [--trials 3] [--skip-docker] [--skip-ours] [--lost-worker-trials 5] [--logs DIR]
#   bench/run.sh network [--seconds 5] [--exchanges 2000] [--trials 2] [--reach-trials 20] [--skip-docker] [--skip-ours]
#   bench/run.sh discovery [--queries 2000] [--seconds 3] [--rounds 3] [--mesh-rounds 2] [--mesh-seconds 4] [--trials 20] [--skip-docker]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: bench/run.sh NAME [ARGS...] (NAME: raft, runtime, controlapi)}
shift
bash scripts/setup.sh >/dev/null
exec node "dist/bench/$name.js" "$@"
