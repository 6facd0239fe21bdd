#!/usr/bin/env bash
# Builds the operator image without a container daemon: a release build, the filesystem
# hack/image-rootfs.sh lays out (as the Dockerfile does), packed by umoci into an OCI
# image layout under the cache. Prints the image reference, `oci:DIR:TAG`.
#
# Usage: hack/image.sh
# Publish: skopeo copy oci:DIR:TAG docker://REGISTRY/roster:TAG   (docs/install.md)
# Env:   ROSTER_CACHE   cache root (default: ~/.cache/roster)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
OUT="$CACHE/image"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
log() { echo "image: $*" >&2; }

umoci="$(hack/go-tools.sh | tail -1)/umoci"
log "cargo build --release"
cargo build --release --locked --quiet --bin roster
binary=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/roster

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

rm -rf "$OUT"
mkdir -p "$OUT"
hack/image-rootfs.sh "$binary" "$OUT/rootfs"
layout="$OUT/oci"
"$umoci" init --layout "$layout"
"$umoci" new --image "$layout:$version"
# One layer, owned by root and readable by all, as COPY in the Dockerfile makes it.
"$umoci" insert --image "$layout:$version" "$OUT/rootfs" /
"$umoci" config --image "$layout:$version" \
  --config.user 65532:65532 \
  --config.entrypoint /usr/local/bin/roster --config.cmd run \
  --config.label "org.opencontainers.image.title=roster" \
  --config.label "org.opencontainers.image.version=$version" \
  --os linux --architecture "$arch"
"$umoci" gc --layout "$layout"
log "built $layout:$version ($(du -sh "$layout" | cut -f1))"
echo "oci:$layout:$version"
