#!/usr/bin/env bash
# What file downloads cost the server: starts `chatd serve` on
# 127.0.0.1:18081 with an empty data directory (files in a directory, as a
# single server keeps them), uploads one file of SIZE_MIB, downloads it
# COUNT times with curl, PARALLEL at once, checks every copy's SHA-256,
# and prints the server's CPU seconds over the downloads (from
# /proc/PID/stat), its threads' context switches (from
# /proc/PID/task/*/status; a thread that exits meanwhile is not
# counted), the wall time and the throughput. Nothing is left running.
#
#   CHATD=target/release/chatd loadtest/scripts/downloads.sh [SIZE_MIB COUNT PARALLEL]
#   loadtest/scripts/downloads.sh 25 40 4
set -euo pipefail

size_mib=${1:-25}
count=${2:-40}
parallel=${3:-4}
chatd=${CHATD:-target/release/chatd}
listen=127.0.0.1:18081
base=http://$listen/api/v1

work=$(mktemp -d)
CHAT_LISTEN=$listen CHAT_DATA_DIR=$work/data \
CHAT_RATES__ACTIONS_PER_SECOND=1000 CHAT_RATES__ACTION_BURST=1000 \
    "$chatd" serve >"$work/server.log" 2>&1 &
server=$!
stop() {
    kill "$server" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT

for _ in $(seq 50); do
    curl -fsS "http://$listen/healthz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
done

token=$(curl -fsS -H 'content-type: application/json' \
    -d '{"username":"bench","password":"bench-password-1"}' "$base/auth/register" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/file"
want=$(sha256sum <"$work/file" | cut -d' ' -f1)
id=$(curl -fsS -H "authorization: Bearer $token" -F "file=@$work/file" "$base/files" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# utime + stime of the server, in clock ticks (fields 14 and 15).
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
switches() { cat /proc/"$server"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
download() {
    curl -fsS -H "authorization: Bearer $token" "$base/files/$id" | sha256sum | cut -d' ' -f1
}
export -f download
export token base id

echo "loadavg before: $(cat /proc/loadavg)"
start_ticks=$(ticks)
start_switches=$(switches)
start=$(date +%s.%N)
got=$(seq "$count" | xargs -P "$parallel" -I{} bash -c download)
end=$(date +%s.%N)
end_ticks=$(ticks)
end_switches=$(switches)
echo "loadavg after: $(cat /proc/loadavg)"

bad=$(grep -cv "^$want\$" <<<"$got" || true)
[ "$bad" -eq 0 ] || { echo "$bad of $count downloads differ from the upload" >&2; exit 1; }
python3 - "$size_mib" "$count" "$parallel" "$start" "$end" "$start_ticks" "$end_ticks" "$(getconf CLK_TCK)" \
    "$((end_switches - start_switches))" <<'EOF'
import sys
size_mib, count, parallel = map(int, sys.argv[1:4])
start, end = float(sys.argv[4]), float(sys.argv[5])
cpu = (int(sys.argv[7]) - int(sys.argv[6])) / int(sys.argv[8])
switches = int(sys.argv[9])
gib = size_mib * count / 1024
print(f"{count} downloads of {size_mib} MiB, {parallel} at once, every copy whole: "
      f"{end - start:.2f} s, {gib / (end - start):.2f} GiB/s; "
      f"server CPU {cpu:.2f} s, {cpu / gib:.2f} CPU-s per GiB, "
      f"{switches / gib:,.0f} context switches per GiB")
EOF
