# shellcheck shell=bash
# scripts/lib/netns.sh — network-namespace helpers for scripts/lab.
#
# Sourced, not executed. Functions print nothing on success unless noted and
# return non-zero on failure (callers run under `set -euo pipefail`).

# netns_exists NS
netns_exists() {
    ip netns list 2>/dev/null | awk '{ print $1 }' | grep -Fxq -- "$1"
}

# netns_pids NS [EXCEPT_PID...] — print the pids of the processes whose
# network namespace is NS, space-separated, leaving out EXCEPT_PIDs.
netns_pids() {
    local ns=$1 p x out=""
    shift
    for p in $(ip netns pids "$ns" 2>/dev/null); do
        for x in "$@"; do [[ $p == "$x" ]] && continue 2; done
        out+="$p "
    done
    printf '%s' "$out"
}

# netns_kill_all NS [GRACE_SECS] [EXCEPT_PID...]
# SIGTERM every process whose network namespace is NS (except EXCEPT_PIDs),
# wait up to GRACE_SECS (default 5) for them to exit, then SIGKILL the rest.
# Only processes inside this namespace (i.e. started by the lab) are
# touched, each by its pid.
netns_kill_all() {
    local ns=$1 grace=${2:-5} pids i
    shift $(($# >= 2 ? 2 : 1))
    netns_exists "$ns" || return 0
    pids=$(netns_pids "$ns" "$@")
    [[ -n $pids ]] || return 0
    # shellcheck disable=SC2086 # word splitting of the pid list is intended
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        pids=$(netns_pids "$ns" "$@")
        [[ -n $pids ]] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        pids=$(netns_pids "$ns" "$@")
        [[ -n $pids ]] || return 0
        sleep 0.1
    done
}

# netns_delete NS — kill everything in NS, then delete it. No-op if absent.
netns_delete() {
    local ns=$1
    netns_exists "$ns" || return 0
    netns_kill_all "$ns"
    ip netns del "$ns" 2>/dev/null || true
}

# netns_create NS — create NS with lo up and IPv6 disabled (keeps the lab
# quiet: no router solicitations, DAD or MLD reports on the veths).
netns_create() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # New interfaces inherit "default"; ignore kernels without IPv6.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
}

# veth_create NS_A DEV_A NS_B DEV_B — a veth pair with DEV_A in NS_A and DEV_B
# in NS_B. Both ends are created directly in their namespaces, so names never
# clash with interfaces in the root namespace or in another lab instance.
veth_create() {
    local ns_a=$1 dev_a=$2 ns_b=$3 dev_b=$4
    # "name"/"dev" spell the names out: ip would read a bare "h" as "help".
    ip -n "$ns_a" link add name "$dev_a" type veth peer name "$dev_b" netns "$ns_b"
}

# iface_prepare NS DEV — disable IPv6 and offloads on DEV, and bring it up.
# Offloads are off because an af_packet PMD on the other end would otherwise
# see 64 KiB GSO super-frames and partial checksums.
iface_prepare() {
    local ns=$1 dev=$2
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1" 2>/dev/null || true
    ip netns exec "$ns" ethtool -K "$dev" rx off tx off tso off gso off gro off >/dev/null 2>&1 \
        || ip netns exec "$ns" ethtool -K "$dev" rx off tx off tso off gso off gro off
    ip -n "$ns" link set dev "$dev" up
}

# mac_of NS DEV — print DEV's MAC address.
mac_of() {
    local ns=$1 dev=$2 mac
    mac=$(ip -n "$ns" -o link show dev "$dev" | sed -n 's/.*link\/ether \([0-9a-f:]\{17\}\).*/\1/p')
    [[ -n $mac ]] || { echo "cannot read the MAC of $dev in $ns" >&2; return 1; }
    printf '%s\n' "$mac"
}

# wait_tcp_listen NS PORT TIMEOUT_SECS — wait until something listens on PORT.
wait_tcp_listen() {
    local ns=$1 port=$2 timeout=$3 i
    for ((i = 0; i < timeout * 10; i++)); do
        if ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# pid_stop PID [GRACE_SECS] — SIGTERM one process started by the caller, wait
# up to GRACE_SECS (default 5) for it to exit, then SIGKILL it. Reaps it when
# it is a child of this shell. No-op if PID is empty or not running.
pid_stop() {
    local pid=$1 grace=${2:-5} i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
}

# wg_socket NAME — the wireguard-go control socket of interface NAME. It is
# a file in the root file system, so it is shared by all namespaces.
wg_socket() {
    printf '/var/run/wireguard/%s.sock\n' "$1"
}

# wg_ifname PREFIX — a WireGuard interface name unique to a lab prefix and
# at most 15 characters ("wgp" + 8 hex digits of a checksum of PREFIX), so a
# later run with the same prefix (or --teardown) finds an earlier run's
# leftover socket, and concurrent labs with distinct prefixes do not clash.
wg_ifname() {
    local sum
    sum=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
    printf 'wgp%08x\n' "$sum"
}

# wg_wait_socket NAME PID TIMEOUT_SECS — wait until wireguard-go (PID) has
# created its control socket; fail early if PID exits.
wg_wait_socket() {
    local name=$1 pid=$2 timeout=$3 sock i
    sock=$(wg_socket "$name")
    for ((i = 0; i < timeout * 10; i++)); do
        [[ -S $sock ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# if_bytes NS DEV — print DEV's byte counters as "RX_BYTES TX_BYTES" (the
# kernel's /sys/class/net/DEV/statistics, as seen inside NS).
if_bytes() {
    local ns=$1 dev=$2 out
    out=$(ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/rx_bytes" \
        "/sys/class/net/$dev/statistics/tx_bytes" 2>/dev/null) \
        || { echo "cannot read the counters of $dev in $ns" >&2; return 1; }
    printf '%s\n' "$out" | paste -sd' '
}

# netem_apply NS DEV ARGS... — replace DEV's root qdisc with netem ARGS
# (e.g. delay 40ms 10ms loss 3%).
netem_apply() {
    local ns=$1 dev=$2
    shift 2
    ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true
    ip netns exec "$ns" tc qdisc add dev "$dev" root netem "$@"
}

# netem_available NS — whether this kernel has the netem qdisc (tried on a
# throw-away dummy link in NS).
netem_available() {
    local ns=$1 ok=1
    ip -n "$ns" link add wanem-probe type dummy 2>/dev/null || return 1
    ip netns exec "$ns" tc qdisc add dev wanem-probe root netem delay 1ms 2>/dev/null && ok=0
    ip -n "$ns" link del wanem-probe 2>/dev/null || true
    return $ok
}

# wanem_splice NS DEV SPEC FIFO LOG [WANEM ARGS...] — impair what DEV sends
# (netem on DEV's egress) without netem: DEV's addresses move to a new veth
# DEVr, whose peer DEVi is bridged to DEV by scripts/lib/wanem.py applying
# SPEC on the way out of DEV. Prints wanem's pid. New specs can be written
# to FIFO. Further arguments go to wanem (e.g. --watch-udp 4790).
wanem_splice() {
    local ns=$1 dev=$2 spec=$3 fifo=$4 logfile=$5 addr pid
    shift 5
    local inner=${dev}i outer=${dev}r
    ip -n "$ns" link add "$inner" type veth peer name "$outer" || return 1
    for addr in $(ip -n "$ns" -o -4 addr show dev "$dev" | awk '{print $4}'); do
        ip -n "$ns" addr del "$addr" dev "$dev"
        ip -n "$ns" addr add "$addr" dev "$outer"
    done
    local i
    for i in "$dev" "$inner" "$outer"; do
        # wanem forwards whole frames: no GRO/GSO super-frames, real checksums.
        ip netns exec "$ns" ethtool -K "$i" gro off gso off tso off tx off >/dev/null 2>&1 || true
        ip -n "$ns" link set "$i" up
    done
    ip -n "$ns" link set "$dev" promisc on
    ip -n "$ns" link set "$inner" promisc on
    ip netns exec "$ns" python3 "$(dirname "${BASH_SOURCE[0]}")/wanem.py" \
        --a "$dev" --b "$inner" --impair ba --spec "$spec" --control "$fifo" "$@" \
        >"$logfile" 2>&1 &
    pid=$!
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || { cat "$logfile" >&2; return 1; }
    echo "$pid"
}
