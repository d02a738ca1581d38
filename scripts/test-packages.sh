#!/usr/bin/env bash
# Tests what scripts/package.sh put in dist/, as a user would meet it:
#
# - the Debian packages: dpkg -i, both --version, the shipped config checked,
#   the unit verified by systemd-analyze, the watcher run as the service
#   runs it (user qcic, /var/lib/qcic, /run/qcic) and heard from by the
#   packaged `qcic`, then dpkg -r (the config stays) and a purge;
# - the wheel: auditwheel show (a manylinux tag, no external libzmq), then
#   installed into a fresh venv and sending over CURVE to the packaged
#   watcher with the machine's own libzmq hidden;
# - the C tarball: unpacked to a fresh prefix and moved, the example built
#   with pkg-config shared and static, both runs heard by the watcher;
# - every artefact's version is the workspace's.
#
# It installs and removes the qcic-monitor and qcic packages: run it on a
# test machine (scripts/test.sh does, as root, as CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${QCIC_VENV:-.venv}
version=$(sed -n 's/^#define QCIC_VERSION "\(.*\)"$/\1/p' include/qcic.h)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
fail() { echo "test-packages: $*" >&2; exit 1; }
step() { echo "== test-packages: $*" >&2; }

deb_monitor=dist/qcic-monitor_${version}_amd64.deb
deb_qcic=dist/qcic_${version}_amd64.deb
tarball=dist/libqcic-$version-linux-x86_64.tar.gz
wheels=(dist/qcic-"$version"-cp39-abi3-manylinux_*_x86_64.whl)
for f in "$deb_monitor" "$deb_qcic" "$tarball" "${wheels[0]}"; do
    [ -f "$f" ] || fail "$f missing (run scripts/package.sh; dist/ has: $(ls dist 2>/dev/null | tr '\n' ' '))"
done
wheel=${wheels[0]}

tmp=$(mktemp -d)
monitor_pid=""
cleanup() {
    [ -z "$monitor_pid" ] || kill "$monitor_pid" 2>/dev/null || true
    $SUDO dpkg --purge qcic-monitor qcic >/dev/null 2>&1 || true
    $SUDO rm -rf /run/qcic
    rm -rf "$tmp"
}
trap cleanup EXIT

# A TCP port nobody listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits until the watcher answers `status` on its control socket.
wait_status() {
    for _ in $(seq 100); do
        if "$@" status >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    "$@" status || true
    fail "the watcher never answered status ($*)"
}
# Waits until `status` (run by "$@") shows each job in $jobs up; else
# shows the last status and returns 1.
wait_up() {
    local jobs=$1
    shift
    for _ in $(seq 100); do
        "$@" status > "$tmp/status" 2>&1 || true
        local all=true
        for job in $jobs; do
            grep -Eq "^ *$job +up" "$tmp/status" || all=false
        done
        $all && return 0
        sleep 0.1
    done
    cat "$tmp/status" >&2
    echo "test-packages: status never showed $jobs up ($*)" >&2
    return 1
}

step "versions ($version)"
for deb in "$deb_monitor" "$deb_qcic"; do
    got=$(dpkg-deb -f "$deb" Version)
    [ "$got" = "$version" ] || fail "$deb has Version $got"
done
dpkg-deb -f "$deb_monitor" Depends | grep -q 'libzmq5' || fail "$deb_monitor does not depend on libzmq5"
dpkg-deb --ctrl-tarfile "$deb_monitor" | tar -xO ./conffiles | grep -qx /etc/qcic/monitor.toml ||
    fail "/etc/qcic/monitor.toml is not a conffile"
for pair in "$deb_monitor:qcic-monitor:qcic-monitor" "$deb_qcic:qcic-sdk:qcic"; do
    IFS=: read -r deb crate doc <<< "$pair"
    # The synopsis is the crate's description, whole (a long one is cut).
    want=$(sed -n 's/^description = "\(.*\)"$/\1/p' "$crate/Cargo.toml")
    [ "$(dpkg-deb -f "$deb" Description | head -1)" = "$want" ] ||
        fail "$deb: the synopsis is not \"$want\" (over 80 characters?)"
    dpkg-deb -x "$deb" "$tmp/unpacked-$doc"
    grep -qx 'Files: \*' "$tmp/unpacked-$doc/usr/share/doc/$doc/copyright" || fail "$deb: copyright has no Files paragraph"
    [ "$(wc -l < "$tmp/unpacked-$doc/usr/share/doc/$doc/THIRD-PARTY")" -gt 20 ] || fail "$deb: no THIRD-PARTY list"
done

