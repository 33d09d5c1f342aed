#!/bin/sh
# Installs libunet (shared + static libraries, unet.h, unet.hpp, pkg-config and CMake files).
#
#   cargo build --release -p unet-ffi
#   unet-ffi/install.sh PREFIX [LIBDIR]
#
# LIBDIR is where cargo put libunet.so / libunet.a (default: target/release of this
# workspace). Afterwards: `PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs unet`
# or `find_package(unet)` with CMAKE_PREFIX_PATH=PREFIX.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [LIBDIR]" >&2; exit 2; }
prefix=$1
libdir=${2:-$root/target/release}
version=$(sed -n 's/^#define UNET_VERSION_STRING "\(.*\)"$/\1/p' "$root/include/unet.h")
major=${version%%.*}
[ -n "$version" ] || { echo "install.sh: no UNET_VERSION_STRING in include/unet.h" >&2; exit 1; }

mkdir -p "$prefix/lib/pkgconfig" "$prefix/lib/cmake/unet" "$prefix/include"
cp "$libdir/libunet.so" "$libdir/libunet.a" "$prefix/lib/"
cp "$root/include/unet.h" "$root/include/unet.hpp" "$prefix/include/"
subst() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR@|$major|g" "$1" > "$2"; }
subst "$here/unet.pc.in" "$prefix/lib/pkgconfig/unet.pc"
subst "$here/cmake/unetConfig.cmake.in" "$prefix/lib/cmake/unet/unetConfig.cmake"
subst "$here/cmake/unetConfigVersion.cmake.in" "$prefix/lib/cmake/unet/unetConfigVersion.cmake"
echo "installed libunet $version into $prefix"
