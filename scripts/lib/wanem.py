#!/usr/bin/env python3
"""wanem: a user-space WAN impairment bridge, for kernels without sch_netem.

The lab impairs a path with tc netem where the kernel has it. Some kernels
(this project's CI machines among them) ship without sch_netem, and without
fq or prio either, so nothing in tc can add delay. wanem does the part of
netem the lab needs, in user space: it bridges two interfaces at layer 2
with AF_PACKET sockets and applies, to each direction separately,

  delay D [J]   a fixed one-way delay D plus a uniform jitter in [-J, +J]
                (clamped at 0). Packets keep their order: a packet never
                leaves before the one received ahead of it, as on a real
                link (netem reorders with jitter unless told not to).
  loss P%       independent random loss
  rate R        serialisation at R (e.g. 10mbit, 1gbit, 500kbit)
  limit N       at most N packets queued per direction (default 1000, as
                netem); more are dropped
  down          drop everything (a failed link); "up" undoes it

The spec uses netem's words, so LAB_NETEM="delay 40ms 10ms loss 3%" means
the same with either. It can be changed while running: write a new spec
as one line to the control FIFO (--control), e.g. `echo down > FIFO`.
Counters are printed to stderr on SIGUSR1 and at exit.

Ground truth. A node's SLA estimator can only be checked against what the
path really did to its probes, and only wanem knows that. With
--watch-udp PORT it keeps, per direction, the fate of every IPv4 UDP frame
to that destination port: how many came in, how many it dropped and why,
and for each one it sent, the transit time it really imposed (the time
flush sent it minus the time it was read, so scheduling lateness counts),
from which it derives the mean/min/max, the RFC 3550 interarrival jitter
and the mean |IPDV|. It keeps them for the direction as a whole and per
flow ("SRC>DST KIND", KIND being req or rep for Patronus SLA probes, by
their "PS" header, else udp): a node's requests and its peer's replies
share a direction, and the jitter of two interleaved streams is nobody's.
Two more control lines use them:

  stats-reset   start the watched statistics afresh (the spec stays)
  stats PATH    write them as one JSON object to PATH (via PATH.tmp and a
                rename, so a reader never sees half a file)

Speed is that of a Python loop (tens of thousands of packets per second),
enough for pings, probes and a modest iperf3 through an impaired path;
unimpaired paths do not go through wanem at all.
"""

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
MAX_FRAME = 65536
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
IPPROTO_UDP = 17
SPEC_WORDS = ("delay", "loss", "rate", "limit", "down", "up")
PROBE_MAGIC = b"PS"  # Patronus SLA probe (control/src/sla/probe.rs); byte 3 is the type
PROBE_KINDS = {1: "req", 2: "rep"}
MAX_FLOWS = 256  # per direction; later flows are pooled, so a flood cannot grow memory
OVERFLOW_FLOW = "(other flows)"


class SpecError(ValueError):
    pass


class ControlError(ValueError):
    """A control line that is neither a spec nor a known command."""


def parse_time(word):
    units = (("us", 1e-6), ("ms", 1e-3), ("s", 1.0))
    for suffix, scale in units:
        if word.endswith(suffix) and word[: -len(suffix)]:
            try:
                value = float(word[: -len(suffix)])
            except ValueError:
                break
            if value < 0:
                break
            return value * scale
    raise SpecError(f"'{word}' is not a time (use e.g. 40ms, 500us, 1s)")


def parse_rate(word):
    units = (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0))
    lower = word.lower()
    for suffix, scale in units:
        if lower.endswith(suffix) and lower[: -len(suffix)]:
            try:
                value = float(lower[: -len(suffix)])
            except ValueError:
                break
            if value <= 0:
                break
            return value * scale
    raise SpecError(f"'{word}' is not a rate (use e.g. 10mbit, 1gbit)")