step "dpkg -i"
$SUDO dpkg -i "$deb_monitor" "$deb_qcic" >/dev/null
[ "$(qcic-monitor --version)" = "qcic-monitor $version" ] || fail "qcic-monitor --version: $(qcic-monitor --version)"
[ "$(qcic --version)" = "qcic $version" ] || fail "qcic --version: $(qcic --version)"
[ "$(command -v qcic-monitor)" = /usr/bin/qcic-monitor ] || fail "qcic-monitor is $(command -v qcic-monitor)"
getent passwd qcic >/dev/null || fail "no qcic user"
[ "$(stat -c %U:%a /var/lib/qcic)" = qcic:750 ] || fail "/var/lib/qcic is $(stat -c %U:%a /var/lib/qcic)"
# As the service's ExecStartPre does: user qcic must be able to read it all.
$SUDO runuser -u qcic -- qcic-monitor --config /etc/qcic/monitor.toml --check-config >/dev/null
# Installed again (dpkg's upgrade path): the user and state directory are
# kept, with a local change to the directory's mode.
$SUDO chmod 0700 /var/lib/qcic
$SUDO dpkg -i "$deb_monitor" >/dev/null
[ "$(stat -c %U:%a /var/lib/qcic)" = qcic:700 ] || fail "a reinstall changed /var/lib/qcic to $(stat -c %U:%a /var/lib/qcic)"
$SUDO chmod 0750 /var/lib/qcic
unit=/usr/lib/systemd/system/qcic-monitor.service
[ -f "$unit" ] || fail "$unit missing"
# verify: the unit's syntax, its user and directories, and that every
# Exec* program exists.
systemd-analyze verify "$unit"

step "the watcher as the service runs it (user qcic, shipped config)"
# What systemd's RuntimeDirectory= and StateDirectory= do at start.
$SUDO install -d -o qcic -g qcic -m 0700 /run/qcic
$SUDO runuser -u qcic -- /usr/bin/qcic-monitor --config /etc/qcic/monitor.toml 2> "$tmp/service.log" &
monitor_pid=$!
wait_status $SUDO qcic-monitor --config /etc/qcic/monitor.toml
QCIC_ENDPOINTS=tcp://127.0.0.1:7700 qcic send --job example success
wait_up example $SUDO qcic-monitor --config /etc/qcic/monitor.toml || { cat "$tmp/service.log" >&2; fail "the packaged watcher did not hear qcic"; }
[ "$(stat -c %U /var/lib/qcic/monitor.db)" = qcic ] || fail "the state database is not the qcic user's"
kill "$monitor_pid"
wait "$monitor_pid" || true
monitor_pid=""

step "the wheel: auditwheel show"
"$venv/bin/auditwheel" show "$wheel" > "$tmp/show" 2>&1
grep -q 'platform tag: "manylinux_2_[0-9]*_x86_64"' "$tmp/show" || { cat "$tmp/show" >&2; fail "auditwheel show: no manylinux tag"; }
if grep -q 'external shared libraries' "$tmp/show"; then cat "$tmp/show" >&2; fail "the wheel needs external libraries"; fi
python3 -m zipfile -l "$wheel" | grep -q 'qcic.libs/libzmq-' || fail "libzmq is not inside the wheel"
python3 -m zipfile -l "$wheel" | grep -q 'qcic.libs/libsodium-' || fail "libsodium (CURVE) is not inside the wheel"
for license in LICENSE THIRD-PARTY libzmq5.copyright libsodium23.copyright; do
    python3 -m zipfile -l "$wheel" | grep -q "qcic-$version.dist-info/licenses/$license" || fail "the wheel has no licenses/$license"
done

step "the C tarball: unpacked to a fresh prefix"
mkdir "$tmp/unpack" "$tmp/moved"
tar -C "$tmp/unpack" -xzf "$tarball"
# Moved after unpacking: nothing in it may name where it was unpacked.
mv "$tmp/unpack/libqcic-$version-linux-x86_64" "$tmp/moved/prefix"
prefix=$tmp/moved/prefix
soname=$(readelf -d "$prefix/lib/libqcic.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ -n "$soname" ] || fail "libqcic.so.$version has no SONAME"
[ "$(readlink "$prefix/lib/$soname")" = "libqcic.so.$version" ] || fail "lib/$soname is not a link to libqcic.so.$version"
[ "$(readlink "$prefix/lib/libqcic.so")" = "$soname" ] || fail "lib/libqcic.so is not a link to $soname"
[ -f "$prefix/lib/libqcic.a" ] && [ -f "$prefix/include/qcic.h" ] || fail "libqcic.a or qcic.h missing"
# Only the tarball's .pc files are visible: building needs no libzmq.pc
# (libzmq3-dev), only libzmq5's libzmq.so.5.
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion qcic)" = "$version" ] || fail "qcic.pc says version $(pkg-config --modversion qcic)"
for pc in qcic qcic-static; do
    if pkg-config --libs --static "$pc" | grep -qw -- -lzmq; then fail "$pc.pc links -lzmq, which needs libzmq3-dev"; fi
