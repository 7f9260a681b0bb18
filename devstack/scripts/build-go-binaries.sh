#!/usr/bin/env bash
# Build the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), etcd, kwok and helm from Go sources fetched through the Go
# module proxy. Output goes to $OUT; re-running with the binaries present does nothing.
#
# Usage: build-go-binaries.sh OUT K8S_VERSION ETCD_VERSION KWOK_VERSION HELM_VERSION
set -euo pipefail
OUT=$1 K=$2 ETCD=$3 KWOK=$4 HELM=$5
mkdir -p "$OUT"
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOFLAGS=-mod=mod

build_k8s() {
  build_k8s_cmds "$OUT" "$K" "$WORK/k8s" kube-apiserver kube-controller-manager kube-scheduler kubectl
}

build_etcd() {
  go_module_cmd "$OUT" etcd "$WORK/etcd" go.etcd.io/etcd/server/v3 "$ETCD"
}

build_kwok() {
  go_tool "$OUT" kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK"
  [[ -f $OUT/kwok-stages.yaml ]] && return 0
  # kwok exits with "no stages found" unless told how fake nodes and pods behave: take
  # the "fast" stages that ship in its module (node ready + lease heartbeat, pod
  # ready/complete/delete).
  local src
  src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK/kustomize/stage"
  [[ -d $src ]] || go mod download "sigs.k8s.io/kwok@$KWOK"
  local f first=1
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ $first == 1 ]] || echo "---"
    first=0
    cat "$src/$f"
  done > "$OUT/kwok-stages.yaml.tmp"
  mv "$OUT/kwok-stages.yaml.tmp" "$OUT/kwok-stages.yaml"
}

build_helm() {
  go_tool "$OUT" helm "helm.sh/helm/v3/cmd/helm@$HELM" "helm $HELM (for the operator's chart)"
}

build_etcd
build_kwok
build_helm
build_k8s
step "done: $(ls "$OUT" | tr '\n' ' ')"
