#!/bin/sh
# One target's run for make fuzz: the binary on its corpus and its saved inputs, with the
# dictionary; its log in DIR/TARGET.log, the run count on stdout. An input that crashes lands in
# fuzz/regressions/TARGET/ unless an input with the same bytes is there already (under another
# name). Exits non-zero when the target crashed.
#   sh fuzz/run.sh DIR TARGET LIMIT     LIMIT: -runs=N or -max_total_time=S
set -u
dir=$1 target=$2 limit=$3
saved=fuzz/regressions/$target
mkdir -p "$saved" "$dir/corpus/$target" "$dir/crashes/$target"
rm -f "$dir/crashes/$target"/*

nice "$dir/$target" "$limit" -dict=fuzz/thinkific.dict -max_len=8192 -timeout=20 -detect_leaks=0 \
  -print_final_stats=1 -artifact_prefix="$dir/crashes/$target/" \
  "$dir/corpus/$target" "$saved" 2>"$dir/$target.log"
status=$?

for found in "$dir/crashes/$target"/*; do
  [ -f "$found" ] || continue
  known=""
  for old in "$saved"/*; do
    if [ -f "$old" ] && cmp -s "$found" "$old"; then known=$old; break; fi
  done
  if [ -n "$known" ]; then
    echo "fuzz $target: crashed on $known"
  else
    cp "$found" "$saved/"
    echo "fuzz $target: new crash saved as $saved/$(basename "$found")"
  fi
done
[ "$status" = 0 ] || tail -n 40 "$dir/$target.log"
grep -m1 "stat::number_of_executed_units" "$dir/$target.log"
exit "$status"
