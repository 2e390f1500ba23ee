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

Speed is that of a Python loop (tens of thousands of packets per second),
enough for pings, probes and a modest iperf3 through an impaired path;
unimpaired paths do not go through wanem at all.
"""

import argparse
import heapq
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


class SpecError(ValueError):
    pass


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


class Direction:
    """One way through the bridge: its queue, link clock and counters."""

    def __init__(self, key, name, rx, tx):
        self.key = key
        self.name = name
        self.rx = rx
        self.tx = tx
        self.queue = []  # heap of (departure, seq, frame)
        self.seq = 0
        self.last_departure = 0.0
        self.link_free = 0.0
        self.counters = {"received": 0, "sent": 0, "lost": 0, "down": 0, "overflow": 0, "tx_error": 0}

    def receive(self, frame, spec, now, rng):
        self.counters["received"] += 1
        if spec["down"]:
            self.counters["down"] += 1
            return
        if spec["loss"] and rng.random() < spec["loss"]:
            self.counters["lost"] += 1
            return
        if len(self.queue) >= spec["limit"]:
            self.counters["overflow"] += 1
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
        heapq.heappush(self.queue, (departure, self.seq, frame))

    def flush(self, now):
        while self.queue and self.queue[0][0] <= now:
            _, _, frame = heapq.heappop(self.queue)
            try:
                self.tx.send(frame)
                self.counters["sent"] += 1
            except OSError:
                self.counters["tx_error"] += 1

    def next_departure(self):
        return self.queue[0][0] if self.queue else None


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
    ab = Direction("ab", f"{args.a}->{args.b}", port_a, port_b)
    ba = Direction("ba", f"{args.b}->{args.a}", port_b, port_a)
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
                        spec = parse_spec(text)
                        print(f"wanem: now '{text or 'no impairment'}'", file=sys.stderr, flush=True)
                    except SpecError as e:
                        print(f"wanem: ignored bad spec '{text}': {e}", file=sys.stderr, flush=True)
                continue
            direction = by_socket[r.fileno()]
            applied = spec if args.impair in ("both", direction.key) else CLEAN
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