done
example=$prefix/share/doc/libqcic/examples/nightly_job.c
# shellcheck disable=SC2046 # pkg-config's flags are meant to be split
cc -std=c11 -Wall -Wextra -Werror "$example" $(pkg-config --cflags --libs qcic) -Wl,-rpath,"$prefix/lib" -o "$tmp/job_shared"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$example" $(pkg-config --cflags --libs qcic-static) -o "$tmp/job_static"
ldd "$tmp/job_shared" | grep -q "$soname => $prefix/lib/$soname" || { ldd "$tmp/job_shared" >&2; fail "the shared build does not load $prefix/lib/$soname"; }
if ldd "$tmp/job_static" | grep -q libqcic; then fail "the static build loads libqcic"; fi

step "a fresh venv with the wheel, and both C builds, send over CURVE to the packaged watcher"
qcic-monitor keygen --out "$tmp/watcher" >/dev/null
port=$(free_port)
cat > "$tmp/curve.toml" <<TOML
[monitor]
id = "package-test"
listen = ["tcp://127.0.0.1:$port"]
state = "$tmp/curve.db"
control = "$tmp/curve.sock"

[curve]
secret_key_file = "$tmp/watcher.key"

[[job]]
name = "from-the-wheel"
every = "1h"

[[job]]
name = "nightly-etl"
cron = "30 2 * * *"
timezone = "Europe/London"
TOML
qcic-monitor --config "$tmp/curve.toml" 2> "$tmp/curve.log" &
monitor_pid=$!
wait_status qcic-monitor --config "$tmp/curve.toml"
server_key=$(sed -n 's/^public-key = "\(.*\)"$/\1/p' "$tmp/watcher.pub")
[ ${#server_key} -eq 40 ] || fail "no Z85 key in $tmp/watcher.pub"
# The example never fails its job over qcic (it says why on stderr): the
# watcher's status below is what shows both runs were heard.
QCIC_ENDPOINTS=tcp://127.0.0.1:$port QCIC_SERVER_KEY=$server_key "$tmp/job_shared"
QCIC_ENDPOINTS=tcp://127.0.0.1:$port QCIC_SERVER_KEY=$server_key "$tmp/job_static"

cat > "$tmp/send.py" <<PY
import sys, qcic
assert qcic.__version__ == "$version", qcic.__version__
client = qcic.Client(["tcp://127.0.0.1:$port"], server_key="$server_key")
run = client.start("from-the-wheel")
assert run.success(), "queue refused"
assert client.close(10.0), "not delivered"
import qcic._qcic as native
print(native.__file__)
PY
# Every CPython from 3.9 (the wheel's floor) the machine has: python3, and
# pyenv's if present.
pythons=(python3)
for py in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3; do
    [ -x "$py" ] && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null && pythons+=("$py")
done
# The machine's libzmq hidden (a file that is no library): the module can
# only be using the copy inside the wheel.
syszmq=$(realpath /usr/lib/x86_64-linux-gnu/libzmq.so.5)
for i in "${!pythons[@]}"; do
    py=${pythons[$i]}
    "$py" -m venv "$tmp/venv$i"
    "$tmp/venv$i/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
    $SUDO unshare --mount sh -c "mount --bind /dev/null '$syszmq' && exec '$tmp/venv$i/bin/python' '$tmp/send.py'" > "$tmp/native" ||
        fail "the wheel did not send from $("$py" --version) ($py)"
    ldd "$(cat "$tmp/native")" | grep libzmq | grep -q "$tmp/venv$i" || { ldd "$(cat "$tmp/native")" >&2; fail "the module does not load the wheel's libzmq"; }
    echo "test-packages: the wheel sent over CURVE from $("$py" --version)" >&2
done

wait_up "from-the-wheel nightly-etl" qcic-monitor --config "$tmp/curve.toml" ||
    { cat "$tmp/curve.log" >&2; fail "the wheel's and the C builds' runs were not all heard"; }

step "dpkg -r keeps the config; a purge removes it"
kill "$monitor_pid"
wait "$monitor_pid" || true
monitor_pid=""
$SUDO dpkg -r qcic-monitor qcic >/dev/null
[ ! -e /usr/bin/qcic-monitor ] && [ ! -e /usr/bin/qcic ] || fail "dpkg -r left the binaries"
[ -f /etc/qcic/monitor.toml ] || fail "dpkg -r removed /etc/qcic/monitor.toml"
$SUDO dpkg --purge qcic-monitor >/dev/null
[ ! -e /etc/qcic/monitor.toml ] || fail "dpkg --purge left /etc/qcic/monitor.toml"
echo "test-packages: every package installed and worked ($version)" >&2
