#!/usr/bin/env python3
"""sla_check: the checks of `scripts/lab --sites --sla SCENARIO`.

measure   A's and B's SLA figures for path 1 against wanem's own account of
          what it did to the probes on that path (the ground truth): added
          round-trip delay within 1 ms, per-direction jitter and loss within
          10 %; the voice policy off path 1 and the bulk policy on it.
steering  a UDP stream took the path its policy chose (the WAN router's
          nftables counters of the tunnel's packets on each path).
flap      no policy moved more than once, and none came back.
failover  the outage of a 1 ms UDP stream (udpstream.py) across a path
          failure, timed on the sender's clock, within a limit. For each
          run of sequence numbers that did not arrive, the send time of
          the first packet delivered after it minus that of its first
          lost packet; where the sender paused more than 5 intervals
          after the run's last lost packet, the switch came somewhere in
          that pause and the outage is the bracket [last lost - first
          lost, first delivered - first lost], whose lower end is held to
          the limit. The outage is the run with the largest such figure;
          one that reaches the end of the stream fails (traffic never came
          back). Lost count x interval, the old figure, is printed beside
          it: it is wrong whenever the sender stalls (it sends nothing
          while the path may be back) or catches up in a burst (N packets
          in far less than N intervals).

Each prints what it compared and exits 1 on a failed check, 2 on unusable
input (a missing line or file), naming it.
"""

import argparse
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # leave no __pycache__ in scripts/lib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import udpstream  # noqa: E402  (the --times and --seen file formats)

# "  sla site-B path 1 (wan1): up, rtt p50 .. mean M .. ms, jitter fwd F rev R
#  ms, ..., N sent, N replies, N lost (N forward), N dropped"
PATH_LINE = re.compile(
    r"^  sla (?P<peer>\S+) path (?P<path>\d+) \((?P<port>[^)]*)\): (?P<state>[^,]*), "
    r"(?:rtt p50 (?P<p50>[\d.]+) p95 (?P<p95>[\d.]+) p99 [\d.]+ mean (?P<mean>[\d.]+) .*? ms|rtt -), "
    r"jitter fwd (?P<jf>[\d.]+|-) rev (?P<jr>[\d.]+|-) ms, .*; "
    r"(?P<sent>\d+) sent, (?P<replies>\d+) replies, (?P<lost>\d+) lost \((?P<fwd>\d+) forward\)"
)
POLICY_LINE = re.compile(r"^  sla (?P<peer>\S+) policy (?P<policy>\S+): (?P<choice>.*)$")
SWITCH = re.compile(
    r"sla: (?P<peer>\S+): path switch: policy (?P<policy>\S+): (?P<from>.+?) -> (?P<to>.+?) \((?P<reason>[^)]+)\)"
)


class Unusable(Exception):
    pass


def read_lines(path, start=0):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()[start:]
    except OSError as e:
        raise Unusable(f"cannot read {path}: {e}") from None


def path_lines(lines, path):
    out = []
    for line in lines:
        m = PATH_LINE.match(line)
        if m and int(m["path"]) == path:
            out.append(m)
    return out


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Unusable(f"cannot read {path}: {e}") from None


def flow(stats, direction, src, dst, kind):
    key = f"{src}>{dst} {kind}"
    flows = stats.get(direction, {}).get("flows", {})
    if key not in flows:
        raise Unusable(f"wanem saw no '{key}' probes going {direction} (has: {sorted(flows)})")
    return flows[key]


class Checker:
    def __init__(self):
        self.failed = 0

    def check(self, what, measured, truth, *, rel=None, abs_=None, unit=""):
        err = measured - truth
        if abs_ is not None:
            ok = abs(err) <= abs_
            bound = f"±{abs_}{unit}"
        else:
            ok = truth != 0 and abs(err) <= rel * abs(truth)
            bound = f"±{rel * 100:.0f}%"
        print(
            f"sla_check: {'ok  ' if ok else 'FAIL'} {what}: measured {measured:.3f}{unit}, "
            f"truth {truth:.3f}{unit} ({bound}; off by {err:+.3f}{unit})"
        )
        self.failed += not ok


def mean(xs):
    return sum(xs) / len(xs)


def counters(m):
    return {k: int(m[k]) for k in ("sent", "replies", "lost", "fwd")}


