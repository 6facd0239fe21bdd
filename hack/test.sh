#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, unit tests and the integration tests
# against a real kube-apiserver + etcd (built once into ~/.cache/roster, see
# hack/control-plane-bins.sh). Needs cargo and Go; installs the rest itself.
#
#   hack/test.sh          what CI runs
#   hack/test.sh --soak   the same with the long soak: 1,000 people instead of 250
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  "") ;;
  --soak) export ROSTER_SOAK_PEOPLE=${ROSTER_SOAK_PEOPLE:-1000} ;;
  *) echo "usage: hack/test.sh [--soak]" >&2; exit 2 ;;
esac

need() { command -v "$1" >/dev/null || { echo "test.sh: $1 is required: $2" >&2; exit 1; }; }
need cargo "install Rust with rustup (https://rustup.rs)"
need go "install Go >= 1.22 (https://go.dev/dl); newer toolchains are fetched from the Go module proxy"
# jemalloc, the operator's allocator, is built from source with cc and make.
for tool in cc make; do
  command -v "$tool" >/dev/null || ! command -v apt-get >/dev/null || apt-get install -y -qq build-essential >&2 || true
  need "$tool" "install a C compiler and make (Debian: build-essential)"
done
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# A CI run starts from a clean clone and builds once: incremental artifacts would only
# fill the disk (a run has failed on a full disk, the incremental cache being the
# largest part of target/).
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi

section() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

section "control plane binaries and downstream test servers"
. hack/components.sh

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

section "the operator image, without a daemon (hack/image.sh)"
ROSTER_IMAGE=$(hack/image.sh)
export ROSTER_IMAGE

section "cargo test (unit and integration)"
cargo test --locked --all-targets

section "fuzz targets, briefly, from the checked-in corpus"
hack/fuzz.sh

section "done in $(( $(date +%s) - start ))s"
