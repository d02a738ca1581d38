#!/usr/bin/env bash
# Builds libqcic (libqcic.so and libqcic.a) and installs both with
# include/qcic.h and a pkg-config file:
#
#   scripts/build-c.sh [PREFIX]        # default PREFIX: /usr/local
#
#   PREFIX/lib/libqcic.so  PREFIX/lib/libqcic.a
#   PREFIX/include/qcic.h  PREFIX/lib/pkgconfig/qcic.pc
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

install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libqcic.so" "$prefix/lib/libqcic.so"
install -m 0644 "$target/libqcic.a" "$prefix/lib/libqcic.a"
install -m 0644 include/qcic.h "$prefix/include/qcic.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" qcic-ffi/qcic.pc.in \
    > "$prefix/lib/pkgconfig/qcic.pc"
echo "installed libqcic $version into $prefix" >&2