def measure(args):
    stats = load_json(args.wanem)
    c = Checker()
    a_log = read_lines(args.log_a, args.from_a)
    b_log = read_lines(args.log_b, args.from_b)
    nominal = parse_spec(args.spec)
    for node, log, local, remote in (("A", a_log, args.a_ip, args.b_ip), ("B", b_log, args.b_ip, args.a_ip)):
        p1, p2 = path_lines(log, 1), path_lines(log, 2)
        if len(p1) < 10 or len(p2) < 10:
            raise Unusable(f"node {node}: too few SLA lines for paths 1 and 2 ({len(p1)}, {len(p2)})")
        # The lines during the measurement, and the last one after the
        # in-flight probes resolved.
        during = p1[:-3]
        first, last = counters(p1[0]), counters(p1[-1])
        at_dump = counters(p1[-3])
        d = {k: last[k] - first[k] for k in last}
        sent = at_dump["sent"] - first["sent"]
        # ab is towards the router (leaving A), ba towards A (impaired).
        out_dir, back_dir = ("ab", "ba") if node == "A" else ("ba", "ab")
        req = flow(stats, out_dir, local, remote, "req")
        rep = flow(stats, back_dir, remote, local, "rep")
        print(f"sla_check: node {node}: {len(during)} readings; wanem: requests {req}, replies {rep}")
        # Delay: path 1's mean RTT over path 2's is what wanem added. Each
        # reading is a 10 s window's mean; their average spans the period
        # wanem's figure covers.
        p2_during = p2[: len(during)]
        added = mean([float(m["mean"]) for m in during if m["mean"]]) - mean(
            [float(m["mean"]) for m in p2_during if m["mean"]]
        )
        c.check(f"node {node} path 1 added RTT", added, req["transit_mean_ms"] + rep["transit_mean_ms"], abs_=1.0, unit=" ms")
        # Jitter, time-averaged over the readings (J is a running estimate).
        for direction, key, truth in (("forward", "jf", req), ("reverse", "jr", rep)):
            js = [float(m[key]) for m in during if m[key] != "-"]
            if not js:
                raise Unusable(f"node {node}: no {direction} jitter readings")
            if truth["jitter_avg_ms"] >= 1.0:
                c.check(f"node {node} path 1 {direction} jitter", mean(js), truth["jitter_avg_ms"], rel=0.10, unit=" ms")
            else:
                print(f"sla_check: node {node} {direction} jitter {mean(js):.3f} ms (unimpaired; wanem {truth['jitter_avg_ms']:.3f} ms)")
        # Loss per direction over the period, from the cumulative counters.
        fwd_loss = 100.0 * d["fwd"] / sent if sent else 0.0
        reached = sent - d["fwd"]
        rev_loss = 100.0 * (d["lost"] - d["fwd"]) / reached if reached else 0.0
        for direction, measured, truth in (("forward", fwd_loss, req), ("reverse", rev_loss, rep)):
            if truth["loss_pct"] >= 0.5:
                c.check(f"node {node} path 1 {direction} loss", measured, truth["loss_pct"], rel=0.10, unit=" %")
            else:
                print(f"sla_check: node {node} {direction} loss {measured:.2f} % (unimpaired; wanem {truth['loss_pct']:.2f} %)")
        print(
            f"sla_check: node {node} against the nominal impairment: added RTT {added:.2f} ms "
            f"(nominal {nominal['delay']:.1f} ms; wanem holds order, which raises the mean), "
            f"loss towards A {rev_loss if node == 'A' else fwd_loss:.2f} % (nominal {nominal['loss']:.1f} %)"
        )
        # The policies: voice off the impaired path, bulk on it.
        choices = {}
        for line in log:
            m = POLICY_LINE.match(line)
            if m:
                choices[m["policy"]] = m["choice"]
        for policy, want in (("voice", "path 2"), ("bulk", "path 1")):
            got = choices.get(policy)
            ok = got is not None and got.startswith(want)
            print(f"sla_check: {'ok  ' if ok else 'FAIL'} node {node} policy {policy}: {got} (want {want})")
            c.failed += not ok
    return 1 if c.failed else 0


