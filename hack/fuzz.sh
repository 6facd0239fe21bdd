#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer) from its checked-in corpus for
# FUZZ_SECONDS each (default 5; the test command uses the default, a longer hunt sets
# e.g. FUZZ_SECONDS=600). What the fuzzer finds new goes to a scratch corpus, not into
# the repository; a crash fails the run and names the input that caused it (copy it into
# fuzz/corpus/<target>/ once fixed, and every `cargo test` replays it).
#
# cargo-fuzz comes from crates.io into $ROSTER_CACHE. It builds with the nightly
# toolchain when one is installed (with AddressSanitizer), else with stable and no
# sanitizer: the targets are safe Rust, so what they look for is panics, overflows and
# hangs, which need no sanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH=${FUZZ_SECONDS:-5}
TARGETS=(scim_answer ldap_names kubernetes_grant cel_subjects hr_export)

bin="$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION/bin"
if [[ ! -x "$bin/cargo-fuzz" ]]; then
  echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $bin"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
    --root "$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
fi
export PATH="$bin:$PATH"

if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly) sanitizer=address
else
  # cargo fuzz passes -Z flags only for a sanitizer; with none, stable builds it.
  toolchain=() sanitizer=none
fi
# A few seconds a target need no optimised build, and the unoptimised one takes half the
# time (measured cold: 3 min 53 s against 8 min 55 s); a longer hunt is worth optimising.
if (( SECONDS_EACH > 60 )); then profile=(--release); else profile=(--dev); fi
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/roster-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT

cd fuzz
echo "fuzz.sh: building the targets (${profile[*]}, sanitizer: $sanitizer)"
cargo "${toolchain[@]}" fuzz build "${profile[@]}" --sanitizer "$sanitizer"
for target in "${TARGETS[@]}"; do
  mkdir -p "$scratch/corpus/$target" "$scratch/artifacts/$target"
  echo "fuzz.sh: $target for ${SECONDS_EACH}s"
  if ! cargo "${toolchain[@]}" fuzz run "${profile[@]}" --sanitizer "$sanitizer" "$target" \
    "$scratch/corpus/$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$scratch/artifacts/$target/" -print_final_stats=1 \
    >"$scratch/$target.log" 2>&1; then
    tail -n 40 "$scratch/$target.log" >&2
    mkdir -p "$CACHE/fuzz-crashes/$target"
    cp "$scratch/artifacts/$target/"* "$CACHE/fuzz-crashes/$target/" 2>/dev/null || true
    echo "fuzz.sh: $target failed; its input is in $CACHE/fuzz-crashes/$target" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$target.log" |
    tr '\n' ' ' | sed "s/^/fuzz.sh: $target: /"
  echo
done
