#!/usr/bin/env bash
# System tools of the deployment checks that `make install` does not bring: promtool and prometheus, from
# Debian's package `prometheus`. The package is unpacked into .streamrec/tools/bin, not installed:
# installing it would start a Prometheus daemon (its postinst runs the init script), and unpacking needs
# no root. Idempotent: returns at once when both tools are there. Call it from .ci/run before `make test`;
# the tests call it themselves when promtool is missing.
#   deploy/ci-prereqs.sh            ->  prints the folder holding promtool and prometheus
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_BIN="${STREAMREC_TOOLS_BIN:-$PWD/.streamrec/tools/bin}"

have() { [ -x "$TOOLS_BIN/$1" ] || command -v "$1" >/dev/null 2>&1; }
where() { if [ -x "$TOOLS_BIN/$1" ]; then dirname "$TOOLS_BIN/$1"; else dirname "$(command -v "$1")"; fi; }

if have promtool && have prometheus; then
  where promtool
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ci-prereqs: $tool not found: cannot fetch Debian's prometheus package" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fetch() { (cd "$work" && apt-get download -q prometheus >"$work/download.log" 2>&1); }
if ! fetch; then
  # an empty or stale package list: refresh it (needs root), then try once more
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >"$work/update.log" 2>&1 || true
  fi
  fetch || { echo "ci-prereqs: apt-get download prometheus failed:" >&2; cat "$work/download.log" >&2; exit 1; }
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$TOOLS_BIN"
install -m 0755 "$work/root/usr/bin/promtool" "$work/root/usr/bin/prometheus" "$TOOLS_BIN/"
"$TOOLS_BIN/promtool" --version >&2
echo "$TOOLS_BIN"
