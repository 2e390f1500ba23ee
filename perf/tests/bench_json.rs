//! `patronus-bench SCENARIO --json` runs end to end and prints the fields
//! every later performance claim is reported with.

use std::process::Command;

fn run_with(scenario: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_patronus-bench"))
        .arg(scenario)
        .arg("--json")
        .args(extra)
        .output()
        .expect("patronus-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "patronus-bench {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("at least one line of output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn run(scenario: &str) -> serde_json::Value {
    run_with(scenario, &["--seconds", "0.3", "--rounds", "2"])
}

/// The WireGuard scenarios, short: one round of 0.2 s at 512 bytes.
fn run_wg(scenario: &str) -> serde_json::Value {
    run_with(
        scenario,
        &["--seconds", "0.2", "--rounds", "1", "--size", "512"],
    )
}

fn positive(r: &serde_json::Value, field: &str) -> f64 {
    let v = r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing: {r}"));
    assert!(v > 0.0, "{field} is not positive: {r}");
    v
}

fn check_fields(r: &serde_json::Value, scenario: &str, size: u64, rounds: u64) {
    assert_eq!(r["scenario"], scenario);
    assert_eq!(r["packet_size"], size);
    assert!(r["packets"].as_u64().unwrap() > 0, "{r}");
    positive(r, "seconds");
    positive(r, "mpps");
    positive(r, "cycles_per_packet");
    assert_eq!(r["mbuf_leak"], 0, "mbufs leaked: {r}");
    assert_eq!(r["rounds"], rounds);
}

fn check_common(r: &serde_json::Value, scenario: &str) {
    check_fields(r, scenario, 64, 2);
}

/// A ring scenario: the worker dropped nothing and says how full its
/// bursts were.
fn check_ring(r: &serde_json::Value) {
    assert_eq!(r["drops"], 0, "{r}");
    positive(r, "packets_per_busy_poll");
}

/// `ratio` is `numerator / denominator` of the report's own figures.
fn assert_ratio(r: &serde_json::Value, ratio: &str, numerator: &str, denominator: &str) {
    let expected = positive(r, numerator) / positive(r, denominator);
    let got = positive(r, ratio);
    assert!((got - expected).abs() < 1e-9, "{ratio}: {r}");
}

#[test]
fn io_scenario_prints_its_measurement_as_json() {
    let r = run("io");
    check_common(&r, "io");
    check_ring(&r);
    assert!(r.get("baseline").is_none());
}

#[test]
fn forward_scenario_reports_a_ratio_against_io_measured_in_the_same_run() {
    // The plain forwarder of the foundation.
    let r = run_with("forward", &["--plain", "--seconds", "0.3", "--rounds", "2"]);
    check_common(&r, "forward");
    check_ring(&r);
    assert_eq!(r["baseline"]["scenario"], "io");
    let ratio = r["cycles_ratio_vs_io"].as_f64().unwrap();
    let expected = r["cycles_per_packet"].as_f64().unwrap()
        / r["baseline"]["cycles_per_packet"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9, "{r}");
}

#[test]
fn forward_runs_the_full_pipeline_over_many_flows_against_io_by_default() {
    let r = run("forward");
    check_common(&r, "forward");
    assert_eq!(
        (r["peers"].as_u64(), r["flows"].as_u64()),
        (Some(1), Some(4096)),
        "{r}"
    );
    assert_eq!(r["io_baseline"]["scenario"], "io");
    let ratio = r["cycles_ratio_vs_io"].as_f64().unwrap();
    let expected = r["cycles_per_packet"].as_f64().unwrap()
        / r["io_baseline"]["cycles_per_packet"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9, "{r}");
}

#[test]
fn aead_scenario_reports_the_crypto_floor() {
    let r = run_wg("aead");
    check_fields(&r, "aead", 512, 1);
    // Timed by the TSC: the rate and the cost per packet agree.
    let from_cycles = positive(&r, "tsc_hz") / positive(&r, "cycles_per_packet") / 1e6;
    assert!(
        (positive(&r, "mpps") - from_cycles).abs() < 1e-6 * from_cycles,
        "{r}"
    );
    assert!(r.get("ratio_vs_aead").is_none());
}

#[test]
fn boringtun_scenario_times_encapsulate_and_decapsulate_separately() {
    let r = run_wg("boringtun");
    check_fields(&r, "boringtun", 512, 1);
    positive(&r, "decap_mpps");
    positive(&r, "decap_cycles_per_packet");
    assert_eq!(r["encap_mpps"], r["mpps"]);
    assert_eq!(r["encap_cycles_per_packet"], r["cycles_per_packet"]);
}

#[test]
fn encap_scenario_reports_a_ratio_against_aead_in_the_same_run() {
    let r = run_wg("encap");
    check_fields(&r, "encap", 512, 1);
    check_ring(&r);
    assert_ratio(
        &r,
        "ratio_vs_aead",
        "aead_cycles_per_packet",
        "cycles_per_packet",
    );
    positive(&r, "aead_mpps");
    assert!(r.get("ratio_vs_boringtun").is_none());
    assert_ratio(
        &r,
        "single_core_ratio_vs_aead",
        "aead_cycles_per_packet",
        "single_core_cycles_per_packet",
    );
}

#[test]
fn decap_scenario_reports_ratios_against_aead_and_boringtun_in_the_same_run() {
    let r = run_wg("decap");
    check_fields(&r, "decap", 512, 1);
    check_ring(&r);
    assert_ratio(
        &r,
        "ratio_vs_aead",
        "aead_cycles_per_packet",
        "cycles_per_packet",
    );
    assert_ratio(
        &r,
        "ratio_vs_boringtun",
        "boringtun_decap_cycles_per_packet",
        "cycles_per_packet",
    );
    positive(&r, "boringtun_decap_mpps");
    assert_ratio(
        &r,
        "single_core_ratio_vs_boringtun",
        "boringtun_decap_cycles_per_packet",
        "single_core_cycles_per_packet",
    );
}

#[test]
fn handshake_scenario_reports_handshakes_per_second_against_boringtun() {
    let r = run_with("handshake", &["--peers", "200"]);
    check_fields(&r, "handshake", 148, 1);
    assert_eq!(r["peers"], 200);
    assert_eq!(r["handshakes"], 200);
    assert_eq!(r["packets"], 200);
    assert_eq!(r["handshakes_verified"], 200, "{r}");
    assert_eq!(r["cookie_replies"], 200, "{r}");
    let rate = positive(&r, "handshakes_per_second");
    assert!(
        (rate / 1e6 - positive(&r, "mpps")).abs() < 1e-9 * rate,
        "{r}"
    );
    assert_eq!(r["cycles_per_handshake"], r["cycles_per_packet"]);
    let all = positive(&r, "seconds_for_all");
    assert!((all - 200.0 / rate).abs() < 1e-9 * all, "{r}");
    positive(&r, "boringtun_handshakes_per_second");
    assert!(r["boringtun_handshakes"].as_u64().unwrap() > 0, "{r}");
    assert_ratio(
        &r,
        "ratio_vs_boringtun",
        "boringtun_cycles_per_handshake",
        "cycles_per_handshake",
    );
    // The defence's cost is reported; how it compares with a handshake is
    // a benchmark figure (docs/performance.md), not a test assertion.
    positive(&r, "cycles_per_cookie_reply");
    positive(&r, "cookie_replies_per_second");
    assert!(r.get("aead_mpps").is_none());
}

#[test]
fn forward_at_scale_runs_the_pipeline_against_its_single_peer_self() {
    let r = run_with(
        "forward",
        &[
            "--peers",
            "50",
            "--prefixes",
            "500",
            "--flows",
            "1000",
            "--seconds",
            "0.2",
            "--rounds",
            "1",
        ],
    );
    check_fields(&r, "forward", 64, 1);
    check_ring(&r);
    assert_eq!(r["peers"], 50);
    assert_eq!(r["prefixes"], 500);
    assert_eq!(r["flows"], 1000);
    // The baseline is the same pipeline with one peer; io is reported too.
    assert_eq!(r["baseline"]["scenario"], "forward_single_peer");
    assert_eq!(r["baseline"]["drops"], 0, "{r}");
    assert_eq!(r["io_baseline"]["scenario"], "io");
    let baseline = r["baseline"]["cycles_per_packet"].as_f64().unwrap();
    let ratio = positive(&r, "rate_ratio_vs_single_peer");
    assert!(
        (ratio - baseline / positive(&r, "cycles_per_packet")).abs() < 1e-9,
        "{r}"
    );
    assert_ratio(
        &r,
        "single_core_rate_ratio_vs_single_peer",
        "single_core_baseline_cycles_per_packet",
        "single_core_cycles_per_packet",
    );
    // Memory: every peer holds a slot, a path and a keypair; every prefix
    // at least one trie node; flows nothing.
    let per_peer = positive(&r, "memory_per_peer_bytes");
    assert!(
        (per_peer - positive(&r, "peer_state_bytes") / 50.0).abs() < 1e-9,
        "{r}"
    );
    assert!(per_peer > 100.0 && per_peer < 100_000.0, "{r}");
    let per_prefix = positive(&r, "memory_per_prefix_bytes");
    assert!(
        (per_prefix - positive(&r, "route_table_bytes") / 500.0).abs() < 1e-9,
        "{r}"
    );
    assert!(per_prefix > 16.0 && per_prefix < 1000.0, "{r}");
    assert_eq!(r["memory_per_flow_bytes"], 0.0, "{r}");
}

#[test]
fn scale_options_are_validated() {
    let out = Command::new(env!("CARGO_BIN_EXE_patronus-bench"))
        .args(["forward", "--peers", "10", "--prefixes", "5", "--json"])
        .output()
        .expect("patronus-bench runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("every peer needs a prefix"));
    let out = Command::new(env!("CARGO_BIN_EXE_patronus-bench"))
        .args(["io", "--flows", "10", "--json"])
        .output()
        .expect("patronus-bench runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("options of forward"));
}

#[test]
fn qos_worker_scenario_reports_realtime_delay_against_the_unloaded_link() {
    let r = run_with("qos-worker", &["--seconds", "0.3", "--rounds", "1"]);
    assert_eq!(r["scenario"], "qos-worker");
    // The scenario's own default frame size.
    assert_eq!(r["packet_size"], 1000);
    assert_eq!(r["rounds"], 1);
    assert_eq!(r["link_rate_bps"], 50_000_000);
    assert_eq!(r["overload"], 2.0);
    assert_eq!(r["baseline_load"], 0.5);
    // Delays are measured, not bounded: only their order is checked.
    for prefix in ["", "baseline_"] {
        let p50 = positive(&r, &format!("{prefix}realtime_delay_p50_us"));
        let p99 = positive(&r, &format!("{prefix}realtime_delay_p99_us"));
        let max = positive(&r, &format!("{prefix}realtime_delay_max_us"));
        assert!(p50 <= p99 && p99 <= max, "{prefix}: {r}");
        // One round: the median is that round.
        assert_eq!(r[format!("{prefix}realtime_delay_p99_us_rounds")][0], p99);
    }
    assert_ratio(
        &r,
        "realtime_p99_ratio_vs_unloaded",
        "realtime_delay_p99_us",
        "baseline_realtime_delay_p99_us",
    );
    positive(&r, "carried_rate_ratio");
    positive(&r, "baseline_carried_rate_ratio");
    // What is lost depends on the machine; only the counts are checked.
    let (rt, bulk) = (
        r["offered_realtime_per_round"].as_u64().unwrap(),
        r["offered_bulk_per_round"].as_u64().unwrap(),
    );
    assert_eq!(
        rt + bulk,
        3750,
        "0.3 s at twice 50 Mbit/s of 1000 bytes: {r}"
    );
    assert_eq!(rt, 375, "{r}");
    assert!(r["realtime_drops"].as_u64().unwrap() <= rt, "{r}");
    assert!(r["bulk_drops"].as_u64().unwrap() <= bulk, "{r}");
    assert!(r["baseline_drops"].as_u64().is_some(), "{r}");
    assert_eq!(r["other_drops"], 0, "{r}");
    assert_eq!(r["mbuf_leak"], 0, "mbufs leaked: {r}");
}