def parse_spec(text):
    words = text.split()
    out = {"delay": 0.0, "loss": 0.0}
    for i, w in enumerate(words[:-1]):
        if w == "delay" and words[i + 1].endswith("ms"):
            out["delay"] = float(words[i + 1][:-2])
        if w == "loss" and words[i + 1].endswith("%"):
            out["loss"] = float(words[i + 1][:-1])
    return out


def judge_steering(expect_path, wg1, wg2, received, sent):
    """Whether a stream took its path, from the tunnel packets A sent B on
    each path while it ran (the WAN router's nftables counters: WireGuard
    only, so the BFD and probe traffic, which grows with the step's length
    on a slow machine, is not in them) and what the receiver got. Each
    stream packet is one tunnel packet: the chosen path carried at least
    95 % of what arrived, the other at most 5 % of that. No I/O."""
    want, other = (wg1, wg2) if expect_path == 1 else (wg2, wg1)
    return sent > 0 and received >= 0.95 * sent and want >= 0.95 * received and other <= 0.05 * want


def steering(args):
    report = load_json(args.report)
    got = report.get("received", 0)
    sent = report.get("expected", 0)
    ok = judge_steering(args.expect_path, args.wg1, args.wg2, got, sent)
    print(
        f"sla_check: {'ok  ' if ok else 'FAIL'} {args.kind} stream: tunnel packets A -> B on path 1 {args.wg1}, "
        f"path 2 {args.wg2} (want path {args.expect_path}); {got}/{sent} packets arrived"
    )
    return 0 if ok else 1


def flap(args):
    failed = 0
    for path in args.log:
        moves = {}
        for line in read_lines(path):
            m = SWITCH.search(line)
            if m and m["reason"] != "initial":
                moves.setdefault((m["peer"], m["policy"]), []).append((m["from"], m["to"], m["reason"]))
        for (peer, policy), ms in sorted(moves.items()):
            came_back = any(a[0] == b[1] for i, a in enumerate(ms) for b in ms[i + 1 :])
            ok = len(ms) <= 1 and not came_back
            print(f"sla_check: {'ok  ' if ok else 'FAIL'} {path}: {peer} policy {policy} moved {len(ms)} time(s): {ms}")
            failed += not ok
        if not moves:
            print(f"sla_check: ok   {path}: no policy moved")
    return 1 if failed else 0


# ----------------------------------------------------------------- failover

PAUSE_INTERVALS = 5  # a gap between two sends over this many intervals is the sender pausing
LISTED_RUN = 5  # loss runs of more packets than this are listed
LISTED_MAX = 20  # ... up to this many of them


class LossRun:
    """Sequence numbers first..last (inclusive) were sent and none arrived.

    Times are in ns on the sender's clock. The outage began when the first
    of them left (`t_first`) and ended after the last of them left and
    before the next packet, the first delivered after the run, left:
    lower = t(last) - t(first), upper = t(last + 1) - t(first). On a
    quiet sender the two are one interval apart and `upper` is the outage;
    where the sender paused after the last lost packet (end_gap over
    PAUSE_INTERVALS intervals) the switch happened somewhere in that pause
    and only `lower` is certain. A run that reaches the end of the stream
    is open: no upper end, the outage was not over when the sender stopped.
    """

    def __init__(self, times, first, last, interval_ns):
        self.first, self.last = first, last
        self.count = last - first + 1
        self.at_ns = times[first] - times[0]
        self.lower_ns = times[last] - times[first]
        self.open = last + 1 >= len(times)
        self.upper_ns = None if self.open else times[last + 1] - times[first]
        self.end_gap_ns = None if self.open else times[last + 1] - times[last]
        self.start_gap_ns = None if first == 0 else times[first] - times[first - 1]
        self.paused = self.end_gap_ns is not None and self.end_gap_ns > PAUSE_INTERVALS * interval_ns
        self.paused_before = self.start_gap_ns is not None and self.start_gap_ns > PAUSE_INTERVALS * interval_ns
        # What is held to the limit: what the send times prove.
        self.figure_ns = self.lower_ns if self.open or self.paused else self.upper_ns

    def describe(self):
        head = f"seq {self.first}-{self.last} ({self.count} packets) from {self.at_ns / 1e9:.3f} s"
        if self.open:
            return f"{head}: at least {ms(self.lower_ns)} ms, not over when the stream ended"
        text = f"{head}: [{ms(self.lower_ns)}, {ms(self.upper_ns)}] ms"
        if self.paused:
            text += f" (the sender paused {ms(self.end_gap_ns)} ms after the last lost packet)"
        return text


