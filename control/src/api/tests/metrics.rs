//! The exposition text: names, units, types, bounded labels, and
//! `promtool check metrics` when promtool is installed (required in CI).

use crate::api::demo::Demo;
use crate::api::metrics::{render_snapshot, Meta, TOP_APPS};
use crate::api::model::AppCount;
use std::io::Write;
use std::process::{Command, Stdio};

fn sample() -> String {
    let snap = Demo::new().snapshot(60.0);
    render_snapshot(
        &snap,
        &Meta {
            version: "1.2.3".into(),
            ready: true,
            start_time_unix: 1.7e9,
        },
    )
    .unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series}"))
        .parse()
        .unwrap()
}

#[test]
fn families_have_prefix_help_and_counter_suffix() {
    let text = sample();
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, ty) = (parts.next().unwrap(), parts.next().unwrap());
        families += 1;
        assert!(name.starts_with("patronus_"), "{name}");
        assert_eq!(
            ty == "counter",
            name.ends_with("_total"),
            "{name} is a {ty}"
        );
        assert!(
            !name.contains("_ms") && !name.contains("_pct") && !name.contains("percent"),
            "{name}: base units"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has help");
    }
    assert!(families >= 30, "{families} families");
}

#[test]
fn values_are_in_base_units() {
    let text = sample();
    let snap = Demo::new().snapshot(60.0);
    let p = snap
        .paths
        .iter()
        .find(|p| p.peer == "berlin" && p.index == 2)
        .unwrap();
    let sla = p.sla.as_ref().unwrap();
    let rtt = value(
        &text,
        r#"patronus_path_rtt_seconds{path="2",peer="berlin",port="wan2",stat="p95"}"#,
    );
    assert!((rtt - sla.rtt_ms.p95 / 1e3).abs() < 1e-9);
    let loss = value(
        &text,
        r#"patronus_path_loss_ratio{direction="round_trip",path="2",peer="berlin",port="wan2"}"#,
    );
    assert!((loss - sla.loss_pct.round_trip / 100.0).abs() < 1e-9);
    let wan1 = snap.ports.iter().find(|p| p.name == "wan1").unwrap();
    assert_eq!(
        value(&text, r#"patronus_port_rx_bytes_total{port="wan1"}"#),
        wan1.rx_bytes as f64
    );
    assert_eq!(
        value(&text, r#"patronus_port_speed_bytes{port="wan1"}"#),
        1.25e9
    );
    assert_eq!(
        value(
            &text,
            r#"patronus_path_bfd_state{path="1",peer="paris",port="wan1"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            r#"patronus_path_sla_compliant{class="bulk",path="1",peer="paris",port="wan1"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, r#"patronus_build_info{version="1.2.3"}"#), 1.0);
    assert!(text.contains(r#"patronus_qos_dropped_packets_total{class="bulk",port="wan1"}"#));
    assert!(text.contains(r#"patronus_dpi_flows_total{category="VoIP"}"#));
    assert!(text.contains(r#"patronus_path_failovers_total{peer="berlin"}"#));
    assert!(text.contains(r#"patronus_core_busy_seconds_total{core="1",worker="0"}"#));
}

#[test]
fn applications_are_limited_to_the_top_n() {
    let mut snap = Demo::new().snapshot(10.0);
    snap.stats.dpi.top_apps = (0..200)
        .map(|i| AppCount {
            app: format!("app{i}"),
            category: "Web".into(),
            flows: i,
            bytes: i,
        })
        .collect();
    let meta = Meta {
        version: "1".into(),
        ready: false,
        start_time_unix: 0.0,
    };
    let text = render_snapshot(&snap, &meta).unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("patronus_dpi_app_flows_total{"))
        .count();
    assert_eq!(series, TOP_APPS);
    assert!(
        text.contains(r#"patronus_dpi_app_flows_total{app="app199"} 199"#),
        "the biggest are kept"
    );
    assert!(!text.contains(r#"app="app0""#));
}

#[test]
fn bad_numbers_from_the_daemon_are_left_out_not_fatal() {
    let mut snap = Demo::new().snapshot(10.0);
    snap.cores.workers[0].busy_seconds = f64::NAN;
    snap.cores.workers[1].busy_seconds = -1.0;
    let meta = Meta {
        version: "1".into(),
        ready: false,
        start_time_unix: 0.0,
    };
    let text = render_snapshot(&snap, &meta).unwrap();
    assert!(!text.contains("patronus_core_busy_seconds_total{"));
}

#[test]
fn promtool_check_metrics_is_clean() {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is required in CI (Debian package `prometheus`)"
        );
        eprintln!("promtool not installed (apt-get install prometheus): skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sample().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {report}");
    assert!(report.trim().is_empty(), "promtool lint: {report}");
}
