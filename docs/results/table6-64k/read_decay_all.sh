#!/bin/bash
# Once ResNet-20 or ResNet-110 with the decay on every parameter (resnet<depth>-decayall-seed0, queued
# 2026-12-04) has finished and save_runs.sh has copied it here with its nets: read it by the rule README.md
# fixed before either started (2026-12-04 12:50), against the kernels-only net of its depth that the package
# ships now (its test error: keras_resnet/weights/cifar10.json), and ship it or not:
#   0.5 points or more below: the gain holds at that depth, its net is shipped;
#   within 0.5 points: the decay does not matter there, its net is shipped (the default recipe's weights);
#   0.5 points or more above: the default is reopened, nothing is shipped.
# It first compares the two nets image by image (tools.evaluate --compare, McNemar's test) and prints the verdict.
#   DATA=<TFDS folder with cifar10> PY=<python> docs/results/table6-64k/read_decay_all.sh <20|110>
#   (from the repository root; HERE=<folder of the runs> and WEIGHTS_DIR=<folder> to try it elsewhere)
set -eu
HERE=${HERE:-docs/results/table6-64k}
WEIGHTS_DIR=${WEIGHTS_DIR:-keras_resnet/weights}
PY=${PY:-python}
depth=${1:-}
case "$depth" in
  20) kernels_net=docs/results/cifar10-resnet20-64k/resnet20-cifar10.keras ;;
  110) kernels_net=$HERE/resnet110-seed0/classifier.keras ;;
  *) echo "error: depth ${depth:-(none)}: give 20 or 110, the depths with a decay-all run queued" >&2; exit 2 ;;
esac
[ -n "${DATA:-}" ] || { echo "error: set DATA to the TFDS folder holding the prepared cifar10" >&2; exit 2; }
run=$HERE/resnet$depth-decayall-seed0
for file in stats.json model.keras classifier.keras; do
  [ -f "$run/$file" ] || {
    echo "error: $run/$file is missing: that run has not finished, or save_runs.sh has not copied it yet" >&2
    exit 1; }
done
all=$(sed -n 's/.*"test_error": *\([0-9.]*\).*/\1/p' "$run/stats.json" | head -1)
[ -n "$all" ] || { echo "error: no test_error in $run/stats.json" >&2; exit 1; }
# The shipped net of this depth: its entry in the manifest (json.dump with indent: one key per line).
shipped=$(awk -v file="\"resnet$depth-cifar10.weights.h5\"" '
  /"file":/ { mine = index($0, file) > 0 }
  mine && /"test_error":/ { gsub(/[^0-9.]/, "", $2); error = $2 }
  mine && /"weight_decay_on":/ { gsub(/[",]/, "", $2); decay = $2 }
  END { if (error != "") print error, decay }' "$WEIGHTS_DIR/cifar10.json")
read -r kernels decay <<< "$shipped" || true
[ -n "${kernels:-}" ] || { echo "error: no ResNet-$depth in $WEIGHTS_DIR/cifar10.json to read the run against" >&2; exit 1; }
[ "$decay" = kernels ] || {
  echo "error: the shipped ResNet-$depth decays '$decay', not the kernels: read already (nothing to do)" >&2; exit 1; }
"$PY" -m tools.evaluate --model="$run/classifier.keras" --compare="$kernels_net" --data_dir="$DATA"
cents() { awk -v x="$1" 'BEGIN { print int(x * 100 + 0.5) }'; }
difference=$(( $(cents "$all") - $(cents "$kernels") ))
if [ "$difference" -le -50 ]; then
  echo "ResNet-$depth, decay on every parameter: $all % against $kernels % with the kernels alone, 0.5 points or" \
       "more below: the gain holds at this depth; its net is shipped as cifar_resnet($depth, weights=\"cifar10\")"
elif [ "$difference" -lt 50 ]; then
  echo "ResNet-$depth, decay on every parameter: $all % against $kernels % with the kernels alone, within 0.5" \
       "points: the decay does not matter at this depth; its net is shipped, the default recipe's weights"
else
  echo "ResNet-$depth, decay on every parameter: $all % against $kernels % with the kernels alone, 0.5 points or" \
       "more above: the default weight_decay_on=\"all\" is reopened (repeat the ResNet-56 pair with --seed=1);" \
       "the kernels-only net stays shipped"
  exit 0
fi
"$PY" -m tools.ship_weights --model_dir="$run" --data_dir="$DATA" --weights_dir="$WEIGHTS_DIR"
