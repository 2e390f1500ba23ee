//! The real daemon on two net_null ports (an endless source and sink of
//! frames), with one worker per CPU each owning a queue pair on both ports:
//! it comes up, reports readiness, counts what every worker drops, and on
//! SIGTERM stops cleanly with every mbuf back in the pool.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

#[test]
fn daemon_polls_and_shuts_down_cleanly_on_sigterm() {
    if !common::privileged_or_skip() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("patronus-null-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("null.toml");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::fs::write(
        &config,
        format!(
            r#"[eal]
file_prefix = "nulltest{pid}"
memory_mb = 256

[cores]
control = 0
workers = [{workers}]
polling = "adaptive"

[stats]
interval_secs = 1

[[port]]
name = "lan"
role = "lan"
device = "net_null{pid}a"
next_hop_mac = "02:00:00:00:01:02"

[[port]]
name = "wan"
role = "wan"
device = "net_null{pid}b"
next_hop_mac = "02:00:00:00:02:02"
"#,
            pid = std::process::id(),
            workers = (0..cpus.min(4))
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_patronus"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("patronus starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = cpus.min(4);
    let mut stats_lines = 0;
    // Wait for readiness, then for two rounds of periodic stats lines.
    while stats_lines < 2 * workers && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.starts_with("core ") {
                stats_lines += 1;
            }
            lines.push(line);
        }
    }
    assert!(
        lines.iter().any(|l| l.starts_with("patronus: ready")),
        "no readiness line: {lines:#?}"
    );
    assert_eq!(stats_lines, 2 * workers, "no periodic stats: {lines:#?}");

    // kill(1) sends SIGTERM as an operator would.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    assert_eq!(
        status.code(),
        Some(0),
        "clean exit\nstdout: {lines:#?}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("all mbufs returned to the pool"),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l == "patronus: stopped cleanly"),
        "{lines:#?}"
    );
    // net_null frames are all-zero: EtherType 0 is not IP, so each is dropped as not_ip.
    let summary = lines
        .iter()
        .find(|l| l.contains("(worker 0)") && l.starts_with("  core"))
        .expect("summary line");
    assert!(summary.contains("not_ip="), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}