def ms(ns):
    return f"{ns / 1e6:.1f}"


def received_flags(count, first, last, missing):
    """One byte per sequence number 0..count-1: 1 where it arrived."""
    flags = bytearray(count)
    if first is not None:
        flags[first : last + 1] = b"\x01" * (last - first + 1)
        for a, b in missing:
            flags[a : b + 1] = bytes(b - a + 1)
    return flags


def loss_runs(times, flags, interval_ns):
    """Every run of sequence numbers that did not arrive, as LossRuns."""
    return [
        LossRun(times, m.start(), m.end() - 1, interval_ns) for m in udpstream.LOSS_RUN.finditer(bytes(flags))
    ]


def largest_pause(times):
    """(ns, seq after which it came): the longest time between two sends."""
    best, after = 0, None
    for seq in range(1, len(times)):
        gap = times[seq] - times[seq - 1]
        if gap > best:
            best, after = gap, seq - 1
    return best, after


def judge_failover(times, flags, interval_ns, limit_ms):
    """The outage and its verdict from send times and received flags, no I/O.

    The outage is the loss run with the largest figure (what its send times
    prove: `upper`, or `lower` where the sender paused at its end or the
    stream ended inside it). The check passes when something arrived, that
    run ended before the stream did, and its figure is within the limit.
    """
    runs = loss_runs(times, flags, interval_ns)
    outage = max(runs, key=lambda r: r.figure_ns, default=None)
    received = len(times) - sum(r.count for r in runs)
    ok = received > 0 and (outage is None or (not outage.open and outage.figure_ns <= limit_ms * 1e6))
    return {"ok": ok, "runs": runs, "outage": outage, "received": received, "sent": len(times)}


def failover_lines(verdict, times, interval_ns, limit_ms, lost_in_window, gap_ms=None):
    """What `failover` prints, one string a line."""
    outage, runs = verdict["outage"], verdict["runs"]
    word = "ok  " if verdict["ok"] else "FAIL"
    interval_ms = interval_ns / 1e6
    lines = []
    if verdict["received"] == 0:
        lines.append(f"{word} failover: none of the {verdict['sent']} packets sent arrived")
    elif outage is None:
        lines.append(f"{word} failover: no packet lost of {verdict['sent']} sent: no outage (limit {limit_ms:g} ms)")
    elif outage.open:
        lines.append(
            f"{word} failover: seq {outage.first}-{outage.last} ({outage.count} packets) lost from "
            f"{outage.at_ns / 1e9:.3f} s to the end of the stream: traffic had not come back "
            f"{ms(outage.lower_ns)} ms after the first lost packet left (limit {limit_ms:g} ms)"
        )
    elif outage.paused:
        lines.append(
            f"{word} failover: outage between {ms(outage.lower_ns)} and {ms(outage.upper_ns)} ms "
            f"(limit {limit_ms:g} ms, held to the lower end): the sender paused {ms(outage.end_gap_ns)} ms "
            f"after the last lost packet (seq {outage.last}) and the switch came somewhere in that pause"
        )
    else:
        lines.append(
            f"{word} failover: outage {ms(outage.upper_ns)} ms (limit {limit_ms:g} ms): seq {outage.first}-"
            f"{outage.last} lost ({outage.count} packets), the first sent {outage.at_ns / 1e9:.3f} s into "
            f"the stream, the first delivered after them (seq {outage.last + 1}) {ms(outage.upper_ns)} ms later"
        )
    if outage is not None and not outage.open:
        lines.append(
            f"failover: bracket [{ms(outage.lower_ns)}, {ms(outage.upper_ns)}] ms: from the first lost packet's "
            f"send time to the last lost one's and to the first delivered one's"
        )
    if outage is not None and outage.paused_before:
        lines.append(
            f"failover: the sender had paused {ms(outage.start_gap_ns)} ms just before seq {outage.first}: "
            f"the outage may have begun up to that much earlier"
        )
    old = f"failover: old count method: {lost_in_window} packets lost x {interval_ms:g} ms = {lost_in_window * interval_ms:.0f} ms"
    if outage is not None:
        old += f" (the outage's run alone: {outage.count} x {interval_ms:g} = {outage.count * interval_ms:.0f} ms)"
    if gap_ms is not None:
        old += f"; receiver's longest arrival gap {gap_ms} ms"
    lines.append(old)
    pause, after = largest_pause(times)
    where = "" if after is None else f" after seq {after}, {(times[after] - times[0]) / 1e9:.3f} s in"
    lines.append(
        f"failover: sender: {verdict['sent']} packets over {(times[-1] - times[0]) / 1e9:.3f} s, "
        f"{verdict['received']} arrived; its largest pause {ms(pause)} ms{where}"
    )
    if pause > limit_ms * 1e6 and not (outage is not None and outage.paused and after == outage.last):
        lines.append(
            f"failover: note: the sender paused longer than the limit; an outage inside that pause "
            f"would not show as loss (the machine was too loaded to measure there)"
        )
    listed = [r for r in runs if r.count > LISTED_RUN or r is outage]
    if listed:
        lines.append(f"failover: loss runs over {LISTED_RUN} packets (and the outage's), {len(listed)}:")
        for r in listed[:LISTED_MAX]:
            lines.append(f"failover:   {r.describe()}{'  <- the outage' if r is outage else ''}")
        if len(listed) > LISTED_MAX:
            lines.append(f"failover:   ... and {len(listed) - LISTED_MAX} more")
    return lines


