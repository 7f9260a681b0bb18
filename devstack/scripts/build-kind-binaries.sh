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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/srs-kindbuild.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod
LDFLAGS="-s -w"

step() { printf '[build] %s\n' "$*" >&2; }

build_own() {
  local name
  for name in ociwrapper:srs-runc pause:pause; do
    local dir=${name%%:*} bin=${name##*:}
    [[ -x $OUT/$bin ]] && continue
    step "$bin (from $SRC/$dir)"
    (cd "$SRC/$dir" && go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/$bin" .)
  done
}

build_kind() {
  [[ -x $OUT/kind ]] && return 0
  step "kind $KIND"
  GOBIN="$OUT" go install -trimpath -ldflags "$LDFLAGS" "sigs.k8s.io/kind@$KIND"
}

build_actionlint() {
  [[ -x $OUT/actionlint ]] && return 0
  step "actionlint $ACTIONLINT"
  GOBIN="$OUT" go install -trimpath -ldflags "$LDFLAGS" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT"
}

build_coredns() {
  [[ -x $OUT/coredns ]] && return 0
  step "coredns $COREDNS (~3 min on 2 cores)"
  local d="$WORK/coredns"
  mkdir -p "$d" && cd "$d"
  go mod init local.invalid/corednsbin >/dev/null 2>&1
  go get "github.com/coredns/coredns@$COREDNS" >&2
  go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/coredns" github.com/coredns/coredns
}

build_k8s_node() {
  local bins="kubelet kubeadm kube-proxy" missing=""
  for b in $bins; do [[ -x $OUT/$b ]] || missing="$missing $b"; done
  [[ -z $missing ]] && return 0
  step "kubernetes $K:$missing (~5 min on 2 cores; shares the devstack's module cache)"
  local S="v0.${K#v1.}" d="$WORK/k8s"
  mkdir -p "$d" && cd "$d"
  go mod init local.invalid/k8snodebins >/dev/null 2>&1
  local gm
  gm=$(go mod download -json "k8s.io/kubernetes@$K" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0"{print $1}' "$gm" | sort -u); do
    go mod edit "-replace=$m=$m@$S"
  done
  go mod edit "-require=k8s.io/kubernetes@$K"
  local pkgs=""
  for b in $missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
  # shellcheck disable=SC2086
  go get $(for p in $pkgs; do printf '%s@%s ' "$p" "$K"; done) >&2
  local minor=${K#v1.}; minor=${minor%%.*} x=""
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x="$x -X $v.gitVersion=$K -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    x="$x -X $v.buildDate=1970-01-01T00:00:00Z"
  done
  # shellcheck disable=SC2086
  go build -trimpath -ldflags "$LDFLAGS $x" -o "$OUT/" $pkgs
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
