//! `patronus-bench io|forward --json` runs end to end and prints the fields
//! every later performance claim is reported with.

use std::process::Command;

fn run(scenario: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_patronus-bench"))
        .args([scenario, "--json", "--seconds", "0.3", "--rounds", "2"])
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

fn check_common(r: &serde_json::Value, scenario: &str) {
    assert_eq!(r["scenario"], scenario);
    assert_eq!(r["packet_size"], 64);
    assert!(r["packets"].as_u64().unwrap() > 0, "{r}");
    assert!(r["mpps"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["cycles_per_packet"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["mbuf_leak"], 0, "mbufs leaked: {r}");
    assert_eq!(r["rounds"], 2);
}

#[test]
fn io_scenario_prints_its_measurement_as_json() {
    let r = run("io");
    check_common(&r, "io");
    assert!(r.get("baseline").is_none());
}

#[test]
fn forward_scenario_reports_a_ratio_against_io_measured_in_the_same_run() {
    let r = run("forward");
    check_common(&r, "forward");
    assert_eq!(r["baseline"]["scenario"], "io");
    let ratio = r["cycles_ratio_vs_io"].as_f64().unwrap();
    let expected = r["cycles_per_packet"].as_f64().unwrap()
        / r["baseline"]["cycles_per_packet"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9, "{r}");
}
