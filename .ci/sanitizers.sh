#!/usr/bin/env bash
# libunet under sanitizers. The C harness (tests/c, every function and error of the C API) is
# built with `gcc -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer`
# and run with LeakSanitizer (test `c_harness_under_asan_ubsan` in unet-ffi/tests/c_harness.rs):
#   1. against the normal libunet.a and libunet.so (the C side sanitized; `cargo test` does this
#      too, but skips when the sanitizer runtimes are missing, which is an error here);
#   2. against a libunet.a whose Rust code, std included, is ASan-instrumented: nightly rustc
#      `-Zsanitizer=address` with `-Zbuild-std` (own target dir `target/asan`).
# About 4 CPU-minutes (mostly building std with ASan), the runs themselves take seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

probe="$(mktemp -d)"
echo 'int main(void) { return 0; }' >"$probe/p.c"
if ! gcc -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null
fi
gcc -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" && "$probe/p"
rm -rf "$probe"
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
rustup component add rust-src --toolchain nightly 2>&1 | tail -n 1

export UNET_REQUIRE_SANITIZERS=1
echo "--- C side sanitized, normal libunet (static and shared)"
cargo test -p unet-ffi --test c_harness c_harness_under_asan_ubsan

echo "--- libunet built with -Zsanitizer=address (nightly, -Zbuild-std)"
target="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" \
  cargo +nightly build -Zbuild-std --target "$target" -p unet-ffi --target-dir target/asan
UNET_ASAN_LIBUNET="$PWD/target/asan/$target/debug/libunet.a" \
  cargo test -p unet-ffi --test c_harness c_harness_under_asan_ubsan
echo "sanitizers: the C harness passed under ASan/UBSan (C side) and with an ASan libunet"
