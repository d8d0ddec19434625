#!/bin/bash
# End of a session: stop the runs (each writes a checkpoint at the step it reached), then copy each run's
# slim record and newest checkpoint beside this script, to commit, so that a machine swap costs at most
# one session (run_queues.sh resumes from these copies where RUNS has lost a run; a finished run's
# model.keras and classifier.keras are copied too), and write the report of
# the runs so far into progress/ (Figure 6 up to the steps reached; unfinished runs are never compared).
#   RUNS=<runs folder> PY=<python> ./save_runs.sh   (run from the repository root)
set -eu
SAVED=$(cd "$(dirname "$0")" && pwd)
pkill -TERM -f "recipes.cifar10 --depth" || true
while pgrep -f "recipes.cifar10 --depth" > /dev/null; do sleep 2; done
for dir in "$RUNS"/*/; do
  name=$(basename "$dir")
  [ -d "$dir/checkpoints" ] || continue
  "${PY:-python}" -m tools.slim_run --src="$dir" --dst="$SAVED/$name" --with_checkpoint
  if [ -f "$dir/stats.json" ]; then  # Finished: its nets too (model.keras for ship_weights and Figure 7,
    for f in model.keras classifier.keras; do  # classifier.keras to ship), which exist only on this machine.
      if [ -f "$dir/$f" ]; then cp "$dir/$f" "$SAVED/$name/$f"; fi
    done
  fi
done
"${PY:-python}" -m tools.report --runs="$(realpath --relative-to="$PWD" "$SAVED")" --out="$SAVED/progress"
