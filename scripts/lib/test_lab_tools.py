#!/usr/bin/env python3
"""Tests for the lab's Python tools: wanem's ground truth, udpstream and
sla_check's failover outage.

The lab trusts these tools to judge the nodes' SLA measurements and
failover times, so their arithmetic is pinned down here on synthetic input,
without root, interfaces or the lab. Run: python3 scripts/lib/test_lab_tools.py
"""

import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # leave no __pycache__ in scripts/lib

import sla_check  # noqa: E402
import udpstream  # noqa: E402
import wanem  # noqa: E402


# ------------------------------------------------------------ frame crafting


def ipv4_udp(dport, sport=12345, payload=b"x" * 16, ihl=5, frag=0, proto=17, src=(10, 0, 0, 1), dst=(10, 0, 0, 2)):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    options = b"\x00" * ((ihl - 5) * 4)
    total = ihl * 4 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, bytes(src), bytes(dst))
    return ip + options + udp


def ether(ethertype, body, vlan=None):
    mac = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    if vlan is not None:
        return mac + struct.pack("!HHH", 0x8100, vlan, ethertype) + body
    return mac + struct.pack("!H", ethertype) + body


PROBE = ether(0x0800, ipv4_udp(4790))
OTHER = ether(0x0800, ipv4_udp(5201))
# Patronus SLA probes (control/src/sla/probe.rs): "PS", version 1, type 1/2.
REQUEST = ether(0x0800, ipv4_udp(4790, sport=4790, payload=b"PS\x01\x01" + bytes(40)))
REPLY = ether(0x0800, ipv4_udp(4790, sport=4790, payload=b"PS\x01\x02" + bytes(64), src=(10, 0, 0, 2), dst=(10, 0, 0, 1)))


class FakeTx:
    def __init__(self, fail=False):
        self.frames = []
        self.fail = fail

    def send(self, frame):
        if self.fail:
            raise OSError("no buffer space")
        self.frames.append(frame)


class FakeClock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


def rfc3550(transits):
    """The textbook loop, written independently of WatchStats."""
    j, js, ds = 0.0, [], []
    for prev, cur in zip(transits, transits[1:]):
        d = abs(cur - prev)
        j = j + (d - j) / 16
        js.append(j)
        ds.append(d)
    return j, js, ds


# -------------------------------------------------------------------- wanem


class WatchedFrameClassification(unittest.TestCase):
    def test_udp_to_the_probe_port_is_recognised(self):
        self.assertEqual(wanem.udp_dst_port(PROBE), 4790)

    def test_other_udp_reports_its_own_port(self):
        self.assertEqual(wanem.udp_dst_port(OTHER), 5201)

    def test_one_vlan_tag_is_looked_through(self):
        self.assertEqual(wanem.udp_dst_port(ether(0x0800, ipv4_udp(4790), vlan=100)), 4790)

    def test_ip_options_move_the_udp_header(self):
        self.assertEqual(wanem.udp_dst_port(ether(0x0800, ipv4_udp(4790, ihl=7))), 4790)

    def test_source_port_4790_alone_is_not_a_match(self):
        self.assertEqual(wanem.udp_dst_port(ether(0x0800, ipv4_udp(53, sport=4790))), 53)

    def test_every_truncation_is_rejected_without_crashing(self):
        for frame in (PROBE, ether(0x0800, ipv4_udp(4790), vlan=7)):
            header_end = len(frame) - 16  # the 16-byte payload is not needed
            for n in range(header_end):
                self.assertIsNone(wanem.udp_dst_port(frame[:n]), n)
            self.assertEqual(wanem.udp_dst_port(frame[:header_end]), 4790)

    def test_ipv6_is_not_watched(self):
        ip6 = struct.pack("!IHBB16s16s", 6 << 28, 24, 17, 64, bytes(16), bytes(16))
        frame = ether(0x86DD, ip6 + struct.pack("!HHHH", 1, 4790, 24, 0) + bytes(16))
        self.assertIsNone(wanem.udp_dst_port(frame))

    def test_non_ip_is_not_watched(self):
        self.assertIsNone(wanem.udp_dst_port(ether(0x0806, bytes(46))))  # ARP
        self.assertIsNone(wanem.udp_dst_port(ether(0x0800, ipv4_udp(4790, proto=6))))  # TCP

    def test_bad_version_and_ihl_are_rejected(self):
        good = bytearray(PROBE)
        good[14] = 0x65  # version 6 in an IPv4 ethertype
        self.assertIsNone(wanem.udp_dst_port(bytes(good)))
        good[14] = 0x44  # IHL 4 < 5
        self.assertIsNone(wanem.udp_dst_port(bytes(good)))
        good[14] = 0x4F  # IHL 15 runs past the frame
        self.assertIsNone(wanem.udp_dst_port(bytes(good)))

    def test_non_first_fragment_is_not_watched(self):
        self.assertIsNone(wanem.udp_dst_port(ether(0x0800, ipv4_udp(4790, frag=185))))
        self.assertEqual(wanem.udp_dst_port(ether(0x0800, ipv4_udp(4790, frag=0x2000))), 4790)  # MF, offset 0

    def test_probe_requests_and_replies_get_their_own_flow(self):
        self.assertEqual(wanem.watched_flow(REQUEST, 4790), "10.0.0.1>10.0.0.2 req")
        self.assertEqual(wanem.watched_flow(REPLY, 4790), "10.0.0.2>10.0.0.1 rep")
        self.assertEqual(wanem.watched_flow(PROBE, 4790), "10.0.0.1>10.0.0.2 udp")
        self.assertEqual(wanem.watched_flow(ether(0x0800, ipv4_udp(4790, payload=b"PS")), 4790), "10.0.0.1>10.0.0.2 udp")
        self.assertIsNone(wanem.watched_flow(OTHER, 4790))

    def test_random_garbage_never_raises(self):
        rng = random.Random(1)
        for _ in range(2000):
            frame = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
            port = wanem.udp_dst_port(frame)
            self.assertTrue(port is None or 0 <= port <= 65535)
            wanem.watched_flow(frame, 4790)


