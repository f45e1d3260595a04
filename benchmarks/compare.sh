#!/usr/bin/env bash
# Compare two checkouts of durable on W1, W2 and W3, alternating them in one run.
#
#   bash benchmarks/compare.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS]
#
# Each checkout runs its own benchmarks.durable_app (fresh database, its own worker) with its
# own code first on the path; one BENCH-RESULT line per run, prefixed "round workload side".
# Make a checkout of the old revision with: git worktree add /tmp/old <revision>
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
server=${BENCH_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
for round in $(seq "$rounds"); do
  for workload in W1 W2 W3; do
    for side in old new; do
      dir=$old; [ "$side" = new ] && dir=$new
      line=$(cd "$dir" && PYTHONPATH=$dir python -m benchmarks.durable_app "$workload" \
        --server "$server" 2>&1 | grep BENCH-RESULT)
      echo "$round $workload $side $line"
    done
  done
done
