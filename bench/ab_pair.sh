#!/usr/bin/env bash
# Paired A/B timing on a noisy 2-core machine: runs command A and command B at the same time,
# one pinned to each core, swapping the cores every round, and prints each round's times and
# the geometric mean of the B/A ratios. Both commands must print one number (a time) on stdout.
# Running them together exposes both to the same slow or fast periods of the machine; swapping
# the cores cancels a difference between the cores. Good to a few percent for single layers;
# whole tiles (which compete for memory bandwidth) are less reliable.
#
#   bench/ab_pair.sh ROUNDS 'CMD_A' 'CMD_B'
#
# Example: one 3×3 layer of a base-16 tile (median of 5 runs each), two builds:
#   layer() { THREADS=1 LAYER=$2 $1 base16 5 | sed -n 3p | awk '{print $4}'; }
#   export -f layer
#   bench/ab_pair.sh 6 'layer ./old/bench_layers 1' 'layer ./new/bench_layers 1'
set -euo pipefail
rounds=$1
a=$2
b=$3
out=$(mktemp)
trap 'rm -f "$out" "$out.a" "$out.b"' EXIT
for i in $(seq "$rounds"); do
  if [ $((i % 2)) = 1 ]; then ca=0; cb=1; else ca=1; cb=0; fi
  taskset -c "$ca" bash -c "$a" > "$out.a" &
  taskset -c "$cb" bash -c "$b" > "$out.b" &
  wait
  ta=$(tail -n 1 "$out.a")
  tb=$(tail -n 1 "$out.b")
  echo "$ta $tb" | awk '{printf "A %9.2f  B %9.2f  B/A %.3f\n", $1, $2, $2 / $1}' | tee -a "$out"
done
awk '{s += log($6); n++} END {printf "geometric mean B/A %.3f over %d rounds\n", exp(s / n), n}' "$out"
