#!/bin/sh
# Installs every Debian package and npm module orderpulse needs, and nothing
# that is already there. Idempotent and silent when all is present, so that
# `make test` and `make demo` can depend on it unconditionally.
set -eu

PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev
      librdkafka-dev liburcu-dev libhiredis-dev libjemalloc-dev libssl-dev
      libcriterion-dev libh2o-evloop-dev libjansson-dev libsimdjson-dev
      redis-server redis-tools redis-sentinel kcat nghttp2-client h2o curl openssl python3
      mariadb-server mariadb-client libmariadb-dev
      chromium fonts-wqy-microhei linux-perf"

missing=""
for p in $PKGS; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $p"
done
# Node.js may come from elsewhere (e.g. NodeSource, whose nodejs bundles npm
# and conflicts with Debian's npm package): ask for the command, not the package.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # An image fresh from the registry has no package lists; refresh them
    # once, and again only if the install fails on stale lists.
    if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
        $SUDO apt-get update -qq
    fi
    # shellcheck disable=SC2086
    if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/tmp/orderpulse-apt.log 2>&1; then
        $SUDO apt-get update -qq
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -qq --no-install-recommends $missing >/tmp/orderpulse-apt.log 2>&1 ||
            { tail -20 /tmp/orderpulse-apt.log; echo "deps: apt-get install failed" >&2; exit 1; }
    fi
fi

# Front-end modules (ECharts for the dashboard, playwright-core for the
# browser test), pinned by package-lock.json.
top=$(dirname "$0")/..
if [ -f "$top/package-lock.json" ]; then
    if [ ! -d "$top/node_modules" ] || [ "$top/package-lock.json" -nt "$top/node_modules/.package-lock.json" ]; then
        echo "deps: npm ci"
        (cd "$top" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