class WatchStatsMath(unittest.TestCase):
    def test_transit_summary_and_rfc3550_jitter(self):
        transits = [0.010, 0.012, 0.011, 0.015, 0.015, 0.009]
        w = wanem.WatchStats()
        for _ in transits:
            w.on_received()
        for t in transits:
            w.on_sent(t)
        j, js, ds = rfc3550(transits)
        s = w.snapshot()
        self.assertEqual((s["received"], s["sent"], s["dropped"], s["in_flight"]), (6, 6, 0, 0))
        self.assertAlmostEqual(s["transit_mean_ms"], sum(transits) / 6 * 1e3, places=6)
        self.assertAlmostEqual(s["transit_min_ms"], 9.0, places=6)
        self.assertAlmostEqual(s["transit_max_ms"], 15.0, places=6)
        self.assertAlmostEqual(s["jitter_ms"], j * 1e3, places=6)
        self.assertAlmostEqual(s["jitter_avg_ms"], sum(js) / len(js) * 1e3, places=6)
        self.assertAlmostEqual(s["ipdv_abs_mean_ms"], sum(ds) / len(ds) * 1e3, places=6)
        # By hand: |D| = 2,1,4,0,6 ms → mean 2.6 ms; J after the first = 2/16.
        self.assertAlmostEqual(s["ipdv_abs_mean_ms"], 2.6, places=6)
        self.assertAlmostEqual(js[0], 0.002 / 16)

    def test_constant_transit_has_zero_jitter(self):
        w = wanem.WatchStats()
        for _ in range(100):
            w.on_sent(0.040)
        s = w.snapshot()
        self.assertEqual(s["jitter_ms"], 0.0)
        self.assertEqual(s["ipdv_abs_mean_ms"], 0.0)
        self.assertAlmostEqual(s["transit_mean_ms"], 40.0, places=6)

    def test_jitter_converges_to_mean_abs_difference(self):
        # Alternating 10/20 ms: |D| is always 10 ms, so J tends to 10 ms.
        w = wanem.WatchStats()
        for i in range(400):
            w.on_sent(0.010 if i % 2 else 0.020)
        self.assertAlmostEqual(w.snapshot()["jitter_ms"], 10.0, places=3)

    def test_no_samples_gives_nulls_not_zeros(self):
        s = wanem.WatchStats().snapshot()
        for key in ("transit_mean_ms", "transit_min_ms", "transit_max_ms", "jitter_ms", "jitter_avg_ms", "ipdv_abs_mean_ms", "loss_pct"):
            self.assertIsNone(s[key], key)
        w = wanem.WatchStats()
        w.on_sent(0.005)
        self.assertIsNone(w.snapshot()["jitter_ms"])  # one transit has no D yet

    def test_drops_are_counted_per_kind_and_in_total(self):
        w = wanem.WatchStats()
        for _ in range(10):
            w.on_received()
        for kind in ("lost", "lost", "down", "overflow"):
            w.on_dropped(kind)
        s = w.snapshot()
        self.assertEqual((s["dropped"], s["lost"], s["down"], s["overflow"]), (4, 2, 1, 1))
        self.assertAlmostEqual(s["loss_pct"], 40.0)
        self.assertEqual(s["in_flight"], 6)

    def test_reset_zeroes_everything_and_forgets_the_previous_transit(self):
        w = wanem.WatchStats()
        w.on_received()
        w.on_sent(0.010)
        w.on_sent(0.030)
        w.reset()
        w.on_sent(0.050)
        s = w.snapshot()
        self.assertEqual((s["received"], s["sent"]), (0, 1))
        self.assertIsNone(s["jitter_ms"])  # 0.050 has no predecessor after the reset
        self.assertAlmostEqual(s["transit_min_ms"], 50.0, places=6)


