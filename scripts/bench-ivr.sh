#!/usr/bin/env bash
# The IVR benchmark series of docs/benchmarks.md: steady state at each of
# $CALLS concurrent calls (SIPp at $RATE calls/s, $HOLD per call, with DTMF),
# then the setup rate at $RATES calls/s with 2 s calls. Each run is bounded
# by sbbench's own timeout; reports land in OUT (default
# ${TMPDIR:-/tmp}/switchboard-bench/DATE, outside the repository).
#
#   scripts/bench-ivr.sh [OUT]
#   CALLS="200 500" PERF=1 scripts/bench-ivr.sh /tmp/bench
#
# Needs: Go, sipp (Debian sip-tester) run as root (it sends audio through a
# raw socket), linux-perf for PERF=1. Installs sip-tester when missing and
# root. Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-${TMPDIR:-/tmp}/switchboard-bench/$(date +%Y%m%d-%H%M%S)}
CALLS=${CALLS:-"200 500 1000"}
RATE=${RATE:-50}
HOLD=${HOLD:-30s}
RATES=${RATES:-"100,200,500"}
STEP=${STEP:-10s}
PERF=${PERF:-0}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

if ! command -v sipp >/dev/null; then
	if [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sip-tester
	else
		echo "sipp is missing: apt-get install sip-tester" >&2
		exit 1
	fi
fi
[ "$(id -u)" = 0 ] || echo "warning: not root; SIPp cannot send the callers' audio (raw socket)" >&2

mkdir -p "$OUT"
"$GO" build -o "$OUT/sbbench" ./cmd/sbbench
"$GO" build -o "$OUT/switchboard" ./cmd/switchboard
perf=()
[ "$PERF" = 1 ] && perf=(-perf)

for n in $CALLS; do
	echo "== steady state: $n calls"
	"$OUT/sbbench" ivr -server "$OUT/switchboard" -calls "$n" -rate "$RATE" -hold "$HOLD" \
		-out "$OUT/ivr-$n" "${perf[@]}" | tee "$OUT/ivr-$n.txt"
done
echo "== setup rate: $RATES calls/s"
"$OUT/sbbench" setup -server "$OUT/switchboard" -rates "$RATES" -step "$STEP" -hold 2s \
	-out "$OUT/setup" "${perf[@]}" | tee "$OUT/setup.txt"
echo "reports in $OUT"
