#!/usr/bin/env bash
# Builds the Cortex-M4F firmware, runs it under qemu-system-arm (mps2-an386, semihosting), runs
# the same tile on the host with unet-core, and compares: label maps identical (checksum and
# class counts), probabilities within 1e-4 (relative for sums). Installs what is missing.
# Exit 0 only when the outputs match.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v qemu-system-arm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1

cd "$here"
cargo build --release 2>&1 | tail -n 1
elf="$here/target/thumbv7em-none-eabihf/release/unet-firmware"
if command -v size >/dev/null; then
  echo "--- firmware sections (text = code + weights in flash; data+bss = RAM):"
  size -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss|uninit) ' || true
  size "$elf" | tail -n 1
fi
fw_out="$(timeout 300 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf")"
echo "--- firmware (qemu mps2-an386, Cortex-M4F):"
echo "$fw_out"

cd "$root"
host_out="$(cargo run -q --release -p unet-core --example tile_report -- \
  "$here/model/tiny-f16.safetensors" "$here/model/input-92x92.f32" 92)"
echo "--- host ($(uname -m)):"
echo "$host_out"

python3 - "$fw_out" "$host_out" <<'PY'
import sys
fw, host = (dict() for _ in range(2))
def parse(text, d):
    for line in text.strip().splitlines():
        parts = line.split()
        if parts[:1] == ["class"] and "prob_sum" in parts:
            c = int(parts[1]); vals = dict(zip(parts[2::2], map(float, parts[3::2])))
            for k, v in vals.items(): d[f"class{c}.{k}"] = v
        else:
            d[" ".join(parts[:-1]) if len(parts) > 1 else parts[0]] = parts[-1]
parse(sys.argv[1], fw); parse(sys.argv[2], host)
ok = True
for k in sorted((set(fw) | set(host)) - {"scratch_bytes", "stack_peak_bytes"}):  # target-specific figures
    a, b = fw.get(k), host.get(k)
    if isinstance(a, float) and isinstance(b, float):
        # f32 on both sides; the host may use FMA kernels: allow 1e-4 relative.
        good = abs(a - b) <= 1e-4 * max(1.0, abs(b))
    else:
        good = a == b
    if not good:
        ok = False
        print(f"MISMATCH {k}: firmware {a} host {b}")
print("firmware output matches the host" if ok else "firmware output DIFFERS from the host")
sys.exit(0 if ok else 1)
PY
