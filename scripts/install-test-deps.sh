#!/usr/bin/env bash
# Install what brook's end-to-end tests need, idempotently (anything already present
# is skipped): kcat, prometheus and Node.js from Debian, a Python venv at .venv-test/
# with the pinned clients from tests/python/requirements.txt, and kafkajs into
# tests/node/node_modules from tests/node/package-lock.json, and cargo-fuzz (for the
# fuzz step, scripts/fuzz.sh). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Use sudo only when not root and sudo exists (CI containers usually run as root).
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

apt_packages=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || apt_packages+=(kcat)
# librdkafka (rdkafka-sys) builds from source: it needs a C toolchain, make and zlib headers.
command -v cc >/dev/null 2>&1 || apt_packages+=(build-essential)
command -v make >/dev/null 2>&1 || apt_packages+=(make)
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
dpkg -s zlib1g-dev >/dev/null 2>&1 || apt_packages+=(zlib1g-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_packages+=(python3-venv)
# tests/tests/quotas.rs runs kafkajs (tests/node) with Node.js.
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
# tests/tests/metrics.rs scrapes brook with a real Prometheus server.
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)

if [ "${#apt_packages[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        log "apt-get install ${apt_packages[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
    else
        log "missing ${apt_packages[*]} and no apt-get; install them by hand" 
        exit 1
    fi
else
    log "system packages present"
fi

venv=.venv-test
req=tests/python/requirements.txt
stamp="$venv/.requirements.installed"
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
# Reinstall only when requirements.txt changed since the last successful install.
if [ ! -f "$stamp" ] || ! cmp -s "$req" "$stamp"; then
    log "pip install -r $req"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
else
    log "$venv up to date"
fi

# Node.js clients, pinned in tests/node/package.json (and package-lock.json).
node_stamp=tests/node/node_modules/.package.installed
if [ ! -f "$node_stamp" ] || ! cmp -s tests/node/package-lock.json "$node_stamp"; then
    log "npm ci (tests/node)"
    (cd tests/node && npm ci --no-audit --no-fund --silent)
    cp tests/node/package-lock.json "$node_stamp"
else
    log "tests/node/node_modules up to date"
fi

# scripts/fuzz.sh (the fuzz step of scripts/test.sh) runs cargo-fuzz on stable.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
else
    log "cargo-fuzz present"
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
    log "cargo-nextest not installed; tests will run with cargo test"
fi