def parse_spec(text):
    """A netem-like spec → dict. Raises SpecError naming the bad word."""
    spec = {"delay": 0.0, "jitter": 0.0, "loss": 0.0, "rate": None, "limit": 1000, "down": False}
    words = text.split()
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w == "delay":
            if nxt is None:
                raise SpecError("'delay' needs a time")
            spec["delay"] = parse_time(nxt)
            i += 2
            if i < len(words) and words[i][0].isdigit():
                spec["jitter"] = parse_time(words[i])
                i += 1
        elif w == "loss":
            if nxt is None or not nxt.endswith("%"):
                raise SpecError("'loss' needs a percentage, e.g. loss 3%")
            try:
                p = float(nxt[:-1])
            except ValueError:
                raise SpecError(f"'{nxt}' is not a percentage") from None
            if not 0 <= p <= 100:
                raise SpecError(f"loss {nxt} is outside 0% to 100%")
            spec["loss"] = p / 100.0
            i += 2
        elif w == "rate":
            if nxt is None:
                raise SpecError("'rate' needs a rate")
            spec["rate"] = parse_rate(nxt)
            i += 2
        elif w == "limit":
            if nxt is None or not nxt.isdigit() or int(nxt) == 0:
                raise SpecError("'limit' needs a positive packet count")
            spec["limit"] = int(nxt)
            i += 2
        elif w == "down":
            spec["down"] = True
            i += 1
        elif w == "up":
            spec["down"] = False
            i += 1
        else:
            raise SpecError(f"unknown word '{w}' (know: delay, loss, rate, limit, down, up)")
    return spec


CLEAN = parse_spec("")
DOWN = parse_spec("down")


def parse_control(text):
    """One control-FIFO line → ("spec", spec) | ("stats", path) | ("stats-reset", None).

    A line is a command only when its first word is one; everything else,
    the empty line included (= no impairment), is a spec as before, so
    existing writers of specs are unaffected. Raises SpecError or
    ControlError naming what is wrong.
    """
    words = text.split(None, 1)
    first = words[0] if words else ""
    if first == "stats-reset":
        if len(words) > 1:
            raise ControlError(f"'stats-reset' takes nothing, got '{words[1]}'")
        return ("stats-reset", None)
    if first == "stats":
        if len(words) < 2:
            raise ControlError("'stats' needs a file to write, e.g. stats /tmp/wanem.json")
        return ("stats", words[1].strip())
    if first and first not in SPEC_WORDS:
        raise ControlError(
            f"unknown command '{first}' (know: stats PATH, stats-reset, or a spec of {', '.join(SPEC_WORDS)})"
        )
    return ("spec", parse_spec(text))


def udp_offsets(frame):
    """(IPv4 header offset, UDP header offset) of an Ethernet [802.1Q] IPv4
    UDP frame, else None.

    Checked in order of what is cheapest to reject, so the frames nobody
    watches (most of them under iperf) cost a length test and one or two
    byte compares. Non-first fragments carry no UDP header and are not
    UDP as far as watching goes; a short or malformed frame is simply
    not UDP.
    """
    n = len(frame)
    if n < 42:  # 14 Ethernet + 20 IPv4 + 8 UDP
        return None
    ethertype = (frame[12] << 8) | frame[13]
    ip = 14
    if ethertype == ETHERTYPE_VLAN:
        ethertype = (frame[16] << 8) | frame[17]
        ip = 18
    if ethertype != ETHERTYPE_IPV4 or n < ip + 28:
        return None
    version_ihl = frame[ip]
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20 or frame[ip + 9] != IPPROTO_UDP:
        return None
    if (frame[ip + 6] & 0x1F) or frame[ip + 7]:  # fragment offset ≠ 0
        return None
    udp = ip + ihl
    if n < udp + 8:
        return None
    return ip, udp


def udp_dst_port(frame):
    """The UDP destination port of an Ethernet [802.1Q] IPv4 UDP frame, else None."""
    offsets = udp_offsets(frame)
    if offsets is None:
        return None
    udp = offsets[1]
    return (frame[udp + 2] << 8) | frame[udp + 3]


def watched_flow(frame, port):
    """The flow key "SRC>DST KIND" of a frame to UDP `port`, else None.

    KIND is req or rep for a Patronus SLA probe, told by its header, and
    udp for anything else to that port.
    """
    offsets = udp_offsets(frame)
    if offsets is None:
        return None
    ip, udp = offsets
    if ((frame[udp + 2] << 8) | frame[udp + 3]) != port:
        return None
    payload = udp + 8
    kind = "udp"
    if frame[payload : payload + 2] == PROBE_MAGIC and len(frame) > payload + 3:
        kind = PROBE_KINDS.get(frame[payload + 3], "udp")
    src = ".".join(str(b) for b in frame[ip + 12 : ip + 16])
    dst = ".".join(str(b) for b in frame[ip + 16 : ip + 20])
    return f"{src}>{dst} {kind}"


