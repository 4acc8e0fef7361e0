# Shared by the wrk benches (bench/receiver.sh, bench/claim_stores.sh), sourced from the
# checkout's root. Needs SECONDS_EACH (seconds per run) and TMP.

# One wrk run, -t1 -c8: prints requests/s (0 when wrk fails); warns on stderr when some
# answers were not 2xx. $1: label, $2: url, $3: the wrk script.
measure() {
  out=$(wrk -t1 -c8 -d"${SECONDS_EACH}s" -s "$3" "$2" 2>&1) || {
    echo "bench: wrk failed for $1: $out" >&2; echo 0; return; }
  bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  [ -z "$bad" ] || echo "bench: $1 had $bad answers that were not 2xx" >&2
  echo "$out" | awk '/^Requests\/sec:/ {print $2}'
}

# The median of the numbers in file $1, one a line (0 for none).
median() {
  sort -g "$1" | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# Appends $1 / $2 (0 when $2 is 0) to file $3.
ratio_to() {
  awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : 0) }' >>"$3"
}

# A port that was free a moment ago on 127.0.0.1.
free_port() {
  "$LUA" -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, p = s:getsockname(); s:close(); print(p)'
}

# Waits (at most 5 s) until 127.0.0.1:$1 accepts connections; false when it does not.
wait_port() {
  i=0
  until "$LUA" -e "assert(require('socket').connect('127.0.0.1', $1))" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 50 ] || return 1
    sleep 0.1
  done
}
