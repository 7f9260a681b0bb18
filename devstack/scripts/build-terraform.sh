#!/usr/bin/env bash
# Build OpenTofu, or one Terraform provider, from the module source served by the Go
# module proxy. Each build runs under `/usr/bin/time -v`; its report is kept next to the
# output (build-stats.txt) so the time and peak memory can be quoted.
#
# Usage: build-terraform.sh tofu VERSION OUT_DIR
#        build-terraform.sh provider NAME VERSION MIRROR_DIR
#
# A provider lands in the filesystem-mirror layout that `tofu init` reads:
#   MIRROR_DIR/registry.opentofu.org/hashicorp/NAME/VERSION/linux_amd64/terraform-provider-NAME_vVERSION
# (the directory names are the provider's source address; no network registry is used).
#
# `go install pkg@version` refuses modules with replace directives, and the provider
# modules pin their own dependency set (several vendor it), so the module is downloaded
# and built inside a writable copy of itself.
set -euo pipefail
KIND=$1
shift
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"

# Download MODULE@VERSION and copy it into $WORK/src (module cache copies are read-only).
copy_module() {
  local dir
  dir=$(go mod download -json "$1@$2" | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d.get("Dir") or sys.exit(d.get("Error")))')
  cp -r "$dir" "$WORK/src"
  chmod -R u+w "$WORK/src"
}

# Run "$@" under /usr/bin/time -v, report to $STATS, and print wall time and peak RSS.
timed() {
  local stats=$1
  shift
  /usr/bin/time -v -o "$stats.tmp" "$@"
  mv "$stats.tmp" "$stats"
  step "$(awk -F': ' '/Elapsed \(wall clock\)/{t=$2} /Maximum resident set size/{m=$2} END{printf "took %s, peak RSS %.0f MB", t, m/1024}' "$stats")"
}

# json-iterator (used by the Kubernetes client libraries) reads maps through reflect2;
# reflect2 before v1.0.2 assumes the map iterator layout of Go < 1.18 and crashes at run
# time on a current Go. Require v1.0.2 (same API) wherever an older one is in the graph.
fix_reflect2() {
  grep -q 'github.com/modern-go/reflect2 v1.0.[01]' go.sum 2>/dev/null || return 0
  go mod edit -require=github.com/modern-go/reflect2@v1.0.2
  step "requiring github.com/modern-go/reflect2 v1.0.2 (runs on Go >= 1.18)"
}

# vbom.ml/util (required through k8s.io/kubectl by the Kubernetes-facing providers) is a
# vanity path the proxy does not serve; the same commit is served under its GitHub path.
fix_vanity_paths() {
  grep -q '^vbom.ml/util ' go.sum 2>/dev/null || return 0
  go mod edit -replace=vbom.ml/util=github.com/fvbommel/util@v0.0.0-20160121211510-db5cfe13f5cc
  step "vbom.ml/util -> github.com/fvbommel/util (same commit)"
}

case $KIND in
  tofu)
    V=$1 OUT=$2
    [[ -x $OUT/tofu ]] && exit 0
    mkdir -p "$OUT"
    step "opentofu $V: module download"
    copy_module github.com/opentofu/opentofu "$V"
    cd "$WORK/src"
    step "opentofu $V: compiling cmd/tofu (first run only)"
    GOFLAGS=-mod=mod timed "$OUT/build-stats.txt" \
      go build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$WORK/tofu" ./cmd/tofu
    mv "$WORK/tofu" "$OUT/tofu"
    ;;
  provider)
    NAME=$1 V=${2#v} MIRROR=$3
    DEST=$MIRROR/registry.opentofu.org/hashicorp/$NAME/$V/linux_amd64
    BIN=terraform-provider-${NAME}_v$V
    [[ -x $DEST/$BIN ]] && exit 0
    mkdir -p "$DEST"
    step "terraform-provider-$NAME v$V: module download"
    copy_module "github.com/hashicorp/terraform-provider-$NAME" "v$V"
    cd "$WORK/src"
    # Module zips carry no vendored code (vendor/modules.txt at most): everything the
    # provider's go.mod/go.sum pin comes from the proxy.
    rm -rf vendor
    fix_reflect2
    fix_vanity_paths
    step "terraform-provider-$NAME v$V: compiling (first run only)"
    GOFLAGS="-mod=mod ${SRS_GO_BUILD_FLAGS:-}" timed "$MIRROR/build-stats-$NAME-$V.txt" \
      go build -trimpath -ldflags "-s -w" -o "$WORK/$BIN" .
    mv "$WORK/$BIN" "$DEST/$BIN"
    ;;
  *)
    echo "usage: $0 tofu VERSION OUT_DIR | provider NAME VERSION MIRROR_DIR" >&2
    exit 2
    ;;
esac
