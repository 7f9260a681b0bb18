#!/usr/bin/env bash
# Build the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), etcd, kwok and helm from Go sources fetched through the Go
# module proxy. Output goes to $OUT; re-running with the binaries present does nothing.
#
# Usage: build-go-binaries.sh OUT K8S_VERSION ETCD_VERSION KWOK_VERSION HELM_VERSION
set -euo pipefail
OUT=$1 K=$2 ETCD=$3 KWOK=$4 HELM=$5
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/srs-gobuild.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod

step() { printf '[build] %s\n' "$*" >&2; }

build_k8s() {
  local bins="kube-apiserver kube-controller-manager kube-scheduler kubectl" missing=""
  for b in $bins; do [[ -x $OUT/$b ]] || missing="$missing $b"; done
  [[ -z $missing ]] && return 0
  step "kubernetes $K:$missing (module download + compile, ~5-10 min on 2 cores)"
  local S="v0.${K#v1.}" d="$WORK/k8s"
  mkdir -p "$d" && cd "$d"
  go mod init local.invalid/k8sbins >/dev/null 2>&1
  local gm
  gm=$(go mod download -json "k8s.io/kubernetes@$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  # The kubernetes module replaces its staging modules with local paths; point each one
  # at the published module of the matching v0.N.M version instead.
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0"{print $1}' "$gm" | sort -u); do
    go mod edit "-replace=$m=$m@$S"
  done
  go mod edit "-require=k8s.io/kubernetes@$K"
  local pkgs=""
  for b in $missing; do
    case $b in
      kubectl) pkgs="$pkgs k8s.io/kubernetes/cmd/kubectl" ;;
      *) pkgs="$pkgs k8s.io/kubernetes/cmd/$b" ;;
    esac
  done
  step "resolving modules"
  # shellcheck disable=SC2086
  go get $(for p in $pkgs; do printf '%s@%s ' "$p" "$K"; done) >&2
  step "compiling"
  # Stamp the version the way the upstream release build does, so that clients (kubectl,
  # the Python client, kopf) see a real server version, not v0.0.0-master.
  local minor=${K#v1.}; minor=${minor%%.*} x=""
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x="$x -X $v.gitVersion=$K -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    x="$x -X $v.buildDate=1970-01-01T00:00:00Z"
  done
  # shellcheck disable=SC2086
  go build -trimpath -ldflags "-s -w $x" -o "$OUT/" $pkgs
}

build_etcd() {
  [[ -x $OUT/etcd ]] && return 0
  step "etcd $ETCD"
  local d="$WORK/etcd"
  mkdir -p "$d" && cd "$d"
  go mod init local.invalid/etcdbin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  if [[ ! -x $OUT/kwok ]]; then
    step "kwok $KWOK"
    GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK"
  fi
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
  [[ -x $OUT/helm ]] && return 0
  step "helm $HELM (for the operator's chart)"
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM"
}

build_etcd
build_kwok
build_helm
build_k8s
step "done: $(ls "$OUT" | tr '\n' ' ')"
