//! End to end: the real `patronus` binary between two network namespaces,
//! attached by net_af_packet, forwards a ping and answers one itself
//! (driven by `scripts/lab --quick`).

mod common;
use common::privileged_or_skip;

#[test]
fn patronus_forwards_ping_between_namespaces() {
    if !privileged_or_skip() {
        return;
    }
    let (stdout, prefix) = common::run_lab(&["--quick"], "pt");
    assert!(
        stdout.contains(" 0% packet loss"),
        "ping lost packets:\n{stdout}"
    );
    assert!(
        stdout.contains("3 packets transmitted, 3 received"),
        "patronus did not answer pings to its own address:\n{stdout}"
    );
    assert!(
        stdout.contains("patronus: summary"),
        "no summary from the daemon:\n{stdout}"
    );
    common::assert_torn_down(&prefix, &stdout);
}
