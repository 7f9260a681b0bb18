#!/usr/bin/env bash
# Build Argo CD (one `argocd` binary: application controller, repo server, CLI … chosen by
# the name it is called by) from the Go module proxy. Output: $OUT/argocd; re-running with
# the binary present does nothing.
#
# Usage: build-argocd.sh OUT ARGOCD_VERSION GO_TOOLCHAIN
#
# The argo-cd module replaces its in-repository gitops-engine module with a local path,
# which a dependent module cannot follow: require the published gitops-engine/v3 of the
# same version instead, and copy the module's other replace directives (they pin the
# Kubernetes libraries), as the module's own build does.
set -euo pipefail
OUT=$1 V=$2 TOOLCHAIN=$3
[[ -x $OUT/argocd && -x $OUT/git-verify-wrapper.sh ]] && exit 0
mkdir -p "$OUT"
# shellcheck source=go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOFLAGS=-mod=mod GOTOOLCHAIN=$TOOLCHAIN
cd "$WORK"
go mod init local.invalid/argocdbin >/dev/null 2>&1
step "argo-cd $V: resolving modules (Go toolchain $TOOLCHAIN)"
gm=$(go mod download -json "github.com/argoproj/argo-cd/v3@$V" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
# The module's replace directives, read with the go command's own parser (`go mod edit
# -json`); local-path replacements (no version) cannot be followed and are left out.
go mod edit -json "$gm" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or ():
    old, new = r["Old"], r["New"]
    if new.get("Version"):
        print(old["Path"] + ("@" + old["Version"] if old.get("Version") else "") + "=" + new["Path"] + "@" + new["Version"])
' | while read -r r; do
  go mod edit "-replace=$r"
done
go mod edit "-require=github.com/argoproj/argo-cd/v3@$V" "-require=github.com/argoproj/argo-cd/gitops-engine/v3@$V"
go get "github.com/argoproj/argo-cd/v3/cmd@$V" >&2
# The repo server runs these scripts of the module (its image puts them on PATH).
dir=$(go mod download -json "github.com/argoproj/argo-cd/v3@$V" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
install -m 0755 "$dir/hack/git-verify-wrapper.sh" "$dir/hack/gpg-wrapper.sh" "$OUT/"
[[ -x $OUT/argocd ]] && exit 0
step "argo-cd $V: compiling (~15-30 min on 2 cores, first run only)"
go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${V#v}" -o "$WORK/argocd" github.com/argoproj/argo-cd/v3/cmd
mv "$WORK/argocd" "$OUT/argocd"