def failover(args):
    try:
        times = udpstream.read_send_times(args.send_times)
    except (OSError, ValueError) as e:
        raise Unusable(f"send times {args.send_times}: {e}") from None
    try:
        first, last, missing = udpstream.read_seen(args.seen)
    except (OSError, ValueError) as e:
        raise Unusable(f"seen file {args.seen}: {e}") from None
    if last is not None and last >= len(times):
        raise Unusable(
            f"{args.seen} has sequence number {last} arrived but {args.send_times} has send times for "
            f"only {len(times)} packets: not from the same stream"
        )
    gap_ms = None
    if args.report:
        gap_ms = load_json(args.report).get("longest_gap_ms")
    interval_ns = round(args.interval_us * 1000)
    verdict = judge_failover(times, received_flags(len(times), first, last, missing), interval_ns, args.limit_ms)
    lost_in_window = sum(b - a + 1 for a, b in missing)
    for line in failover_lines(verdict, times, interval_ns, args.limit_ms, lost_in_window, gap_ms):
        print(f"sla_check: {line}")
    return 0 if verdict["ok"] else 1


def positive(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number")
    return value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--wanem", required=True)
    m.add_argument("--log-a", required=True)
    m.add_argument("--from-a", type=int, default=0)
    m.add_argument("--log-b", required=True)
    m.add_argument("--from-b", type=int, default=0)
    m.add_argument("--a-ip", required=True)
    m.add_argument("--b-ip", required=True)
    m.add_argument("--spec", default="")
    s = sub.add_parser("steering")
    s.add_argument("--kind", required=True)
    s.add_argument("--expect-path", type=int, choices=(1, 2), required=True)
    s.add_argument("--report", required=True)
    s.add_argument("--wg1", type=int, required=True, help="WireGuard packets A -> B on path 1 during the stream")
    s.add_argument("--wg2", type=int, required=True, help="WireGuard packets A -> B on path 2 during the stream")
    f = sub.add_parser("flap")
    f.add_argument("--log", action="append", required=True)
    o = sub.add_parser("failover")
    o.add_argument("--send-times", required=True, help="udpstream send --times file")
    o.add_argument("--seen", required=True, help="udpstream recv --seen file")
    o.add_argument("--report", help="udpstream recv --report file (for its longest arrival gap)")
    o.add_argument("--limit-ms", type=positive, required=True)
    o.add_argument("--interval-us", type=positive, default=1000, help="the sender's interval (default 1000)")
    args = ap.parse_args(argv)
    try:
        return {"measure": measure, "steering": steering, "flap": flap, "failover": failover}[args.cmd](args)
    except Unusable as e:
        print(f"sla_check: unusable input: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
