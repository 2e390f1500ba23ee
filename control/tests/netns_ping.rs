//! End to end: the real `patronus` binary between two network namespaces,
//! attached by net_af_packet, forwards a ping (driven by `scripts/lab --quick`).

use std::path::Path;
use std::process::Command;

mod common;
use common::privileged_or_skip;

#[test]
fn patronus_forwards_ping_between_namespaces() {
    if !privileged_or_skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("pt{}-", std::process::id() % 100_000);
    let out = Command::new(root.join("scripts/lab"))
        .args(["--quick", "--patronus", env!("CARGO_BIN_EXE_patronus")])
        .env("LAB_PREFIX", &prefix)
        .current_dir(&root)
        .output()
        .expect("scripts/lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/lab --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(" 0% packet loss"),
        "ping lost packets:\n{stdout}"
    );
    assert!(
        stdout.contains("patronus: summary"),
        "no summary from the daemon:\n{stdout}"
    );
    // No namespace may survive the lab's teardown.
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let left = String::from_utf8_lossy(&netns.stdout);
    assert!(!left.contains(&prefix), "namespaces left behind: {left}");
}
