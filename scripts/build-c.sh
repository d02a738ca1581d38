#!/usr/bin/env bash
# Builds libqcic (libqcic.so and libqcic.a) and installs both with
# include/qcic.h and a pkg-config file:
#
#   scripts/build-c.sh [PREFIX]        # default PREFIX: /usr/local
#
#   PREFIX/lib/libqcic.so.VERSION      the shared library, SONAME libqcic.so.0.1
#   PREFIX/lib/libqcic.so.0.1          -> libqcic.so.VERSION (what programs load)
#   PREFIX/lib/libqcic.so              -> libqcic.so.0.1 (what -lqcic links)
#   PREFIX/lib/libqcic.a               the static library
#   PREFIX/include/qcic.h
#   PREFIX/lib/pkgconfig/qcic.pc       relocatable: finds PREFIX from its own place
#   PREFIX/lib/pkgconfig/qcic-static.pc  the same for linking libqcic.a
#
# Environment: PROFILE=debug installs a debug build; QCIC_NO_BUILD=1 installs
# what is already built, from QCIC_LIB_DIR (default target/PROFILE): the
# tests install the libraries their own cargo run made.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath -m "${1:-/usr/local}")
profile=${PROFILE:-release}
target=${QCIC_LIB_DIR:-${CARGO_TARGET_DIR:-target}/$profile}

if [ -z "${QCIC_NO_BUILD:-}" ]; then
    if [ "$profile" = release ]; then
        cargo build --locked --release -p qcic-ffi
    else
        cargo build --locked -p qcic-ffi
    fi
fi
version=$(sed -n 's/^#define QCIC_VERSION "\(.*\)"$/\1/p' include/qcic.h)
# The SONAME the linker wrote (qcic-ffi/build.rs chooses it).
soname=$(readelf -d "$target/libqcic.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
case "$soname" in
libqcic.so.*) ;;
*)
    echo "build-c.sh: $target/libqcic.so has no SONAME libqcic.so.N (got '$soname')" >&2
    exit 1
    ;;
esac

install -d "$prefix/lib/pkgconfig" "$prefix/include"
rm -f "$prefix/lib/libqcic.so" "$prefix/lib/$soname"
install -m 0755 "$target/libqcic.so" "$prefix/lib/libqcic.so.$version"
ln -s "libqcic.so.$version" "$prefix/lib/$soname"
ln -s "$soname" "$prefix/lib/libqcic.so"
install -m 0644 "$target/libqcic.a" "$prefix/lib/libqcic.a"
install -m 0644 include/qcic.h "$prefix/include/qcic.h"
for pc in qcic qcic-static; do
    sed -e "s|@VERSION@|$version|" "qcic-ffi/$pc.pc.in" > "$prefix/lib/pkgconfig/$pc.pc"
done
echo "installed libqcic $version ($soname) into $prefix" >&2
