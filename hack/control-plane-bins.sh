#!/usr/bin/env bash
# Builds pinned kube-apiserver, kube-controller-manager, kubectl and etcd from the Go
# module proxy into a cache outside the repository; builds only what that version's
# cache lacks, and nothing when it has them all.
#
# Usage: hack/control-plane-bins.sh        (prints the bin directory on its last line)
# Env:   ROSTER_CACHE   cache root        (default: ~/.cache/roster)
#        KUBE_VERSION   k8s.io/kubernetes (default: v1.36.3; keep in step with the
#                       k8s-openapi feature in Cargo.toml)
#        ETCD_VERSION   etcd server       (default: v3.6.16)
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
BIN="$CACHE/control-plane/kube-$KUBE_VERSION-etcd-$ETCD_VERSION/bin"
# Go's own caches stay outside the repository too, shared across versions.
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)}
export GOCACHE=${GOCACHE:-$(go env GOCACHE)}
export GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

log() { echo "control-plane-bins: $*" >&2; }

command -v go >/dev/null || { log "Go is required (https://go.dev/dl) to build the test control plane"; exit 1; }

KUBE_CMDS=(kube-apiserver kube-controller-manager kubectl)
missing=()
for cmd in "${KUBE_CMDS[@]}"; do
  [[ -x "$BIN/$cmd" ]] || missing+=("$cmd")
done
if [[ ${#missing[@]} -eq 0 && -x "$BIN/etcd" ]]; then
  echo "$BIN"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$BIN"
start=$(date +%s)

# --- kube-apiserver, kube-controller-manager, kubectl ----------------------------------
# k8s.io/kubernetes replaces every staging module with a local path, so it cannot be
# `go install`ed. A wrapper module requires it and points each staging module at its
# published v0.X.Y instead; the list comes from that version's own go.mod.
build_kube() {
  log "building ${missing[*]} $KUBE_VERSION (cold: several minutes each)"
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging_version="v0.${KUBE_VERSION#v1.}"
  go_directive=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  mkdir -p "$work/kube"
  {
    echo "module roster.dev/control-plane/kube"
    echo
    echo "go $go_directive"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } >"$work/kube/go.mod"
  cat >"$work/kube/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  done
  (
    cd "$work/kube"
    go mod tidy -e >/dev/null 2>&1 || go mod tidy
    for cmd in "${missing[@]}"; do
      go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
}

# --- etcd ----------------------------------------------------------------------------
build_etcd() {
  # go.etcd.io/etcd/server/v3 also carries local replaces; a tiny main calling etcdmain
  # builds against the published modules.
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cat >"$work/etcd/go.mod" <<GO
module roster.dev/control-plane/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GO
  cat >"$work/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$work/etcd"
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" .
  )
}

[[ ${#missing[@]} -eq 0 ]] || build_kube
[[ -x "$BIN/etcd" ]] || build_etcd
log "built in $(( $(date +%s) - start ))s into $BIN"
echo "$BIN"
