//! End to end interoperability: the real `patronus` binary terminates a
//! WireGuard tunnel with a stock peer (wireguard-go + wg) in a network
//! namespace. Driven by `scripts/lab --wireguard --quick`: patronus initiates
//! a handshake (LAN -> peer ping), then both sides are restarted and the peer
//! initiates one (peer -> LAN ping), then LAN -> peer again.

mod common;
use common::{privileged_or_skip, tunnel_replies};

#[test]
fn patronus_interoperates_with_wireguard_go() {
    if !privileged_or_skip() {
        return;
    }
    let (stdout, prefix) = common::run_lab(&["--wireguard", "--quick"], "pw");

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
    common::assert_torn_down(&prefix, &stdout);
}
