#!/usr/bin/env bash
# Lays out the operator image's whole filesystem in ROOTFS: the roster binary, the C
# libraries it links (as ldd finds them), the CA bundle, and passwd/group entries for the
# user it runs as (65532, nonroot). No shell, no package manager, nothing else. The
# Dockerfile and hack/image.sh both build the image from this, so they agree.
#
# Usage: hack/image-rootfs.sh BINARY ROOTFS
set -euo pipefail
binary=${1:?usage: image-rootfs.sh BINARY ROOTFS}
rootfs=${2:?usage: image-rootfs.sh BINARY ROOTFS}

rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs"
install -m 0755 "$binary" "$rootfs/usr/local/bin/roster"

# The dynamic loader and every library, at the paths the binary asks for them.
ldd "$binary" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

# Downstream apps with certificates from a public CA verify against this bundle.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
printf 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'nonroot:x:65532:\n' >"$rootfs/etc/group"
