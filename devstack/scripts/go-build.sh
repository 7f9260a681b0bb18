# shellcheck shell=bash
# Sourced by the build scripts (build-go-binaries.sh, build-kind-binaries.sh,
# build-argocd.sh, build-terraform.sh): one way to report progress and to build a Go
# command from the Go module proxy. GOFLAGS comes from the caller.

step() { printf '[build] %s\n' "$*" >&2; }

# Sourcing makes $WORK, the build's scratch folder, removed on exit (module-cache copies
# in it are read-only: made writable first). Static binaries, no cgo.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/srs-build.XXXXXX")
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
export CGO_ENABLED=0

# go_tool OUT BIN PKG@VERSION [WHAT]: `go install` PKG into OUT unless OUT/BIN is there.
go_tool() {
  local out=$1 bin=$2 pkg=$3
  [[ -x $out/$bin ]] && return 0
  step "${4:-$bin ${pkg##*@}}"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "$pkg"
}

# go_module_cmd OUT BIN WORKDIR PKG VERSION [WHAT]: build PKG at VERSION inside a scratch
# module in WORKDIR, for modules whose go.mod has directives `go install` refuses.
go_module_cmd() {
  local out=$1 bin=$2 d=$3 pkg=$4 version=$5
  [[ -x $out/$bin ]] && return 0
  step "${6:-$bin $version}"
  mkdir -p "$d" && cd "$d"
  go mod init "local.invalid/${bin}bin" >/dev/null 2>&1
  go get "$pkg@$version" >&2
  go build -trimpath -ldflags "-s -w" -o "$out/$bin" "$pkg"
}

# build_k8s_cmds OUT VERSION WORKDIR CMD...: build the CMDs (k8s.io/kubernetes/cmd/CMD)
# that are not already executable in OUT.
build_k8s_cmds() {
  local out=$1 k=$2 d=$3 missing="" b
  shift 3
  for b in "$@"; do [[ -x $out/$b ]] || missing="$missing $b"; done
  [[ -z $missing ]] && return 0
  step "kubernetes $k:$missing (module download + compile, ~5-10 min on 2 cores)"
  local staging="v0.${k#v1.}"
  mkdir -p "$d" && cd "$d"
  go mod init local.invalid/k8sbins >/dev/null 2>&1
  local gm m
  gm=$(go mod download -json "k8s.io/kubernetes@$k" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  # The kubernetes module replaces its staging modules with local paths; point each one
  # at the published module of the matching v0.N.M version instead.
  # (Read with the go command's own parser: `go mod edit -json`.)
  for m in $(go mod edit -json "$gm" | python3 -c '
import json, sys
print("\n".join(sorted({r["Path"] for r in json.load(sys.stdin).get("Require") or ()
                        if r["Path"].startswith("k8s.io/") and r["Version"] == "v0.0.0"})))'); do
    go mod edit "-replace=$m=$m@$staging"
  done
  go mod edit "-require=k8s.io/kubernetes@$k"
  local pkgs=""
  for b in $missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
  step "resolving modules"
  # shellcheck disable=SC2086
  go get $(for p in $pkgs; do printf '%s@%s ' "$p" "$k"; done) >&2
  step "compiling"
  # Stamp the version the way the upstream release build does, so that clients (kubectl,
  # the Python client, kopf, kubeadm) see a real version, not v0.0.0-master.
  local minor=${k#v1.} x="" v
  minor=${minor%%.*}
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x="$x -X $v.gitVersion=$k -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    x="$x -X $v.buildDate=1970-01-01T00:00:00Z"
  done
  # shellcheck disable=SC2086
  go build -trimpath -ldflags "-s -w $x" -o "$out/" $pkgs
}
