#!/usr/bin/env bash
# What files cost a `chatd serve` (files in a directory, as a single server
# keeps them). Starts it on 127.0.0.1:18081 with an empty data directory,
# measures, stops it; nothing is left running.
#
#   CHATD=target/release/chatd loadtest/scripts/files.sh download [SIZE_MIB COUNT PARALLEL]
#   CHATD=target/release/chatd loadtest/scripts/files.sh upload [SIZE_BYTES COUNT]
#
# download (default 25 MiB, 40 times, 4 at once): uploads one file, downloads
# it with curl, checks every copy's SHA-256, and prints the server's CPU
# seconds over the downloads (from /proc/PID/stat), its threads' context
# switches (from /proc/PID/task/*/status; a thread that exits meanwhile is
# not counted), the wall time and the throughput.
# upload (default 100,000 bytes, 50 times, one after another): prints the
# median, 90th percentile and longest time `curl` took for an upload (201).
set -euo pipefail

mode=${1:?usage: files.sh download|upload [...]}
chatd=${CHATD:-target/release/chatd}
listen=127.0.0.1:18081
base=http://$listen/api/v1

work=$(mktemp -d)
# shellcheck source=serve.sh
source "$(dirname "$0")/serve.sh"
trap 'serve_stop; rm -rf "$work"' EXIT
serve_start "$listen" "$work/server.log" \
    CHAT_RATES__ACTIONS_PER_SECOND=1000 CHAT_RATES__ACTION_BURST=1000 \
    CHAT_FILES__UPLOADS_PER_MINUTE=100000 CHAT_FILES__UPLOAD_BURST=1000

token=$(curl -fsS -H 'content-type: application/json' \
    -d '{"username":"bench","password":"bench-password-1"}' "$base/auth/register" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

if [ "$mode" = upload ]; then
    head -c "${2:-100000}" /dev/urandom >"$work/file"
    for _ in $(seq "${3:-50}"); do
        curl -fsS -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $token" \
            -F "file=@$work/file" "$base/files"
    done | sort -n | awk '{t[NR] = $1 * 1000} END {
        printf "%d uploads of %d bytes: median %.1f ms, p90 %.1f ms, max %.1f ms\n",
            NR, '"${2:-100000}"', t[int((NR + 1) / 2)], t[int(NR * 0.9)], t[NR] }'
    exit 0
fi
[ "$mode" = download ] || { echo "usage: files.sh download|upload [...]" >&2; exit 2; }
size_mib=${2:-25}
count=${3:-40}
parallel=${4:-4}
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
