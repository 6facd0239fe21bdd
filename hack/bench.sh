#!/usr/bin/env bash
# The benchmark: the real control plane and the four apps on loopback, the release
# operator, and the figures it prints (see docs/performance.md). Flags go to roster-bench:
#   hack/bench.sh --identities 1000 --leavers 200
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "bench.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v go >/dev/null || { echo "bench.sh: Go is required to build the control plane (https://go.dev/dl)" >&2; exit 1; }
. hack/components.sh
exec cargo bench --locked --bench roster-bench -- "$@"