def _ms(seconds):
    return None if seconds is None else round(seconds * 1e3, 6)


class WatchStats:
    """What one direction really did to the watched packets: the ground truth.

    Kept apart from the bridge and its sockets and fed plain numbers
    (seconds), so tests can drive it with synthetic transit sequences.
    `epoch` changes on every reset; a packet queued before a reset and
    sent after it belongs to neither period and is left out, so
    received = sent + dropped + in flight holds in every period.
    `dropped` is every watched packet that went in and never came out:
    lost, down and overflow as the spec decided, and tx_error where the
    kernel refused the send (none in a healthy lab).
    """

    DROP_KINDS = ("lost", "down", "overflow", "tx_error")

    def __init__(self):
        self.epoch = 0
        self.reset()

    def reset(self):
        self.epoch += 1
        self.received = 0
        self.sent = 0
        self.drops = dict.fromkeys(self.DROP_KINDS, 0)
        self.transit_sum = 0.0
        self.transit_min = None
        self.transit_max = None
        self.prev_transit = None
        self.jitter = 0.0  # RFC 3550 J, seconds
        self.jitter_sum = 0.0  # of J after each update, for its mean
        self.ipdv_abs_sum = 0.0
        self.deltas = 0  # updates of J = transits with a predecessor

    def on_received(self):
        self.received += 1

    def on_dropped(self, kind):
        self.drops[kind] += 1

    def on_sent(self, transit):
        """One watched packet left after `transit` seconds in wanem.

        J follows RFC 3550 §6.4.1: J += (|D| - J)/16 with D the difference
        of consecutive transits; the first packet after a reset has no
        predecessor and leaves J alone.
        """
        self.sent += 1
        self.transit_sum += transit
        if self.transit_min is None or transit < self.transit_min:
            self.transit_min = transit
        if self.transit_max is None or transit > self.transit_max:
            self.transit_max = transit
        if self.prev_transit is not None:
            d = abs(transit - self.prev_transit)
            self.jitter += (d - self.jitter) / 16.0
            self.jitter_sum += self.jitter
            self.ipdv_abs_sum += d
            self.deltas += 1
        self.prev_transit = transit

    def snapshot(self):
        """The JSON-ready view, times in ms; null where there is no sample yet."""
        dropped = sum(self.drops.values())
        return {
            "received": self.received,
            "sent": self.sent,
            "dropped": dropped,
            **self.drops,
            "in_flight": self.received - self.sent - dropped,
            "loss_pct": dropped / self.received * 100.0 if self.received else None,
            "transit_mean_ms": _ms(self.transit_sum / self.sent) if self.sent else None,
            "transit_min_ms": _ms(self.transit_min),
            "transit_max_ms": _ms(self.transit_max),
            "jitter_ms": _ms(self.jitter) if self.deltas else None,
            "jitter_avg_ms": _ms(self.jitter_sum / self.deltas) if self.deltas else None,
            "ipdv_abs_mean_ms": _ms(self.ipdv_abs_sum / self.deltas) if self.deltas else None,
        }


