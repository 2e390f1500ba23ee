//! End to end multi-site: two `patronus` nodes (sites A and B, each with
//! two WAN ports and two paths to the other) and a stock wireguard-go site C,
//! joined by an emulated WAN router, all in network namespaces. Driven by
//! `scripts/lab --sites --quick`: A and B ping each other through their
//! tunnel (the first packets trigger the handshake), A pings C through a
//! plain WireGuard tunnel, the per-path counters are printed, and both nodes
//! stop cleanly with a summary.

use std::path::Path;
use std::process::Command;

mod common;
use common::privileged_or_skip;

/// The reply count of the lab's "ping (LABEL): N/5 replies through the
/// tunnel" line for LABEL, if the lab printed one.
fn tunnel_replies(stdout: &str, label: &str) -> Option<u32> {
    let head = format!("lab: ping ({label}): ");
    stdout.lines().find_map(|l| {
        let rest = l.strip_prefix(&head)?;
        let n = rest.strip_suffix("/5 replies through the tunnel")?;
        n.parse().ok()
    })
}

#[test]
fn patronus_sites_reach_each_other_over_two_paths_and_a_wireguard_go_site() {
    if !privileged_or_skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("pm{}-", std::process::id() % 100_000);
    let out = Command::new(root.join("scripts/lab"))
        .args([
            "--sites",
            "--quick",
            "--patronus",
            env!("CARGO_BIN_EXE_patronus"),
        ])
        .env("LAB_PREFIX", &prefix)
        .env_remove("LAB_NETEM")
        .current_dir(&root)
        .output()
        .expect("scripts/lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/lab --sites --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // Site to site both ways, and site A to the wireguard-go site: at most
    // the first packet of a direction may be lost to the handshake.
    for label in ["A -> B", "B -> A", "A -> C"] {
        let n = tunnel_replies(&stdout, label)
            .unwrap_or_else(|| panic!("no ping result for '{label}':\n{stdout}"));
        assert!(n >= 4, "ping '{label}': only {n}/5 replies:\n{stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("lab: handshake: site C (wireguard-go) reports")),
        "wireguard-go reported no handshake with node A:\n{stdout}"
    );
    // The per-path report names both A <-> B paths (quick mode only prints
    // them; the full lab requires traffic on both).
    for path in ["lab: path 1 (A wan1", "lab: path 2 (A wan2"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(path)),
            "no per-path line '{path}':\n{stdout}"
        );
    }
    for node in ["A", "B"] {
        assert!(
            stdout.contains(&format!("lab: node {node} exited cleanly")),
            "node {node} did not stop cleanly:\n{stdout}"
        );
    }
    assert!(
        stdout.matches("patronus: summary").count() >= 2,
        "no summary from each node:\n{stdout}"
    );
    assert!(
        stdout.contains("lab: PASS (sites"),
        "the lab did not report PASS:\n{stdout}"
    );

    // No namespace and no wireguard-go control socket may survive the
    // lab's teardown.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let left = String::from_utf8_lossy(&netns.stdout);
    assert!(!left.contains(&prefix), "namespaces left behind: {left}");
    let wg_if = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab: starting wireguard-go "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("the lab did not name its wireguard-go interface:\n{stdout}"));
    let sock = Path::new("/var/run/wireguard").join(format!("{wg_if}.sock"));
    assert!(
        !sock.exists(),
        "wireguard-go socket left behind: {}",
        sock.display()
    );
}
