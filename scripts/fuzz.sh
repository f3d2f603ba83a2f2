#!/usr/bin/env bash
# Coverage-guided fuzzing of QMOI's parsers with cargo fuzz (libFuzzer) on the nightly
# toolchain. The targets are the functions of crates/qmoi-fuzz (fuzz/fuzz_targets/ has one
# three-line binary each); `cargo test` replays their seeds and past crashes on stable.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   scripts/fuzz.sh TARGET [SECONDS]     one target (default 60 s)
#   scripts/fuzz.sh all SECONDS          every target, SECONDS each
#   scripts/fuzz.sh --list               the targets
#
# Each input may take at most 10 s (-timeout) and 2 GiB (-rss_limit_mb, also the cap of a
# single allocation) and be at most 256 kB long. The working corpus is fuzz/corpus/<target>
# (not committed), started from the committed seeds in fuzz/seeds/<target>. An input that
# crashes, hangs or runs out of memory is copied to fuzz/regressions/<target>/: commit it
# with its fix, and every `cargo test` runs it from then on. Prints one line per target:
# executions, executions/s, coverage, corpus size and what was found.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--list" ]; then
  ls fuzz/fuzz_targets | sed 's/\.rs$//'
  exit 0
fi
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
target="${1:-all}"
seconds="${2:-60}"
case "$seconds" in '' | *[!0-9]*) echo "SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 2
fi

if [ "$target" = "all" ]; then
  targets=$(ls fuzz/fuzz_targets | sed 's/\.rs$//')
else
  if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
    echo "no fuzz target '$target'; targets: $(ls fuzz/fuzz_targets | sed 's/\.rs$//' | tr '\n' ' ')" >&2
    exit 2
  fi
  targets="$target"
fi

echo "==> cargo +nightly fuzz build (address sanitizer, debug assertions)"
(cd fuzz && cargo +nightly fuzz build -O --debug-assertions 2>&1 | tail -3) || exit 1

status=0
printf '%-16s %12s %9s %6s %7s  %s\n' target executions "exec/s" cov corpus found
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/last-run.log"
  (cd fuzz && cargo +nightly fuzz run -O --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -max_len=262144 -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"../$log" 2>&1)
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'exec/s: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  found="nothing"
  if [ $rc -ne 0 ]; then
    status=1
    found=""
    for a in fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/timeout-* fuzz/artifacts/"$t"/oom-* fuzz/artifacts/"$t"/leak-*; do
      [ -f "$a" ] || continue
      mkdir -p "fuzz/regressions/$t"
      cp "$a" "fuzz/regressions/$t/"
      found="$found $(basename "$a")"
    done
    found="${found:-failed (see $log)} -> fuzz/regressions/$t/"
  fi
  printf '%-16s %12s %9s %6s %7s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" "$found"
done
[ $status -eq 0 ] || echo "Found problems: the inputs are in fuzz/regressions/; the logs in fuzz/artifacts/<target>/last-run.log" >&2
exit $status
