#!/usr/bin/env bash
# The conference series of docs/benchmarks.md ("Conferences"): one group call
# of each of $PARTIES parties, then $MANY conferences of $SMALL parties, each
# held $HOLD once every party is in (the bot dials $RATE legs/s; SIPp answers
# as the trunk and speaks). Each run is bounded by sbbench's own timeout;
# reports land in OUT (default ${TMPDIR:-/tmp}/switchboard-bench/conf-DATE,
# outside the repository).
#
#   scripts/bench-conf.sh [OUT]
#   PARTIES="10 100" MANY=0 PERF=1 scripts/bench-conf.sh /tmp/conf
#   SERVER=/tmp/switchboard SBBENCH=/tmp/sbbench scripts/bench-conf.sh   # binaries built elsewhere
#
# Needs: Go, sipp (Debian sip-tester) run as root (it sends the parties'
# speech through a raw socket), linux-perf for PERF=1. Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-${TMPDIR:-/tmp}/switchboard-bench/conf-$(date +%Y%m%d-%H%M%S)}
PARTIES=${PARTIES:-"10 100 500"}
MANY=${MANY:-100}
SMALL=${SMALL:-5}
RATE=${RATE:-50}
HOLD=${HOLD:-30s}
PERF=${PERF:-0}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

command -v sipp >/dev/null || { echo "sipp is missing: apt-get install sip-tester" >&2; exit 1; }
[ "$(id -u)" = 0 ] || echo "warning: not root; SIPp cannot send the parties' speech (raw socket)" >&2

mkdir -p "$OUT"
SBBENCH=${SBBENCH:-}
if [ -z "$SBBENCH" ]; then
	"$GO" build -o "$OUT/sbbench" ./cmd/sbbench
	SBBENCH=$OUT/sbbench
fi
SERVER=${SERVER:-}
if [ -z "$SERVER" ]; then
	"$GO" build -o "$OUT/switchboard" ./cmd/switchboard
	SERVER=$OUT/switchboard
fi
perf=()
[ "$PERF" = 1 ] && perf=(-perf)

for n in $PARTIES; do
	echo "== one conference of $n parties"
	"$SBBENCH" conf -server "$SERVER" -parties "$n" -conferences 1 -rate "$RATE" -hold "$HOLD" \
		-out "$OUT/conf-1x$n" "${perf[@]}" | tee "$OUT/conf-1x$n.txt"
done
if [ "$MANY" -gt 0 ]; then
	echo "== $MANY conferences of $SMALL parties"
	"$SBBENCH" conf -server "$SERVER" -parties "$SMALL" -conferences "$MANY" -rate "$RATE" -hold "$HOLD" \
		-out "$OUT/conf-${MANY}x$SMALL" "${perf[@]}" | tee "$OUT/conf-${MANY}x$SMALL.txt"
fi
echo "reports in $OUT"
