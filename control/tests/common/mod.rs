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
