//! Shared by the control crate's integration tests.

/// True when running as root. Without root, the test is skipped, unless CI
/// (CI=true) or scripts/test (PATRONUS_REQUIRE_PRIVILEGED_TESTS) runs it:
/// there a missing privilege fails the test instead of skipping it.
pub fn privileged_or_skip() -> bool {
    // The effective uid is the second field of /proc/self/status's Uid line.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if euid == "0" {
        return true;
    }
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var_os("PATRONUS_REQUIRE_PRIVILEGED_TESTS").is_some();
    assert!(
        !required,
        "this test needs root (DPDK, network namespaces); CI must run it as root"
    );
    eprintln!("skipping: needs root");
    false
}

/// Runs `scripts/lab ARGS --patronus <this build>` with namespaces named
/// `LAB_PREFIX=<tag><pid>-`, asserts it succeeded, and returns its stdout
/// and the prefix.
#[allow(dead_code)] // each test binary uses what it needs
pub fn run_lab(args: &[&str], tag: &str) -> (String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = format!("{tag}{}-", std::process::id() % 100_000);
    let out = std::process::Command::new(root.join("scripts/lab"))
        .args(args)
        .args(["--patronus", env!("CARGO_BIN_EXE_patronus")])
        .env("LAB_PREFIX", &prefix)
        .env_remove("LAB_NETEM")
        .current_dir(&root)
        .output()
        .expect("scripts/lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/lab {} failed\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    (stdout, prefix)
}

/// The reply count of the lab's "ping (LABEL): N/5 replies through the
/// tunnel" line for LABEL, if the lab printed one.
#[allow(dead_code)]
pub fn tunnel_replies(stdout: &str, label: &str) -> Option<u32> {
    let head = format!("lab: ping ({label}): ");
    stdout.lines().find_map(|l| {
        let rest = l.strip_prefix(&head)?;
        let n = rest.strip_suffix("/5 replies through the tunnel")?;
        n.parse().ok()
    })
}

/// Nothing the lab created may survive its teardown: no namespace with its
/// prefix and, when it started wireguard-go, no control socket.
#[allow(dead_code)]
pub fn assert_torn_down(prefix: &str, stdout: &str) {
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let left = String::from_utf8_lossy(&netns.stdout);
    assert!(!left.contains(prefix), "namespaces left behind: {left}");
    let wg_if = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab: starting wireguard-go "))
        .and_then(|r| r.split_whitespace().next());
    if let Some(wg_if) = wg_if {
        let sock = std::path::Path::new("/var/run/wireguard").join(format!("{wg_if}.sock"));
        assert!(
            !sock.exists(),
            "wireguard-go socket left behind: {}",
            sock.display()
        );
    }
}
