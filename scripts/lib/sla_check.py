#!/usr/bin/env python3
"""sla_check: the checks of `scripts/lab --sites --sla SCENARIO`.

measure   A's and B's SLA figures for path 1 against wanem's own account of
          what it did to the probes on that path (the ground truth): added
          round-trip delay within 1 ms, per-direction jitter and loss within
          10 %; the voice policy off path 1 and the bulk policy on it.
steering  a UDP stream took the path its policy chose (router byte counters).
flap      no policy moved more than once, and none came back.
failover  lost packets x send interval (the outage) within a limit.

Each prints what it compared and exits 1 on a failed check, 2 on unusable
input (a missing line or file), naming it.
"""

import argparse
import json
import re
import sys

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


def steering(args):
    report = load_json(args.report)
    w = {1: args.w1, 2: args.w2}
    want, other = w[args.expect_path], w[3 - args.expect_path]
    got = report.get("received", 0)
    sent = report.get("expected", 0)
    ok = want >= 300_000 and other * 3 < want and sent > 0 and got >= 0.95 * sent
    print(
        f"sla_check: {'ok  ' if ok else 'FAIL'} {args.kind} stream: router bytes path 1 {args.w1}, "
        f"path 2 {args.w2} (want path {args.expect_path}); {got}/{sent} packets arrived"
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


def failover(args):
    r = load_json(args.report)
    interval_ms = args.interval_us / 1000.0
    lost = r.get("lost", 0)
    outage = lost * interval_ms
    ok = r.get("received", 0) > 0 and outage <= args.limit_ms
    print(
        f"sla_check: {'ok  ' if ok else 'FAIL'} failover: {lost} packets lost x {interval_ms:g} ms = "
        f"{outage:.0f} ms outage (limit {args.limit_ms:g} ms); longest run {r.get('longest_loss_run')} packets, "
        f"longest gap {r.get('longest_gap_ms')} ms"
    )
    return 0 if ok else 1


def main():
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
    s.add_argument("--w1", type=int, required=True)
    s.add_argument("--w2", type=int, required=True)
    f = sub.add_parser("flap")
    f.add_argument("--log", action="append", required=True)
    o = sub.add_parser("failover")
    o.add_argument("--report", required=True)
    o.add_argument("--limit-ms", type=float, required=True)
    o.add_argument("--interval-us", type=float, default=1000)
    args = ap.parse_args()
    try:
        return {"measure": measure, "steering": steering, "flap": flap, "failover": failover}[args.cmd](args)
    except Unusable as e:
        print(f"sla_check: unusable input: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
