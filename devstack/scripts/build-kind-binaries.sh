#!/usr/bin/env bash
# Build what a kind node needs beyond the devstack's control plane, from Go sources
# fetched through the Go module proxy: kubelet, kubeadm and kube-proxy (same Kubernetes
# version as the devstack), the kind CLI, CoreDNS and actionlint. (The project's own small
# programs, srs-runc and pause, are built by devstack/gobuild.py, keyed by their sources.)
# Output goes to $OUT; binaries already there are not rebuilt (the folder is named by the
# versions they are built from).
#
# Usage: build-kind-binaries.sh OUT K8S_VERSION KIND_VERSION COREDNS_VERSION ACTIONLINT_VERSION [PART...]
# PART: kind, actionlint, node (kubelet, kubeadm, kube-proxy), coredns; default: all.
set -euo pipefail
OUT=$1 K=$2 KIND=$3 COREDNS=$4 ACTIONLINT=$5
shift 5
PARTS=${*:-kind actionlint node coredns}
mkdir -p "$OUT"
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOFLAGS=-mod=mod

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
    kind) build_kind ;;
    actionlint) build_actionlint ;;
    node) build_k8s_node ;;
    coredns) build_coredns ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done
step "done: $(ls "$OUT" | tr '\n' ' ')"
