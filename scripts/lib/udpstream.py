#!/usr/bin/env python3
"""udpstream: a steady, numbered UDP stream, for measuring failover outages.

A failover test needs to know how long traffic really stopped, not how long
the nodes think it did. A sender puts one numbered datagram on the wire
every interval and records when it sent each one; the receiver records
which numbers arrived. A run of missing numbers is then an outage whose
length is read off the sender's clock (scripts/lib/sla_check.py failover):
from the send time of the first lost packet to that of the first packet
delivered after it. Counting the missing numbers and multiplying by the
interval is only right while the sender keeps its schedule: on a loaded
machine it stalls (and sends nothing while the path may already be back)
and then catches up in a burst (N packets sent in far less than N
intervals), so the count is wrong both ways.

  udpstream.py send --dst IP:PORT --interval-us N --duration S [--size B] [--src IP] [--times PATH]
  udpstream.py recv --bind IP:PORT --report PATH [--idle-exit S] [--seen PATH]

The sender keeps an absolute schedule (packet i is due at start + i*interval)
so one late wake-up does not shift every later packet; whatever it finds
overdue it sends at once, and it reports how many sends were late and its
largest pause between two sends. Each payload carries a magic, a 64-bit
sequence number and the 64-bit CLOCK_MONOTONIC send time in ns; with sender
and receiver on the same host (network namespaces share that clock) the
receiver gets true one-way latencies. With --times the sender writes, when
it is done, the same send time of every sequence number it spent, from 0
in order, as little-endian unsigned 64-bit ns (8 bytes a packet, no
header; via PATH.tmp and a rename). A send that failed (no route while a
path is down) is in it at its time: the number was spent and is lost.

The receiver prints "udpstream: ready on IP:PORT" to stderr once bound (so a
script can wait for it, and learn the port when it asked for port 0), runs
until SIGTERM/SIGINT or --idle-exit seconds of silence after the first
packet, then reads what is already queued on its socket (a receiver that
was descheduled at the stop would otherwise lose the stream's tail), and
writes its JSON report to PATH (via PATH.tmp and a rename) and to stdout.
With --seen it also writes which numbers arrived, as JSON
{"first_seq": F, "last_seq": L, "missing": [[a, b], ...]}: every number
from F to L arrived except the inclusive runs a..b (F and L null when
nothing did). The receiver cannot see losses before the first or after
the last packet it got; the sender's `attempted` count and --times close
that hole.

Python stdlib only.
"""

import argparse
import array
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import sys
import time

MAGIC = b"PUS1"
HEADER = struct.Struct("!4sQQ")  # magic, sequence number, send time (monotonic ns)
MAX_UDP_PAYLOAD = 65507
SPIN_NS = 300_000  # sleep until this close to a deadline, then spin: sleep() overshoots
RCVBUF = 4 << 20  # a receiver descheduled for a while must not lose what is queued
MAX_SPAN = 1 << 26  # sequence numbers tracked at once (one byte each, grown on demand)
LOSS_RUN = re.compile(rb"\x00+")
DRAIN_NS = 1_000_000_000  # at most this long reading what is queued at the stop


# ---------------------------------------------------------------- arguments


def endpoint(text, allow_port_zero=False):
    """IP:PORT or [IPv6]:PORT → (ip, port), an argparse type."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"'{text}' is not IP:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{host}' in '{text}' is not an IP address") from None
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{port_text}' in '{text}' is not a port number") from None
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} in '{text}' is outside {low}-65535")
    return (str(ip), port)


def bind_endpoint(text):
    return endpoint(text, allow_port_zero=True)


def ip_address(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an IP address") from None


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number")
    return value


def payload_size(text):
    value = positive_int(text)
    if not HEADER.size <= value <= MAX_UDP_PAYLOAD:
        raise argparse.ArgumentTypeError(f"size {value} is outside {HEADER.size}-{MAX_UDP_PAYLOAD} bytes")
    return value


def family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def write_json_atomic(path, obj, indent=1):
    """A reader polling for PATH sees either nothing or the whole report."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")
    os.replace(tmp, path)


