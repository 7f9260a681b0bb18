#!/usr/bin/env bash
# Build KEDA's three programs from the module source the Go module proxy serves: the
# operator (cmd/operator -> keda), the metrics API server (cmd/adapter -> keda-adapter) and
# the admission webhooks (cmd/webhooks -> keda-admission-webhooks), the names upstream's
# images and manifests use. Output: $OUT/<name>; re-running with all three present does
# nothing. The compile runs under `/usr/bin/time -v`; its report is kept next to the
# binaries (build-stats.txt) so the cold build time can be quoted.
#
# Usage: build-keda.sh OUT KEDA_VERSION GO_TOOLCHAIN
#
# The build runs inside a copy of the module itself, so its own go.mod and go.sum (with
# its replace and exclude directives) decide every dependency, as upstream's Makefile
# does. `-tags timetzdata` embeds the time zone database that upstream's distroless base
# carries in files (the cron scaler reads it); the image built here has no /usr/share/zoneinfo.
set -euo pipefail
OUT=$1 V=$2 TOOLCHAIN=$3
BINS=(keda keda-adapter keda-admission-webhooks)
all_there() { local b; for b in "${BINS[@]}"; do [[ -x $OUT/$b ]] || return 1; done; }
all_there && exit 0
mkdir -p "$OUT"
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOFLAGS=-mod=readonly GOTOOLCHAIN=$TOOLCHAIN
cd "$WORK"
step "keda $V: module source (Go toolchain $TOOLCHAIN)"
dir=$(go mod download -json "github.com/kedacore/keda/v2@$V" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
cp -r "$dir" "$WORK/keda" && chmod -R u+w "$WORK/keda"
cd "$WORK/keda"
step "keda $V: downloading the modules it imports (~1 min cold)"
go list -deps ./cmd/operator ./cmd/adapter ./cmd/webhooks >/dev/null
step "keda $V: compiling the operator, the metrics API server and the webhooks (~13 CPU-min, first run only)"
/usr/bin/time -v -o "$WORK/stats" \
  go build -trimpath -tags timetzdata -o "$WORK/bin/" \
  -ldflags "-s -w -X=github.com/kedacore/keda/v2/version.Version=${V#v} -X=github.com/kedacore/keda/v2/version.GitCommit=$V" \
  ./cmd/operator ./cmd/adapter ./cmd/webhooks
mv "$WORK/stats" "$OUT/build-stats.txt"
step "$(awk -F': ' '/Elapsed \(wall clock\)/{t=$2} /User time/{u=$2} /System time/{s=$2} /Maximum resident set size/{m=$2} END{printf "compile took %s (%.0f CPU-s), peak RSS %.0f MB", t, u+s, m/1024}' "$OUT/build-stats.txt")"
# go build names each binary after its package's folder: operator, adapter, webhooks.
mv "$WORK/bin/adapter" "$OUT/keda-adapter"
mv "$WORK/bin/webhooks" "$OUT/keda-admission-webhooks"
mv "$WORK/bin/operator" "$OUT/keda"