class Direction:
    """One way through the bridge: its queue, link clock and counters.

    Watched frames are accounted twice, in `watch` (the direction) and in
    `flows[key]`. `clock` is read only to time the real departure of
    watched frames; tests pass a fake one, with a fake `tx` that has a
    send().
    """

    def __init__(self, key, name, rx, tx, watch_port=None, clock=time.monotonic):
        self.key = key
        self.name = name
        self.rx = rx
        self.tx = tx
        self.watch_port = watch_port
        self.clock = clock
        # heap of (departure, seq, frame, flow stats if watched else None, received at, watch epoch)
        self.queue = []
        self.seq = 0
        self.last_departure = 0.0
        self.link_free = 0.0
        self.counters = {"received": 0, "sent": 0, "lost": 0, "down": 0, "overflow": 0, "tx_error": 0}
        self.watch = WatchStats()
        self.flows = {}

    def reset_watch(self):
        self.watch.reset()  # new epoch: what is queued now is left out
        self.flows = {}

    def watch_snapshot(self):
        """The direction's watched stats, with its flows under "flows"."""
        doc = self.watch.snapshot()
        doc["flows"] = {key: stats.snapshot() for key, stats in sorted(self.flows.items())}
        return doc

    def _flow_stats(self, frame):
        key = watched_flow(frame, self.watch_port)
        if key is None:
            return None
        stats = self.flows.get(key)
        if stats is None:
            if len(self.flows) >= MAX_FLOWS:
                key = OVERFLOW_FLOW
                stats = self.flows.get(key)
            if stats is None:
                stats = self.flows[key] = WatchStats()
        return stats

    def _drop(self, kind, flow):
        self.counters[kind] += 1
        if flow is not None:
            self.watch.on_dropped(kind)
            flow.on_dropped(kind)

    def receive(self, frame, spec, now, rng):
        self.counters["received"] += 1
        flow = None if self.watch_port is None else self._flow_stats(frame)
        if flow is not None:
            self.watch.on_received()
            flow.on_received()
        if spec["down"]:
            self._drop("down", flow)
            return
        if spec["loss"] and rng.random() < spec["loss"]:
            self._drop("lost", flow)
            return
        if len(self.queue) >= spec["limit"]:
            self._drop("overflow", flow)
            return
        delay = spec["delay"]
        if spec["jitter"]:
            delay = max(0.0, delay + rng.uniform(-spec["jitter"], spec["jitter"]))
        departure = now + delay
        if spec["rate"]:
            start = max(now, self.link_free)
            self.link_free = start + len(frame) * 8 / spec["rate"]
            departure = max(departure, self.link_free)
        departure = max(departure, self.last_departure)
        self.last_departure = departure
        self.seq += 1
        heapq.heappush(self.queue, (departure, self.seq, frame, flow, now, self.watch.epoch))

    def flush(self, now):
        while self.queue and self.queue[0][0] <= now:
            _, _, frame, flow, received_at, epoch = heapq.heappop(self.queue)
            try:
                self.tx.send(frame)
                self.counters["sent"] += 1
            except OSError:
                self.counters["tx_error"] += 1
                if flow is not None and epoch == self.watch.epoch:
                    self.watch.on_dropped("tx_error")
                    flow.on_dropped("tx_error")
                continue
            if flow is not None and epoch == self.watch.epoch:
                # The real departure, not `now`: frames sent earlier in this
                # flush took time, and that is part of what the nodes see.
                transit = self.clock() - received_at
                self.watch.on_sent(transit)
                flow.on_sent(transit)

    def next_departure(self):
        return self.queue[0][0] if self.queue else None


def stats_document(ab, ba, a, b, spec_text, since_reset_s):
    """The `stats PATH` JSON object: both directions plus what they ran under."""
    return {
        "ab": ab.watch_snapshot(),
        "ba": ba.watch_snapshot(),
        "a": a,
        "b": b,
        "spec": spec_text,
        "since_reset_s": round(since_reset_s, 6),
    }


def write_json_atomic(path, obj):
    """Write obj to path via path.tmp and a rename: a reader polling for the
    file sees either nothing or all of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def udp_port(text):
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


class StoreOnce(argparse.Action):
    """An option that may be given at most once (wanem watches one port)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)} and {values}); watch one port")
        setattr(namespace, self.dest, values)


