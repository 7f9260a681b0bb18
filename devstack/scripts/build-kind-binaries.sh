#!/usr/bin/env bash
# Build what a kind node needs beyond the devstack's control plane, from Go sources
# fetched through the Go module proxy: kubelet, kubeadm and kube-proxy (same Kubernetes
# version as the devstack), the kind CLI, CoreDNS, actionlint, and the project's own
# small programs (srs-runc, the OCI runtime wrapper; pause, the pod sandbox).
# Output goes to $OUT; binaries already there are not rebuilt.
#
# Usage: build-kind-binaries.sh OUT K8S_VERSION KIND_VERSION COREDNS_VERSION ACTIONLINT_VERSION SRC_DIR [PART...]
# PART: own, kind, actionlint, node (kubelet, kubeadm, kube-proxy), coredns; default: all.
set -euo pipefail
OUT=$1 K=$2 KIND=$3 COREDNS=$4 ACTIONLINT=$5 SRC=$6
shift 6
PARTS=${*:-own kind actionlint node coredns}
mkdir -p "$OUT"
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOFLAGS=-mod=mod

build_own() {
  local name
  for name in ociwrapper:srs-runc pause:pause; do
    local dir=${name%%:*} bin=${name##*:}
    [[ -x $OUT/$bin ]] && continue
    step "$bin (from $SRC/$dir)"
    (cd "$SRC/$dir" && go build -trimpath -ldflags "-s -w" -o "$OUT/$bin" .)
  done
}

build_kind() {
  go_tool "$OUT" kind "sigs.k8s.io/kind@$KIND"
}

build_actionlint() {
  go_tool "$OUT" actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT"
}

build_coredns() {
  go_module_cmd "$OUT" coredns "$WORK/coredns" github.com/coredns/coredns "$COREDNS" "coredns $COREDNS (~3 min on 2 cores)"
}

build_k8s_node() {
  build_k8s_cmds "$OUT" "$K" "$WORK/k8s" kubelet kubeadm kube-proxy
}

for part in $PARTS; do
  case $part in
    own) build_own ;;
    kind) build_kind ;;
    actionlint) build_actionlint ;;
    node) build_k8s_node ;;
    coredns) build_coredns ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
step "done: $(ls "$OUT" | tr '\n' ' ')"