class DirectionWatching(unittest.TestCase):
    def make(self, fail=False):
        clock = FakeClock()
        tx = FakeTx(fail)
        return wanem.Direction("ba", "b->a", None, tx, watch_port=4790, clock=clock), tx, clock

    def test_realized_transit_uses_the_real_send_time(self):
        d, tx, clock = self.make()
        spec = wanem.parse_spec("delay 40ms")
        rng = random.Random(0)
        d.receive(PROBE, spec, 1.000, rng)
        d.receive(OTHER, spec, 1.000, rng)
        d.receive(PROBE, spec, 1.010, rng)
        clock.t = 1.043  # flush ran 3 ms late
        d.flush(1.043)
        self.assertEqual(len(tx.frames), 2)
        clock.t = 1.050
        d.flush(1.050)
        s = d.watch.snapshot()
        self.assertEqual((s["received"], s["sent"]), (2, 2))  # OTHER is not watched
        self.assertAlmostEqual(s["transit_min_ms"], 40.0, places=6)
        self.assertAlmostEqual(s["transit_max_ms"], 43.0, places=6)
        self.assertAlmostEqual(s["ipdv_abs_mean_ms"], 3.0, places=6)
        self.assertEqual(d.counters["sent"], 3)

    def test_down_loss_and_overflow_are_attributed(self):
        d, _, _ = self.make()
        rng = random.Random(0)
        d.receive(PROBE, wanem.parse_spec("down"), 0.0, rng)
        d.receive(PROBE, wanem.parse_spec("loss 100%"), 0.0, rng)
        d.receive(OTHER, wanem.parse_spec("loss 100%"), 0.0, rng)
        limit1 = wanem.parse_spec("delay 1s limit 1")
        d.receive(PROBE, limit1, 0.0, rng)
        d.receive(PROBE, limit1, 0.0, rng)
        s = d.watch.snapshot()
        self.assertEqual((s["received"], s["down"], s["lost"], s["overflow"], s["dropped"], s["in_flight"]), (4, 1, 1, 1, 3, 1))
        self.assertEqual(d.counters["lost"], 2)  # the unwatched loss counts only in the bridge counters

    def test_tx_error_is_a_watched_drop(self):
        d, _, clock = self.make(fail=True)
        d.receive(PROBE, wanem.CLEAN, 0.0, random.Random(0))
        d.flush(0.0)
        s = d.watch.snapshot()
        self.assertEqual((s["sent"], s["tx_error"], s["dropped"]), (0, 1, 1))

    def test_packets_queued_before_a_reset_are_left_out_after_it(self):
        d, _, clock = self.make()
        d.receive(PROBE, wanem.parse_spec("delay 10ms"), 0.0, random.Random(0))
        d.reset_watch()
        clock.t = 0.010
        d.flush(0.010)
        s = d.watch_snapshot()
        self.assertEqual((s["received"], s["sent"], s["in_flight"], s["flows"]), (0, 0, 0, {}))

    def test_flows_are_kept_apart_so_interleaved_streams_do_not_fake_jitter(self):
        # A's requests (steady 10 ms) and B's replies (steady 30 ms) share
        # the direction: the direction's jitter is large, each flow's is 0.
        d, _, clock = self.make()
        rng = random.Random(0)
        for i in range(20):
            t = i * 0.1
            d.receive(REQUEST, wanem.parse_spec("delay 10ms"), t, rng)
            clock.t = t + 0.010
            d.flush(clock.t + 1e-9)  # float sums: departure may be a hair past t + 10 ms
            d.receive(REPLY, wanem.parse_spec("delay 30ms"), t + 0.05, rng)
            clock.t = t + 0.080
            d.flush(clock.t + 1e-9)
        doc = d.watch_snapshot()
        req, rep = doc["flows"]["10.0.0.1>10.0.0.2 req"], doc["flows"]["10.0.0.2>10.0.0.1 rep"]
        self.assertEqual((req["sent"], rep["sent"], doc["sent"]), (20, 20, 40))
        self.assertAlmostEqual(req["jitter_ms"], 0.0, places=6)
        self.assertAlmostEqual(rep["jitter_ms"], 0.0, places=6)
        self.assertAlmostEqual(req["transit_mean_ms"], 10.0, places=6)
        self.assertAlmostEqual(rep["transit_mean_ms"], 30.0, places=6)
        self.assertAlmostEqual(doc["ipdv_abs_mean_ms"], 20.0, places=6)

    def test_flow_drops_are_attributed_to_the_flow(self):
        d, _, _ = self.make()
        rng = random.Random(0)
        d.receive(REQUEST, wanem.parse_spec("loss 100%"), 0.0, rng)
        d.receive(REPLY, wanem.parse_spec("delay 1s"), 0.0, rng)
        flows = d.watch_snapshot()["flows"]
        self.assertEqual(flows["10.0.0.1>10.0.0.2 req"]["loss_pct"], 100.0)
        self.assertEqual(flows["10.0.0.2>10.0.0.1 rep"]["in_flight"], 1)

    def test_a_flood_of_flows_is_pooled_beyond_the_cap(self):
        d, _, _ = self.make()
        rng = random.Random(0)
        for i in range(wanem.MAX_FLOWS + 10):
            frame = ether(0x0800, ipv4_udp(4790, src=(10, 1, i >> 8, i & 255)))
            d.receive(frame, wanem.CLEAN, 0.0, rng)
        self.assertEqual(len(d.flows), wanem.MAX_FLOWS + 1)
        self.assertEqual(d.flows[wanem.OVERFLOW_FLOW].received, 10)

    def test_no_watch_port_watches_nothing(self):
        d = wanem.Direction("ab", "a->b", None, FakeTx())
        d.receive(PROBE, wanem.CLEAN, 0.0, random.Random(0))
        d.flush(0.0)
        self.assertEqual(d.watch.snapshot()["received"], 0)
        self.assertEqual(d.counters["sent"], 1)


