#!/usr/bin/env bash
# Build Jaeger (the all-in-one `jaeger` binary: OTLP receiver, in-memory store, query
# API and UI) from the module source served by the Go module proxy, once per version.
# The build runs under `/usr/bin/time -v`; its report is kept next to the binary
# (build-stats.txt) so the cold build time can be quoted.
#
# Usage: build-jaeger.sh VERSION OUT_DIR
set -euo pipefail
V=$1 OUT=$2
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
[[ -x $OUT/jaeger ]] && exit 0
mkdir -p "$OUT"
step "jaeger $V: module download + compile (first run only, ~5-10 min on 2 cores)"
mkdir -p "$WORK/mod" && cd "$WORK/mod"
go mod init local.invalid/jaegerbin >/dev/null 2>&1
go get "github.com/jaegertracing/jaeger/cmd/jaeger@$V" >&2
/usr/bin/time -v -o "$WORK/stats" \
  go build -trimpath -ldflags "-s -w" -o "$WORK/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
mv "$WORK/stats" "$OUT/build-stats.txt"
step "$(awk -F': ' '/Elapsed \(wall clock\)/{t=$2} /Maximum resident set size/{m=$2} END{printf "compile took %s, peak RSS %.0f MB", t, m/1024}' "$OUT/build-stats.txt")"
mv "$WORK/jaeger" "$OUT/jaeger"
