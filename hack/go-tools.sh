#!/usr/bin/env bash
# Builds the pinned Go tools the tests and the image use — helm, umoci, promtool, and
# lua-health (hack/lua-health, on gopher-lua: Argo CD's Lua runtime) — from the Go module
# proxy into a cache outside the repository, each once per version.
#
# Usage: hack/go-tools.sh        (prints the bin directory on its last line)
# Env:   ROSTER_CACHE   cache root     (default: ~/.cache/roster)
#        HELM_VERSION   helm.sh/helm   (default: v4.3.1)
#        UMOCI_VERSION  umoci          (default: v0.6.0)
#        LUA_VERSION    gopher-lua     (default: v1.1.2)
#        PROMETHEUS_VERSION  promtool  (default: v0.316.0, Prometheus 3.16)
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v4.3.1}
UMOCI_VERSION=${UMOCI_VERSION:-v0.6.0}
LUA_VERSION=${LUA_VERSION:-v1.1.2}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
BIN="$CACHE/go-tools/helm-$HELM_VERSION-umoci-$UMOCI_VERSION-lua-$LUA_VERSION-prom-$PROMETHEUS_VERSION/bin"
here=$(cd "$(dirname "$0")" && pwd)
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)}
export GOCACHE=${GOCACHE:-$(go env GOCACHE)}
export GOFLAGS=-buildvcs=false
export CGO_ENABLED=0

log() { echo "go-tools: $*" >&2; }
command -v go >/dev/null || { log "Go is required (https://go.dev/dl)"; exit 1; }

# tool NAME PACKAGE VERSION [LDFLAGS]: go install PACKAGE@VERSION into $BIN unless there.
tool() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-}
  [[ -x "$BIN/$name" ]] && return 0
  log "building $name $version (first time: a minute or two)"
  local start; start=$(date +%s)
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
  log "built $name in $(( $(date +%s) - start ))s"
}

# wrapped NAME MODULE PACKAGE VERSION: builds PACKAGE of MODULE@VERSION, whose go.mod
# has replace directives (`go install` refuses those), in a wrapper module that requires
# it and repeats its replaces.
wrapped() {
  local name=$1 module=$2 pkg=$3 version=$4
  [[ -x "$BIN/$name" ]] && return 0
  log "building $name $version (first time: a minute or two)"
  local start gomod dir
  start=$(date +%s)
  gomod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  dir=$(mktemp -d)
  {
    echo "module roster.dev/tools/$name"
    echo
    sed -n 's/^go \([0-9.]*\)$/go \1/p' "$gomod"
    echo
    echo "require $module $version"
    echo
    sed -n -e '/^replace (/,/^)/p' -e '/^replace [^(]/p' "$gomod"
  } >"$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$dir/tools.go"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$BIN/$name" "$pkg")
  rm -rf "$dir"
  log "built $name in $(( $(date +%s) - start ))s"
}

mkdir -p "$BIN"
tool helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
wrapped umoci github.com/opencontainers/umoci github.com/opencontainers/umoci/cmd/umoci "$UMOCI_VERSION"
# promtool checks and unit-tests the chart's alert rules; its module is large (several
# minutes cold), so it is built once per version like the others.
tool promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"

# lua-health is this repository's own main; it is rebuilt when its source changes.
lua_sum=$(sha256sum "$here/lua-health/main.go" | cut -c1-12)
if [[ ! -x "$BIN/lua-health-$lua_sum" ]]; then
  log "building lua-health on gopher-lua $LUA_VERSION"
  dir=$(mktemp -d)
  printf 'module roster.dev/tools/lua-health\n\ngo 1.22\n\nrequire github.com/yuin/gopher-lua %s\n' "$LUA_VERSION" >"$dir/go.mod"
  cp "$here/lua-health/main.go" "$dir/"
  (cd "$dir" && go mod tidy >/dev/null 2>&1 && go build -trimpath -ldflags "-s -w" -o "$BIN/lua-health-$lua_sum" .)
  rm -rf "$dir"
fi
ln -sf "lua-health-$lua_sum" "$BIN/lua-health"
echo "$BIN"