class ControlLines(unittest.TestCase):
    def test_stats_takes_the_rest_of_the_line_as_path(self):
        self.assertEqual(wanem.parse_control("stats /tmp/w.json"), ("stats", "/tmp/w.json"))
        self.assertEqual(wanem.parse_control("  stats   /tmp/a b.json "), ("stats", "/tmp/a b.json"))

    def test_stats_reset(self):
        self.assertEqual(wanem.parse_control("stats-reset"), ("stats-reset", None))

    def test_specs_still_work_including_the_empty_line(self):
        kind, spec = wanem.parse_control("delay 40ms 10ms loss 3%")
        self.assertEqual(kind, "spec")
        self.assertAlmostEqual(spec["delay"], 0.040)
        self.assertAlmostEqual(spec["jitter"], 0.010)
        self.assertEqual(wanem.parse_control(""), ("spec", wanem.CLEAN))
        self.assertTrue(wanem.parse_control("down")[1]["down"])

    def test_malformed_commands_are_refused_by_name(self):
        with self.assertRaisesRegex(wanem.ControlError, "needs a file"):
            wanem.parse_control("stats")
        with self.assertRaisesRegex(wanem.ControlError, "takes nothing"):
            wanem.parse_control("stats-reset now")
        with self.assertRaisesRegex(wanem.ControlError, "unknown command 'dump'"):
            wanem.parse_control("dump /tmp/x")

    def test_bad_spec_is_still_a_spec_error(self):
        with self.assertRaisesRegex(wanem.SpecError, "fast"):
            wanem.parse_control("delay fast")

    def test_stats_document_shape_and_atomic_write(self):
        ab = wanem.Direction("ab", "a->b", None, FakeTx(), 4790)
        ba = wanem.Direction("ba", "b->a", None, FakeTx(), 4790)
        ba.receive(REPLY, wanem.parse_spec("delay 1s"), 0.0, random.Random(0))
        doc = wanem.stats_document(ab, ba, "eth0", "eth0i", "delay 40ms", 1.5)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "stats.json")
            wanem.write_json_atomic(path, doc)
            self.assertFalse(os.path.exists(path + ".tmp"))
            with open(path) as f:
                got = json.load(f)
        self.assertEqual(set(got), {"ab", "ba", "a", "b", "spec", "since_reset_s"})
        self.assertEqual((got["a"], got["b"], got["spec"], got["since_reset_s"]), ("eth0", "eth0i", "delay 40ms", 1.5))
        wanted = {"received", "sent", "dropped", "lost", "down", "overflow", "transit_mean_ms", "transit_min_ms",
                  "transit_max_ms", "jitter_ms", "jitter_avg_ms", "ipdv_abs_mean_ms", "loss_pct"}
        self.assertTrue(wanted <= set(got["ab"]), wanted - set(got["ab"]))
        self.assertEqual(got["ba"]["received"], 1)
        self.assertEqual(got["ba"]["flows"]["10.0.0.2>10.0.0.1 rep"]["received"], 1)
        self.assertEqual(got["ab"]["flows"], {})


# ---------------------------------------------------------------- udpstream


def feed(arrivals, gap_ns=1_000_000):
    """Arrivals as seqs, one every gap_ns, each with 100 µs latency."""
    s = udpstream.StreamStats()
    for i, seq in enumerate(arrivals):
        recv = 10_000_000_000 + i * gap_ns
        s.add(seq, recv - 100_000, recv)
    return s.report()


class StreamReportMath(unittest.TestCase):
    def test_clean_stream(self):
        r = feed(range(1000))
        self.assertEqual((r["received"], r["expected"], r["lost"], r["longest_loss_run"], r["loss_runs"]), (1000, 1000, 0, 0, 0))
        self.assertEqual((r["duplicates"], r["reordered"], r["first_seq"], r["last_seq"]), (0, 0, 0, 999))
        self.assertAlmostEqual(r["latency_mean_ms"], 0.1)
        self.assertAlmostEqual(r["latency_max_ms"], 0.1)
        self.assertAlmostEqual(r["longest_gap_ms"], 1.0)

    def test_loss_runs_are_found_and_the_longest_measured(self):
        seqs = [s for s in range(100) if not (10 <= s < 13 or 50 <= s < 70 or s == 90)]
        r = feed(seqs)
        self.assertEqual((r["lost"], r["loss_runs"], r["longest_loss_run"]), (24, 3, 20))

    def test_outage_shows_as_the_longest_arrival_gap(self):
        s = udpstream.StreamStats()
        t = 5_000_000_000
        for seq in range(100):
            if seq == 60:
                t += 250_000_000  # a 250 ms blackout after seq 59
            s.add(seq, t, t)
            t += 1_000_000
        r = s.report()
        self.assertAlmostEqual(r["longest_gap_ms"], 251.0)
        self.assertEqual(r["longest_gap_after_seq"], 59)
        self.assertAlmostEqual(r["longest_gap_start_s"], 0.059)
        self.assertAlmostEqual(r["longest_gap_start_mono_s"], 5.059)

    def test_reordering_and_duplicates(self):
        r = feed([0, 1, 3, 2, 4, 4, 5, 1, 6])
        self.assertEqual((r["received"], r["unique"], r["duplicates"], r["reordered"], r["lost"]), (9, 7, 2, 1, 0))

    def test_a_number_older_than_the_first_arrival_rebases(self):
        r = feed([1000, 1001, 998, 1002])
        self.assertEqual((r["first_seq"], r["last_seq"], r["expected"], r["lost"], r["reordered"]), (998, 1002, 5, 1, 1))

    def test_a_wild_sequence_number_is_invalid_not_a_huge_allocation(self):
        s = udpstream.StreamStats()
        s.add(0, 0, 0)
        s.add(2**63, 0, 0)
        r = s.report()
        self.assertEqual((r["received"], r["invalid"], r["last_seq"]), (1, 1, 0))

    def test_large_stream_is_cheap(self):
        s = udpstream.StreamStats()
        started = time.monotonic()
        for seq in range(200_000):
            if seq % 1000 != 500:
                s.add(seq, seq, seq + 50)
        r = s.report()
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual((r["lost"], r["loss_runs"], r["longest_loss_run"]), (200, 200, 1))

    def test_nothing_received(self):
        r = udpstream.StreamStats().report()
        self.assertEqual((r["received"], r["expected"], r["lost"]), (0, 0, 0))
        self.assertIsNone(r["first_seq"])
        self.assertIsNone(r["longest_gap_ms"])

    def test_send_log_counts_late_sends_beyond_half_an_interval(self):
        log = udpstream.SendLog(1_000_000)
        log.on_send(0, 10_000, True)
        log.on_send(1_000_000, 1_600_000, True)
        log.on_send(2_000_000, 2_000_000, False)
        self.assertEqual((log.sent, log.attempted, log.send_errors, log.late_sends, log.worst_late_ns), (2, 3, 1, 1, 600_000))
        # 10 µs -> 1.6 ms -> 2.0 ms: the largest pause is after seq 0.
        self.assertEqual((log.largest_pause_ns, log.largest_pause_after_seq), (1_590_000, 0))


class StreamFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write(self, name, data):
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(self.path(name), mode) as f:
            f.write(data)
        return self.path(name)

    def test_send_times_are_little_endian_u64_and_read_back(self):
        times = [5_000_000_000 + i * 1_000_000 for i in range(10)] + [2**63 + 1]
        udpstream.write_send_times(self.path("t"), times)
        with open(self.path("t"), "rb") as f:
            raw = f.read()
        self.assertEqual(len(raw), 8 * len(times))
        self.assertEqual(struct.unpack("<Q", raw[8:16])[0], 5_001_000_000)
        self.assertEqual(list(udpstream.read_send_times(self.path("t"))), times)
        self.assertFalse(os.path.exists(self.path("t.tmp")))

    def test_unusable_send_times_are_refused(self):
        for data, message in (
            (b"", "empty"),
            (bytes(12), "not a whole number"),
            (struct.pack("<3Q", 5, 7, 6), "backwards at sequence 2"),
            (b'{"first_seq": 0}\n', "not a whole number"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                udpstream.read_send_times(self.write("t", data))

    def test_seen_document_lists_the_missing_runs(self):
        s = udpstream.StreamStats()
        for seq in [3, 4, 6, 7, 8, 12, 5]:  # 5 late: reordered, not missing
            s.add(seq, 0, 0)
        doc = udpstream.seen_document(s.base, s.top, s.seen)
        self.assertEqual(doc, {"first_seq": 3, "last_seq": 12, "missing": [[9, 11]]})
        self.assertEqual(udpstream.read_seen(self.write("s", json.dumps(doc))), (3, 12, [(9, 11)]))
        empty = udpstream.StreamStats()
        doc = udpstream.seen_document(empty.base, empty.top, empty.seen)
        self.assertEqual(udpstream.read_seen(self.write("s", json.dumps(doc))), (None, None, []))

    def test_unusable_seen_files_are_refused(self):
        for doc, message in (
            ([], "not a udpstream --seen file"),
            ({"first_seq": 0, "last_seq": 9}, "not a udpstream --seen file"),
            ({"first_seq": 5, "last_seq": 2, "missing": []}, "not a range"),
            ({"first_seq": -1, "last_seq": 2, "missing": []}, "not a range"),
            ({"first_seq": 0, "last_seq": 9, "missing": [[3]]}, "not \\[first, last\\]"),
            ({"first_seq": 0, "last_seq": 9, "missing": [[5, 6], [2, 3]]}, "out of order"),
            ({"first_seq": 0, "last_seq": 9, "missing": [[5, 9]]}, "outside 0-9"),
            ({"first_seq": 0, "last_seq": 9, "missing": [[0, 1]]}, "outside 0-9"),
            ({"first_seq": None, "last_seq": None, "missing": [[1, 2]]}, "without any"),
        ):
            with self.assertRaisesRegex(ValueError, message, msg=doc):
                udpstream.read_seen(self.write("s", json.dumps(doc)))
        with self.assertRaises(ValueError):
            udpstream.read_seen(self.write("s", "{not json"))


# ------------------------------------------------------- sla_check failover

MS = 1_000_000
T0 = 7_000_000_000  # an arbitrary monotonic start


def schedule(*pieces):
    """Send times from pieces: ("every", n, ns) sends n packets ns apart
    after the previous one; ("pause", ns) makes the next send come ns
    after the previous one instead; ("burst", n) sends n packets 10 µs
    apart (a sender catching up)."""
    times, gap = [], None
    for piece in pieces:
        kind = piece[0]
        if kind == "pause":
            gap = piece[1]
            continue
        n, step = (piece[1], piece[2]) if kind == "every" else (piece[1], 10_000)
        for _ in range(n):
            times.append(T0 if not times else times[-1] + (gap if gap is not None else step))
            gap = None
    return times


def flags_without(count, *lost_ranges):
    flags = bytearray(b"\x01" * count)
    for a, b in lost_ranges:
        flags[a : b + 1] = bytes(b - a + 1)
    return flags


class FailoverOutage(unittest.TestCase):
    def judge(self, times, flags, limit_ms=50):
        return sla_check.judge_failover(times, flags, MS, limit_ms)

    def test_clean_outage_is_first_delivered_minus_first_lost(self):
        times = schedule(("every", 6000, MS))
        v = self.judge(times, flags_without(6000, (2000, 2025)))
        o = v["outage"]
        self.assertTrue(v["ok"])
        self.assertEqual((o.first, o.last, o.count, o.open, o.paused), (2000, 2025, 26, False, False))
        self.assertEqual((o.lower_ns, o.upper_ns, o.figure_ns), (25 * MS, 26 * MS, 26 * MS))  # one interval wide
        self.assertEqual(o.at_ns, 2000 * MS)
        self.assertEqual((v["sent"], v["received"]), (6000, 5974))
        self.assertFalse(self.judge(times, flags_without(6000, (2000, 2050)))["ok"])  # 51 ms > 50 ms

    def test_a_burst_after_a_stall_is_timed_not_counted(self):
        # The sender stalls 50 ms, then catches up 50 packets 10 µs apart
        # (seq 1000-1049); the path dies after the first 20 of them and the
        # next 20 regular sends are lost too. 30 + 20 = 50 packets lost:
        # the count says 50 ms (over a 30 ms limit), while the first lost
        # packet (1020) and the first delivered one (1070) left 29 x 10 µs
        # + 21 x 1 ms = 21.29 ms apart.
        times = schedule(("every", 1000, MS), ("pause", 50 * MS), ("burst", 50), ("every", 1000, MS))
        v = self.judge(times, flags_without(len(times), (1020, 1069)), limit_ms=30)
        o = v["outage"]
        self.assertEqual((o.first, o.last, o.count), (1020, 1069, 50))
        self.assertEqual((o.upper_ns, o.figure_ns), (21_290_000, 21_290_000))
        self.assertEqual(o.lower_ns, 20_290_000)
        self.assertFalse(o.paused or o.paused_before)
        self.assertTrue(v["ok"])
        lines = sla_check.failover_lines(v, times, MS, 30, 50)
        self.assertIn("ok   failover: outage 21.3 ms (limit 30 ms)", lines[0])
        self.assertTrue(any("old count method: 50 packets lost x 1 ms = 50 ms" in line for line in lines), lines)
        self.assertTrue(any("largest pause 50.0 ms after seq 999" in line for line in lines), lines)
        # A 50 ms pause could have hidden a 30 ms outage: said, not failed.
        self.assertTrue(any("paused longer than the limit" in line for line in lines), lines)

    def test_a_sender_pause_at_the_end_of_the_run_gives_a_bracket(self):
        # 10 packets lost 1 ms apart, then the sender stalls 200 ms; the
        # path came back somewhere in the stall, so the catch-up burst and
        # all after it arrive. The count says 10 ms; the truth is between
        # 9 ms and 209 ms, and only the lower end is held to the limit.
        times = schedule(("every", 3010, MS), ("pause", 200 * MS), ("burst", 200), ("every", 1000, MS))
        v = self.judge(times, flags_without(len(times), (3000, 3009)))
        o = v["outage"]
        self.assertTrue(o.paused)
        self.assertEqual((o.lower_ns, o.upper_ns, o.end_gap_ns, o.figure_ns), (9 * MS, 209 * MS, 200 * MS, 9 * MS))
        self.assertTrue(v["ok"])
        lines = sla_check.failover_lines(v, times, MS, 50, 10)
        self.assertIn("outage between 9.0 and 209.0 ms", lines[0])
        self.assertIn("held to the lower end", lines[0])
        self.assertTrue(any("largest pause 200.0 ms after seq 3009" in line for line in lines), lines)
        self.assertFalse(any("paused longer than the limit" in line for line in lines), lines)  # it is the bracket
        # With 60 packets lost before the pause the lower end alone breaks it.
        self.assertFalse(self.judge(times, flags_without(len(times), (2950, 3009)))["ok"])

    def test_a_pause_before_the_run_is_noted_not_added(self):
        times = schedule(("every", 1000, MS), ("pause", 30 * MS), ("every", 1000, MS))
        v = self.judge(times, flags_without(len(times), (1000, 1009)))
        o = v["outage"]
        self.assertTrue(o.paused_before)
        self.assertEqual((o.start_gap_ns, o.figure_ns), (30 * MS, 10 * MS))
        lines = sla_check.failover_lines(v, times, MS, 50, 10)
        self.assertTrue(any("paused 30.0 ms just before seq 1000" in line for line in lines), lines)

    def test_no_loss_passes(self):
        times = schedule(("every", 500, MS))
        v = self.judge(times, flags_without(500))
        self.assertEqual((v["ok"], v["outage"], v["runs"], v["received"]), (True, None, [], 500))
        self.assertIn("no packet lost of 500 sent", sla_check.failover_lines(v, times, MS, 50, 0)[0])

    def test_nothing_arriving_fails(self):
        times = schedule(("every", 100, MS))
        v = self.judge(times, bytearray(100))
        self.assertFalse(v["ok"])
        self.assertIn("none of the 100 packets sent arrived", sla_check.failover_lines(v, times, MS, 50, 0)[0])

    def test_a_run_to_the_end_of_the_stream_never_ended(self):
        # Traffic never came back: only 39 ms are proven, under the limit,
        # but an outage that had not ended fails.
        times = schedule(("every", 1000, MS))
        v = self.judge(times, flags_without(1000, (960, 999)))
        o = v["outage"]
        self.assertEqual((o.open, o.upper_ns, o.lower_ns, o.figure_ns), (True, None, 39 * MS, 39 * MS))
        self.assertFalse(v["ok"])
        self.assertIn("traffic had not come back 39.0 ms after", sla_check.failover_lines(v, times, MS, 50, 0)[0])

    def test_a_short_loss_at_the_end_does_not_hide_the_outage(self):
        times = schedule(("every", 1000, MS))
        v = self.judge(times, flags_without(1000, (400, 429), (998, 999)))
        self.assertTrue(v["ok"])
        self.assertEqual((v["outage"].first, v["outage"].figure_ns), (400, 30 * MS))
        self.assertEqual([r.open for r in v["runs"]], [False, True])

    def test_the_outage_is_the_longest_run_in_time_not_in_packets(self):
        # 40 packets in a 0.4 ms burst against 25 packets over 25 ms.
        times = schedule(("every", 100, MS), ("burst", 60), ("every", 400, MS))
        v = self.judge(times, flags_without(len(times), (105, 144), (300, 324)))
        self.assertEqual((v["outage"].first, v["outage"].figure_ns), (300, 25 * MS))
        lines = sla_check.failover_lines(v, times, MS, 50, 65)
        listed = [line for line in lines if line.startswith("failover:   ")]
        self.assertEqual(len(listed), 2, lines)
        self.assertTrue(listed[1].endswith("<- the outage"), listed)

    def test_received_flags_from_a_seen_file(self):
        self.assertEqual(bytes(sla_check.received_flags(8, 2, 6, [(3, 4)])), b"\x00\x00\x01\x00\x00\x01\x01\x00")
        self.assertEqual(bytes(sla_check.received_flags(3, None, None, [])), bytes(3))


class FailoverCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.times = os.path.join(self.tmp.name, "send.times")
        self.seen = os.path.join(self.tmp.name, "seen.json")
        udpstream.write_send_times(self.times, schedule(("every", 1000, MS)))
        self.write_seen({"first_seq": 0, "last_seq": 999, "missing": [[500, 519]]})

    def write_seen(self, doc):
        with open(self.seen, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))

    def run_check(self, *extra, limit="50"):
        argv = [sys.executable, os.path.join(HERE, "sla_check.py"), "failover", "--send-times", self.times,
                "--seen", self.seen, "--limit-ms", limit, *extra]
        return subprocess.run(argv, capture_output=True, text=True, timeout=10)

    def test_pass_and_fail_exit_codes(self):
        p = self.run_check()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("sla_check: ok   failover: outage 20.0 ms (limit 50 ms)", p.stdout)
        self.assertIn("old count method: 20 packets lost x 1 ms = 20 ms", p.stdout)
        p = self.run_check(limit="10")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("sla_check: FAIL failover: outage 20.0 ms (limit 10 ms)", p.stdout)

    def test_unusable_input_exits_2_naming_the_file(self):
        def refused(message, **kw):
            p = self.run_check(**kw)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn(message, p.stderr)
            self.assertNotIn("Traceback", p.stderr)

        os.remove(self.times)
        refused(f"send times {self.times}: [Errno 2]")
        with open(self.times, "wb") as f:
            f.write(bytes(12))
        refused(f"send times {self.times}: 12 bytes is not a whole number")
        udpstream.write_send_times(self.times, schedule(("every", 100, MS)))
        refused(f"{self.seen} has sequence number 999 arrived but {self.times} has send times for only 100 packets")
        self.write_seen("{")
        refused(f"seen file {self.seen}: ")
        self.write_seen({"first_seq": 0, "last_seq": 99, "missing": [[50, 40]]})
        refused(f"seen file {self.seen}: missing run [50, 40] is out of order")
        refused("-5 is not a positive", limit="-5")


class StreamArguments(unittest.TestCase):
    def run_tool(self, *argv):
        return subprocess.run([sys.executable, os.path.join(HERE, "udpstream.py"), *argv], capture_output=True, text=True, timeout=10)

    def test_bad_values_are_named_without_a_traceback(self):
        cases = [
            (["send", "--dst", "10.0.0.1", "--interval-us", "1000", "--duration", "1"], "'10.0.0.1' is not IP:PORT"),
            (["send", "--dst", "host:80", "--interval-us", "1000", "--duration", "1"], "'host'"),
            (["send", "--dst", "10.0.0.1:70000", "--interval-us", "1000", "--duration", "1"], "port 70000"),
            (["send", "--dst", "10.0.0.1:9", "--interval-us", "0", "--duration", "1"], "0 is not positive"),
            (["send", "--dst", "10.0.0.1:9", "--interval-us", "1000", "--duration", "x"], "'x' is not a number"),
            (["send", "--dst", "10.0.0.1:9", "--interval-us", "1000", "--duration", "1", "--size", "8"], "size 8"),
            (["recv", "--bind", "127.0.0.1:0", "--report", "/tmp/x", "--idle-exit", "-1"], "-1"),
        ]
        for argv, message in cases:
            p = self.run_tool(*argv)
            self.assertEqual(p.returncode, 2, argv)
            self.assertIn(message, p.stderr, argv)
            self.assertNotIn("Traceback", p.stderr, argv)


class StreamEndToEnd(unittest.TestCase):
    def test_loopback_stream_loses_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "recv.json")
            times_path, seen_path = os.path.join(tmp, "send.times"), os.path.join(tmp, "seen.json")
            tool = os.path.join(HERE, "udpstream.py")
            recv = subprocess.Popen(
                [sys.executable, tool, "recv", "--bind", "127.0.0.1:0", "--report", report, "--idle-exit", "3",
                 "--seen", seen_path],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                ready = recv.stderr.readline()
                m = re.match(r"udpstream: ready on 127\.0\.0\.1:(\d+)", ready)
                self.assertIsNotNone(m, ready)
                send = subprocess.run(
                    [sys.executable, tool, "send", "--dst", f"127.0.0.1:{m.group(1)}", "--interval-us", "1000", "--duration", "0.3",
                     "--times", times_path],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                self.assertEqual(send.returncode, 0, send.stderr)
                sent = json.loads(send.stdout)
                time.sleep(0.05)
                recv.send_signal(signal.SIGTERM)
                out, _ = recv.communicate(timeout=5)
            finally:
                if recv.poll() is None:
                    recv.kill()
                    recv.wait()
            self.assertEqual(recv.returncode, 0)
            with open(report) as f:
                got = json.load(f)
            self.assertEqual(json.loads(out), got)
            times = udpstream.read_send_times(times_path)
            seen = udpstream.read_seen(seen_path)
        self.assertEqual(len(times), 300)
        self.assertEqual(seen, (0, 299, []))
        # A 1 ms schedule over 0.3 s: the last send is due 299 ms after the
        # first was due (the first may have left a little after it).
        self.assertGreaterEqual(times[-1] - times[0], 298_000_000)
        self.assertAlmostEqual(sent["largest_pause_ms"], max(b - a for a, b in zip(times, times[1:])) / 1e6, places=5)
        self.assertEqual(sent["sent"], 300)
        self.assertEqual(sent["send_errors"], 0)
        self.assertEqual(set(sent) >= {"sent", "interval_us", "duration_s", "late_sends", "worst_late_ms"}, True)
        self.assertEqual((got["received"], got["lost"], got["first_seq"], got["last_seq"]), (300, 0, 0, 299))
        self.assertEqual((got["duplicates"], got["invalid"]), (0, 0))
        self.assertGreaterEqual(got["latency_min_ms"], 0.0)

    def test_what_is_queued_at_the_stop_is_still_counted(self):
        # A receiver descheduled when SIGTERM comes (SIGSTOP here) still
        # reads the packets already in its socket buffer.
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "recv.json")
            tool = os.path.join(HERE, "udpstream.py")
            recv = subprocess.Popen(
                [sys.executable, tool, "recv", "--bind", "127.0.0.1:0", "--report", report],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                m = re.match(r"udpstream: ready on 127\.0\.0\.1:(\d+)", recv.stderr.readline())
                self.assertIsNotNone(m)
                recv.send_signal(signal.SIGSTOP)
                send = subprocess.run(
                    [sys.executable, tool, "send", "--dst", f"127.0.0.1:{m.group(1)}", "--interval-us", "1000",
                     "--duration", "0.05", "--size", "64"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                self.assertEqual(send.returncode, 0, send.stderr)
                recv.send_signal(signal.SIGTERM)
                recv.send_signal(signal.SIGCONT)
                recv.communicate(timeout=5)
            finally:
                if recv.poll() is None:
                    recv.kill()
                    recv.wait()
            with open(report) as f:
                got = json.load(f)
        self.assertEqual((got["received"], got["first_seq"], got["last_seq"], got["lost"]), (50, 0, 49, 0))


class SteeringCheck(unittest.TestCase):
    """sla_check's steering verdict counts the tunnel's packets per path, so
    probe and BFD traffic, which grows with how long the step took, cannot
    sway it (it did with interface bytes on a loaded machine)."""

    def test_a_stream_on_its_path_passes_whatever_else_the_path_carries(self):
        self.assertTrue(sla_check.judge_steering(2, 0, 3000, 3000, 3000))
        self.assertTrue(sla_check.judge_steering(1, 3000, 12, 2990, 3000))

    def test_a_stream_split_over_both_paths_fails(self):
        self.assertFalse(sla_check.judge_steering(2, 1000, 2000, 3000, 3000))
        self.assertFalse(sla_check.judge_steering(2, 200, 2800, 3000, 3000))

    def test_a_stream_on_the_other_path_fails(self):
        self.assertFalse(sla_check.judge_steering(2, 3000, 0, 3000, 3000))

    def test_a_stream_that_did_not_arrive_fails(self):
        self.assertFalse(sla_check.judge_steering(2, 0, 3000, 1000, 3000))
        self.assertFalse(sla_check.judge_steering(2, 0, 0, 0, 0))


if __name__ == "__main__":
    unittest.main()
