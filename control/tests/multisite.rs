//! End to end multi-site: two `patronus` nodes (sites A and B, each with
//! two WAN ports and two paths to the other) and a stock wireguard-go site C,
//! joined by an emulated WAN router, all in network namespaces. Driven by
//! `scripts/lab --sites --quick`: A and B ping each other through their
//! tunnel (the first packets trigger the handshake), A pings C through a
//! plain WireGuard tunnel, the per-path counters are printed, and both nodes
//! stop cleanly with a summary.

mod common;
use common::{privileged_or_skip, tunnel_replies};

#[test]
fn patronus_sites_reach_each_other_over_two_paths_and_a_wireguard_go_site() {
    if !privileged_or_skip() {
        return;
    }
    let (stdout, prefix) = common::run_lab(&["--sites", "--quick"], "pm");

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
    common::assert_torn_down(&prefix, &stdout);
}
