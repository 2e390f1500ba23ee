//! End to end interoperability: the real `patronus` binary terminates a
//! WireGuard tunnel with a stock peer (wireguard-go + wg) in a network
//! namespace. Driven by `scripts/lab --wireguard --quick`: patronus initiates
//! a handshake (LAN -> peer ping), then both sides are restarted and the peer
//! initiates one (peer -> LAN ping), then LAN -> peer again.

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
fn patronus_interoperates_with_wireguard_go() {
    if !privileged_or_skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("pw{}-", std::process::id() % 100_000);
    let out = Command::new(root.join("scripts/lab"))
        .args([
            "--wireguard",
            "--quick",
            "--patronus",
            env!("CARGO_BIN_EXE_patronus"),
        ])
        .env("LAB_PREFIX", &prefix)
        .current_dir(&root)
        .output()
        .expect("scripts/lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/lab --wireguard --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // A handshake in each direction, as wireguard-go reports it.
    for who in ["initiated by patronus", "initiated by wireguard-go"] {
        assert!(
            stdout.lines().any(|l| l
                .starts_with("lab: handshake: wireguard-go reports its latest handshake")
                && l.ends_with(&format!("({who})"))),
            "no handshake {who}:\n{stdout}"
        );
    }
    // Pings through the tunnel both ways: at most the first packet of a
    // direction may be lost to the handshake.
    for label in [
        "LAN -> peer, patronus initiates",
        "peer -> LAN, wireguard-go initiates",
        "LAN -> peer, existing session",
    ] {
        let n = tunnel_replies(&stdout, label)
            .unwrap_or_else(|| panic!("no ping result for '{label}':\n{stdout}"));
        assert!(n >= 4, "ping '{label}': only {n}/5 replies:\n{stdout}");
    }
    assert!(
        stdout.matches("patronus: summary").count() >= 2,
        "no summary from each of the daemon's two runs:\n{stdout}"
    );
    assert!(
        stdout.contains("lab: PASS (wireguard"),
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
