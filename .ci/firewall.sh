#!/usr/bin/env bash
# Keeps the machine's firewall as CI found it. Podman's CNI plugins and
# dockerd add NAT rules and chains (.ci/containers.sh, .ci/compose.sh) that
# stay after their containers and daemon are gone, and with them the
# kernel's connection tracking on every new connection, loopback included:
# benchmarks run on the machine after CI paid for it in every process.
#
#   bash .ci/firewall.sh save FILE      the iptables rules now (IPv4, IPv6)
#   bash .ci/firewall.sh restore FILE   every table emptied, then FILE's
#                                       rules put back
#
# A machine without iptables yet (a fresh one: the container stages install
# it) has no rules, so its snapshot is empty and restoring leaves every
# table empty with ACCEPT policies. Restoring only warns when it fails: the
# checks have run by then, and a firewall left as the stages made it is
# what CI did before this script.
set -euo pipefail

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo

command=${1:?usage: firewall.sh save|restore FILE}
file=${2:?usage: firewall.sh save|restore FILE}

# empty_tables: iptables-save's output on stdin, the same tables with no
# rules and no chains of their own on stdout; built-in chains accept.
empty_tables() {
    awk '/^\*/ || /^COMMIT/ { print } /^:/ && $2 != "-" { print $1, "ACCEPT", "[0:0]" }'
}

case $command in
    save)
        : >"$file"
        command -v iptables-save >/dev/null 2>&1 || exit 0
        # One file for the caller to keep: the IPv6 rules after a marker.
        { $sudo iptables-save; echo "#ip6tables"; $sudo ip6tables-save; } >"$file"
        ;;
    restore)
        command -v iptables-restore >/dev/null 2>&1 || exit 0
        for family in ip ip6; do
            if ! $sudo "${family}tables-save" | empty_tables | $sudo "${family}tables-restore"; then
                echo "warning: could not empty the ${family}tables rules the container stages left" >&2
                continue
            fi
            if [ "$family" = ip ]; then
                kept=$(sed '/^#ip6tables$/,$d' "$file")
            else
                kept=$(sed '1,/^#ip6tables$/d' "$file")
            fi
            if [ -n "$kept" ] && ! echo "$kept" | $sudo "${family}tables-restore"; then
                echo "warning: could not put back the ${family}tables rules from before CI" >&2
            fi
        done
        echo "firewall: the rules of before the container stages are back"
        ;;
    *)
        echo "usage: firewall.sh save|restore FILE" >&2
        exit 2
        ;;
esac
