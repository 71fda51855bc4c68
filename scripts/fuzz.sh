#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a set time each, on one core, niced, so that
# other work on the machine goes first. Not part of .ci/run: see RELIABILITY.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Works on stable Rust: `--sanitizer none` (the Rust targets need no AddressSanitizer:
# a panic, a timeout or running out of memory is what they look for). Needs cargo-fuzz:
# `cargo install cargo-fuzz`. Corpora grow in fuzz/corpus/<target> (not committed) and
# start from the committed seeds in fuzz/seeds/<target>; a crash is written to
# fuzz/artifacts/<target>/ and reproduced with
#   cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(manifest_parse plan)
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }

# One core for the build too.
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
nice -n 15 cargo fuzz build --sanitizer none

status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/artifacts/$t"
  extra=()
  [ -f "fuzz/$t.dict" ] && extra+=("-dict=fuzz/$t.dict")
  echo "fuzz: $t for ${secs}s" >&2
  # One process, one thread: libFuzzer without -jobs/-workers/-fork runs in place on one
  # core (-jobs=1 -workers=1 would also be one core, but sends the output to fuzz-0.log).
  # -timeout: an input slower than 10 s is a finding (the parser's budgets must bound it);
  # -rss_limit_mb: so is one that needs more than 2 GiB. -max_len 64 KiB: the parser's
  # pathological cases (alias bombs, deep nesting) fit in far less.
  if ! nice -n 15 cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 "${extra[@]}"; then
    echo "fuzz: $t FOUND A CRASH: see fuzz/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