def open_port(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="first interface")
    ap.add_argument("--b", required=True, help="second interface")
    ap.add_argument("--spec", default="", help="impairment, netem words (default: none)")
    ap.add_argument("--control", help="a FIFO to read new specs from, one per line")
    ap.add_argument(
        "--impair",
        choices=("both", "ab", "ba"),
        default="both",
        help="which way the spec applies: both, a->b only, or b->a only "
        "(netem on one interface's egress is 'ba' with --a that interface)",
    )
    ap.add_argument("--seed", type=int, default=None, help="random seed (loss, jitter)")
    ap.add_argument(
        "--down-both",
        action="store_true",
        help="'down' drops both ways whatever --impair says: a failed link "
        "is down both ways, while delay and loss stay one-way as netem's",
    )
    ap.add_argument(
        "--watch-udp",
        metavar="PORT",
        type=udp_port,
        action=StoreOnce,
        default=None,
        help="keep ground-truth statistics (loss, transit, jitter) for IPv4 UDP "
        "frames to this destination port; read them with 'stats PATH' on the FIFO",
    )
    args = ap.parse_args()

    try:
        spec = parse_spec(args.spec)
    except SpecError as e:
        print(f"wanem: bad spec '{args.spec}': {e}", file=sys.stderr)
        return 2
    try:
        port_a, port_b = open_port(args.a), open_port(args.b)
    except OSError as e:
        print(f"wanem: cannot open {args.a}/{args.b}: {e}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    ab = Direction("ab", f"{args.a}->{args.b}", port_a, port_b, args.watch_udp)
    ba = Direction("ba", f"{args.b}->{args.a}", port_b, port_a, args.watch_udp)
    spec_text = args.spec
    reset_at = time.monotonic()
    by_socket = {port_a.fileno(): ab, port_b.fileno(): ba}

    control = None
    if args.control:
        if not os.path.exists(args.control):
            os.mkfifo(args.control, 0o600)
        # Opened read-write so the FIFO never reports end-of-file between writers.
        control = os.open(args.control, os.O_RDWR | os.O_NONBLOCK)
    pending_control = b""

    def report(*_):
        for d in (ab, ba):
            c = " ".join(f"{k}={v}" for k, v in d.counters.items())
            print(f"wanem: {d.name}: {c} queued={len(d.queue)}", file=sys.stderr, flush=True)
            if args.watch_udp is not None:
                w = " ".join(f"{k}={v}" for k, v in d.watch.snapshot().items())
                print(f"wanem: {d.name}: udp/{args.watch_udp}: {w}", file=sys.stderr, flush=True)
                for key, stats in sorted(d.flows.items()):
                    w = " ".join(f"{k}={v}" for k, v in stats.snapshot().items())
                    print(f"wanem: {d.name}: {key}: {w}", file=sys.stderr, flush=True)

    stop = []
    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print(
        f"wanem: bridging {args.a} <-> {args.b}: '{args.spec or 'no impairment'}' ({args.impair})",
        file=sys.stderr,
        flush=True,
    )

    watch = [port_a, port_b] + ([control] if control is not None else [])
    while not stop:
        now = time.monotonic()
        deadlines = [d for d in (ab.next_departure(), ba.next_departure()) if d is not None]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 0.5
        try:
            ready, _, _ = select.select(watch, [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for r in ready:
            if r is control:
                try:
                    pending_control += os.read(control, 4096)
                except BlockingIOError:
                    pass
                while b"\n" in pending_control:
                    line, pending_control = pending_control.split(b"\n", 1)
                    text = line.decode(errors="replace").strip()
                    try:
                        command, value = parse_control(text)
                    except SpecError as e:
                        print(f"wanem: ignored bad spec '{text}': {e}", file=sys.stderr, flush=True)
                        continue
                    except ControlError as e:
                        print(f"wanem: ignored '{text}': {e}", file=sys.stderr, flush=True)
                        continue
                    if command == "spec":
                        spec, spec_text = value, text
                        print(f"wanem: now '{text or 'no impairment'}'", file=sys.stderr, flush=True)
                    elif command == "stats-reset":
                        ab.reset_watch()
                        ba.reset_watch()
                        reset_at = time.monotonic()
                        print("wanem: watched stats reset", file=sys.stderr, flush=True)
                    elif command == "stats":
                        doc = stats_document(ab, ba, args.a, args.b, spec_text, time.monotonic() - reset_at)
                        try:
                            write_json_atomic(value, doc)
                        except OSError as e:
                            print(f"wanem: cannot write stats to '{value}': {e}", file=sys.stderr, flush=True)
                continue
            direction = by_socket[r.fileno()]
            applied = spec if args.impair in ("both", direction.key) else CLEAN
            if args.down_both and spec["down"]:
                applied = DOWN
            # Drain what is there now, up to a bound so the other side gets a turn.
            for _ in range(256):
                try:
                    frame, addr = r.recvfrom(MAX_FRAME)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own transmissions, seen on the way out
                direction.receive(frame, applied, now, rng)
        ab.flush(now)
        ba.flush(now)
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