class Stop:
    """Set by SIGTERM/SIGINT; the loops look at it between packets so the
    report is always written from consistent state."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_):
        self.requested = True


# ------------------------------------------------------------- file formats


def write_send_times(path, times):
    """--times: the send time of every sequence number from 0 on, in order,
    as little-endian u64 CLOCK_MONOTONIC ns (8 bytes a packet, no header)."""
    data = array.array("Q", times)
    if sys.byteorder != "little":
        data.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        data.tofile(f)
    os.replace(tmp, path)


def read_send_times(path):
    """The --times file as an array of ints; ValueError says what is wrong
    with it (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:
        raise ValueError("it is empty (the sender sent nothing)")
    if len(raw) % 8:
        raise ValueError(f"{len(raw)} bytes is not a whole number of 8-byte send times")
    times = array.array("Q")
    times.frombytes(raw)
    if sys.byteorder != "little":
        times.byteswap()
    for seq in range(1, len(times)):
        if times[seq] < times[seq - 1]:
            raise ValueError(f"send times go backwards at sequence {seq}: not a udpstream --times file")
    return times


def seen_document(base, top, seen):
    """--seen: which sequence numbers arrived, as the range from the lowest
    to the highest one seen and the runs missing inside it (inclusive)."""
    if base is None:
        return {"first_seq": None, "last_seq": None, "missing": []}
    window = bytes(seen[: top - base + 1])
    return {
        "first_seq": base,
        "last_seq": top,
        "missing": [[base + m.start(), base + m.end() - 1] for m in LOSS_RUN.finditer(window)],
    }


def read_seen(path):
    """The --seen file as (first_seq, last_seq, [(first, last) missing]);
    first_seq is None when nothing arrived. ValueError says what is wrong."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not {"first_seq", "last_seq", "missing"} <= set(doc):
        raise ValueError("not a udpstream --seen file (wants first_seq, last_seq, missing)")
    first, last, missing = doc["first_seq"], doc["last_seq"], doc["missing"]

    def whole(x):
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    if first is None and last is None:
        if missing:
            raise ValueError("missing runs without any sequence number seen")
        return None, None, []
    if not (whole(first) and whole(last) and first <= last):
        raise ValueError(f"first_seq {first!r} and last_seq {last!r} are not a range of sequence numbers")
    if not isinstance(missing, list):
        raise ValueError("missing is not a list")
    runs = []
    after = first  # the next run must start beyond this
    for run in missing:
        if not (isinstance(run, list) and len(run) == 2 and whole(run[0]) and whole(run[1])):
            raise ValueError(f"missing run {run!r} is not [first, last]")
        a, b = run
        if not after < a <= b < last:
            raise ValueError(f"missing run {run!r} is out of order or outside {first}-{last}")
        runs.append((a, b))
        after = b + 1
    return first, last, runs


# ------------------------------------------------------------------- sender


class SendLog:
    """The sender's account of its own schedule, kept apart from the socket.

    A send counts as late when it left more than half an interval after its
    due time: from then on it is closer to the next slot than to its own,
    and the receiver would misread the burst as a gap.
    """

    def __init__(self, interval_ns):
        self.interval_ns = interval_ns
        self.late_threshold_ns = interval_ns // 2
        self.attempted = 0
        self.sent = 0
        self.send_errors = 0
        self.late_sends = 0
        self.worst_late_ns = 0
        self.last_at_ns = None
        self.largest_pause_ns = 0  # longest time between two consecutive sends
        self.largest_pause_after_seq = None

    def on_send(self, due_ns, at_ns, ok):
        if self.last_at_ns is not None and at_ns - self.last_at_ns > self.largest_pause_ns:
            self.largest_pause_ns = at_ns - self.last_at_ns
            self.largest_pause_after_seq = self.attempted - 1
        self.last_at_ns = at_ns
        self.attempted += 1
        if ok:
            self.sent += 1
        else:
            self.send_errors += 1
        late = at_ns - due_ns
        if late > self.worst_late_ns:
            self.worst_late_ns = late
        if late > self.late_threshold_ns:
            self.late_sends += 1


def run_send(args):
    interval_ns = args.interval_us * 1000
    duration_ns = int(args.duration * 1e9)
    count = max(1, -(-duration_ns // interval_ns))  # packets due in [start, start + duration)
    ip, port = args.dst
    try:
        sock = socket.socket(family_of(ip), socket.SOCK_DGRAM)
        if args.src:
            sock.bind((args.src, 0))
    except OSError as e:
        print(f"udpstream: cannot bind to {args.src}: {e}", file=sys.stderr)
        return 2
    stop = Stop()
    log = SendLog(interval_ns)
    times = array.array("Q") if args.times else None
    buf = bytearray(args.size)
    clock = time.monotonic_ns
    start = clock()
    for seq in range(count):
        if stop.requested:
            break
        due = start + seq * interval_ns
        wait = due - clock()
        if wait > SPIN_NS:
            time.sleep((wait - SPIN_NS) / 1e9)
        while clock() < due:
            pass
        at = clock()
        HEADER.pack_into(buf, 0, MAGIC, seq, at)
        try:
            sock.sendto(buf, (ip, port))
            ok = True
        except OSError:
            # No route while a path is down is part of the outage: the
            # number is spent and shows as lost at the receiver.
            ok = False
        log.on_send(due, at, ok)
        if times is not None:
            times.append(at)
    elapsed = (clock() - start) / 1e9
    status = 0
    if times is not None:
        try:
            write_send_times(args.times, times)
        except OSError as e:
            print(f"udpstream: cannot write send times to '{args.times}': {e}", file=sys.stderr)
            status = 1
    print(
        json.dumps(
            {
                "sent": log.sent,
                "attempted": log.attempted,
                "send_errors": log.send_errors,
                "last_seq": log.attempted - 1 if log.attempted else None,
                "interval_us": args.interval_us,
                "duration_s": args.duration,
                "elapsed_s": round(elapsed, 6),
                "late_sends": log.late_sends,
                "worst_late_ms": round(log.worst_late_ns / 1e6, 6),
                "largest_pause_ms": round(log.largest_pause_ns / 1e6, 6),
                "largest_pause_after_seq": log.largest_pause_after_seq,
                "stopped_early": log.attempted < count,
            }
        ),
        flush=True,
    )
    return status


# ----------------------------------------------------------------- receiver


class StreamStats:
    """What arrived, in sequence and in time: fed (seq, sent_ns, recv_ns),
    no I/O, so tests drive it with synthetic arrivals.

    Seen numbers are one byte each in a bytearray from the lowest number
    seen (`base`); loss runs are then found by a regex over it at report
    time, which costs next to nothing for 100k+ packets.
    """

    def __init__(self):
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.invalid = 0
        self.base = None  # lowest seq seen; seen[i] is seq base+i
        self.top = None  # highest seq seen
        self.seen = bytearray()
        self.first_arrival = None
        self.last_arrival = None
        self.last_seq_arrived = None
        self.gap_ns = None
        self.gap_start = None
        self.gap_after_seq = None
        self.latency_sum = 0
        self.latency_min = None
        self.latency_max = None

    def _slot(self, seq):
        """Index of seq in `seen`, growing or rebasing it; None if out of reach."""
        if self.base is None:
            self.base = self.top = seq
            self.seen = bytearray(1024)
            return 0
        if seq < self.base:
            shift = self.base - seq
            if self.top - seq >= MAX_SPAN:
                return None
            self.seen[0:0] = bytes(shift)  # rare: only reordering around the first packet
            self.base = seq
            return 0
        index = seq - self.base
        if index >= len(self.seen):
            if index >= MAX_SPAN:
                return None
            self.seen.extend(bytes(min(MAX_SPAN, max(index + 1, 2 * len(self.seen))) - len(self.seen)))
        return index

    def add(self, seq, sent_ns, recv_ns):
        index = self._slot(seq)
        if index is None:
            self.invalid += 1
            return
        self.received += 1
        if self.seen[index]:
            self.duplicates += 1
        else:
            self.seen[index] = 1
            if seq < self.top:
                self.reordered += 1
        if seq > self.top:
            self.top = seq

        if self.last_arrival is None:
            self.first_arrival = recv_ns
        else:
            gap = recv_ns - self.last_arrival
            if self.gap_ns is None or gap > self.gap_ns:
                self.gap_ns = gap
                self.gap_start = self.last_arrival
                self.gap_after_seq = self.last_seq_arrived
        self.last_arrival = recv_ns
        self.last_seq_arrived = seq

        latency = recv_ns - sent_ns
        self.latency_sum += latency
        if self.latency_min is None or latency < self.latency_min:
            self.latency_min = latency
        if self.latency_max is None or latency > self.latency_max:
            self.latency_max = latency

    def report(self):
        """The JSON-ready report; times in ms (gap start in s), null without data."""
        if self.base is None:
            window = b""
            expected = 0
        else:
            window = bytes(self.seen[: self.top - self.base + 1])
            expected = len(window)
        unique = window.count(1)
        runs = [m.end() - m.start() for m in LOSS_RUN.finditer(window)]

        def ms(ns):
            return None if ns is None else round(ns / 1e6, 6)

        return {
            "received": self.received,
            "unique": unique,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "invalid": self.invalid,
            "first_seq": self.base,
            "last_seq": self.top,
            "expected": expected,
            "lost": expected - unique,
            "loss_runs": len(runs),
            "longest_loss_run": max(runs, default=0),
            "longest_gap_ms": ms(self.gap_ns),
            "longest_gap_start_s": None
            if self.gap_start is None
            else round((self.gap_start - self.first_arrival) / 1e9, 6),
            "longest_gap_start_mono_s": None if self.gap_start is None else round(self.gap_start / 1e9, 6),
            "longest_gap_after_seq": self.gap_after_seq,
            "span_s": None
            if self.first_arrival is None
            else round((self.last_arrival - self.first_arrival) / 1e9, 6),
            "latency_mean_ms": ms(self.latency_sum / self.received) if self.received else None,
            "latency_min_ms": ms(self.latency_min),
            "latency_max_ms": ms(self.latency_max),
        }


def run_recv(args):
    ip, port = args.bind
    try:
        sock = socket.socket(family_of(ip), socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            pass  # the default buffer still works, only with less slack
        sock.bind((ip, port))
    except OSError as e:
        print(f"udpstream: cannot bind {ip}:{port}: {e}", file=sys.stderr)
        return 2
    stop = Stop()
    # Wake up now and then even without traffic, to notice a signal or silence.
    poll = min(0.1, args.idle_exit / 4) if args.idle_exit else 0.1
    sock.settimeout(poll)
    idle_ns = int(args.idle_exit * 1e9) if args.idle_exit else None
    bound = sock.getsockname()
    print(f"udpstream: ready on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)

    stats = StreamStats()
    buf = bytearray(65536)
    clock = time.monotonic_ns

    def take(n):
        now = clock()
        if n < HEADER.size or buf[:4] != MAGIC:
            stats.invalid += 1
            return
        _, seq, sent = HEADER.unpack_from(buf)
        stats.add(seq, sent, now)

    while not stop.requested:
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            if idle_ns and stats.last_arrival is not None and clock() - stats.last_arrival >= idle_ns:
                break
            continue
        except OSError:
            continue  # e.g. an ICMP error queued on the socket: not data
        take(n)
    # What is already queued arrived before the stop: a receiver that was
    # descheduled when SIGTERM came would otherwise report the stream's
    # last packets as lost.
    sock.setblocking(False)
    drain_until = clock() + DRAIN_NS
    while clock() < drain_until:
        try:
            n = sock.recv_into(buf)
        except BlockingIOError:
            break
        except OSError:
            continue
        take(n)

    report = stats.report()
    report["bind"] = f"{bound[0]}:{bound[1]}"
    status = 0
    if args.seen:
        try:
            write_json_atomic(args.seen, seen_document(stats.base, stats.top, stats.seen), indent=None)
        except OSError as e:
            print(f"udpstream: cannot write the seen sequence numbers to '{args.seen}': {e}", file=sys.stderr)
            status = 1
    try:
        write_json_atomic(args.report, report)
    except OSError as e:
        print(f"udpstream: cannot write report to '{args.report}': {e}", file=sys.stderr)
        print(json.dumps(report), flush=True)
        return 1
    print(json.dumps(report), flush=True)
    return status


# --------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True, metavar="{send,recv}")

    s = sub.add_parser("send", help="send a numbered stream on a fixed schedule")
    s.add_argument("--dst", required=True, type=endpoint, metavar="IP:PORT", help="where to send")
    s.add_argument("--interval-us", required=True, type=positive_int, metavar="N", help="one packet every N µs")
    s.add_argument("--duration", required=True, type=positive_float, metavar="S", help="seconds to send for")
    s.add_argument(
        "--size", type=payload_size, default=200, metavar="BYTES", help="UDP payload bytes (default 200)"
    )
    s.add_argument("--src", type=ip_address, metavar="IP", help="source address to send from")
    s.add_argument(
        "--times",
        metavar="PATH",
        help="write every packet's send time here at the end (little-endian u64 monotonic ns, one per sequence number)",
    )

    r = sub.add_parser("recv", help="receive a stream and report loss, gaps and latency")
    r.add_argument("--bind", required=True, type=bind_endpoint, metavar="IP:PORT", help="where to listen (port 0: any)")
    r.add_argument("--report", required=True, metavar="PATH", help="write the JSON report here at the end")
    r.add_argument(
        "--idle-exit",
        type=positive_float,
        metavar="S",
        help="stop after S seconds without packets, once one has come "
        "(make it longer than any outage you mean to measure)",
    )
    r.add_argument(
        "--seen",
        metavar="PATH",
        help="write which sequence numbers arrived here at the end (JSON: first_seq, last_seq, missing runs)",
    )

    args = ap.parse_args(argv)
    if args.mode == "send":
        if args.src and family_of(args.src) != family_of(args.dst[0]):
            ap.error(f"--src {args.src} and --dst {args.dst[0]} are different address families")
        return run_send(args)
    return run_recv(args)


if __name__ == "__main__":
    sys.exit(main())
