//! `patronus dpi FILE` on the committed captures of real clients and
//! servers (control/tests/fixtures/dpi, made by scripts/dpi-captures):
//! every container and link layer parses into the flows that were on the
//! wire, every flow gets the protocol (and hostname, application and
//! category) its traffic shows, and damaged files are reported, not
//! crashed on.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dpi")
        .join(name)
}

struct Run {
    code: i32,
    flows: Vec<Value>,
    stderr: String,
}

fn dpi(path: &Path, extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_patronus"))
        .arg("dpi")
        .arg(path)
        .args(extra)
        .output()
        .expect("patronus runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let flows = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    Run {
        code: out.status.code().unwrap_or(-1),
        flows,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn flows_of(name: &str) -> Vec<Value> {
    let run = dpi(&fixture(name), &[]);
    assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    assert!(
        run.stderr.contains("0 records skipped"),
        "{name}: {}",
        run.stderr
    );
    run.flows
}

/// The flow whose responder port is `dport` (exactly one).
fn by_dport<'a>(flows: &'a [Value], l4: &str, dport: u64) -> &'a Value {
    let found: Vec<&Value> = flows
        .iter()
        .filter(|f| f["l4"] == l4 && f["dport"] == dport)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {l4} flow to port {dport} in {flows:#?}"
    );
    found[0]
}

/// Asserts a flow was decided by payload inspection as `protocol`, with
/// `hostname` (None: null), and, where given, application and category.
fn expect(
    flow: &Value,
    protocol: &str,
    hostname: Option<&str>,
    app: Option<&str>,
    category: Option<&str>,
) {
    assert_eq!(flow["protocol"], protocol, "{flow}");
    assert_eq!(flow["confidence"], "dpi", "{flow}");
    match hostname {
        Some(h) => assert_eq!(flow["hostname"], h, "{flow}"),
        None => assert!(flow["hostname"].is_null(), "{flow}"),
    }
    if let Some(a) = app {
        assert_eq!(flow["app"], a, "{flow}");
    }
    if let Some(c) = category {
        assert_eq!(flow["category"], c, "{flow}");
    }
    let n = flow["packets_to_decide"]
        .as_u64()
        .expect("packets_to_decide is a number");
    assert!(n >= 1 && n <= flow["packets"].as_u64().unwrap(), "{flow}");
}

// --- parsing: independent of the dissectors ----------------------------------

#[test]
fn every_fixture_parses_into_the_flows_on_the_wire() {
    // (file, flows, packets) as tcpdump counted them when capturing.
    let table = [
        ("http.pcap", 2, 20),
        ("tls.pcap", 1, 18),
        ("tls_http11.pcap", 1, 16),
        ("dns.pcap", 3, 14),
        ("ssh.pcap", 1, 39),
        ("postgres.pcap", 1, 15),
        ("redis.pcap", 2, 20),
        ("mysql.pcap", 1, 14),
        ("sip.pcap", 2, 498),
        ("quic.pcap", 1, 14),
        ("ftp.pcap", 4, 66),
        ("rsync.pcap", 1, 33),
        ("ntp.pcap", 1, 2),
        ("smb.pcap", 1, 32),
        ("dtls.pcap", 1, 15),
        ("stun.pcap", 1, 2),
        ("vlan.pcap", 2, 12),
        ("multi.pcapng", 2, 12),
        ("sll.pcap", 1, 2),
        ("sll2.pcap", 1, 18),
        ("redis.pcapng", 1, 10),
    ];
    for (name, n_flows, n_packets) in table {
        let flows = flows_of(name);
        assert_eq!(flows.len(), n_flows, "{name}: {flows:#?}");
        let packets: u64 = flows.iter().map(|f| f["packets"].as_u64().unwrap()).sum();
        assert_eq!(packets, n_packets, "{name}");
        for f in &flows {
            for field in [
                "l4",
                "src",
                "sport",
                "dst",
                "dport",
                "protocol",
                "app",
                "category",
                "hostname",
                "confidence",
                "packets_to_decide",
                "packets",
                "bytes",
            ] {
                assert!(f.get(field).is_some(), "{name}: no {field} in {f}");
            }
        }
    }
}

#[test]
fn src_is_the_initiator_and_flows_keep_their_order_of_appearance() {
    let flows = flows_of("http.pcap");
    // curl to 127.0.0.1 ran first, then to [::1]; both are the client side.
    assert_eq!(
        (&flows[0]["src"], &flows[0]["dst"], &flows[0]["dport"]),
        (
            &Value::from("127.0.0.1"),
            &Value::from("127.0.0.1"),
            &Value::from(80)
        )
    );
    assert_eq!(flows[1]["src"], "::1");
    assert_eq!(flows[1]["dport"], 80);
    // Active FTP: the server opens the data connection from port 20.
    let ftp = flows_of("ftp.pcap");
    let active = ftp
        .iter()
        .find(|f| f["sport"] == 20)
        .expect("active data flow");
    assert_eq!(active["l4"], "tcp");
    // Frame bytes, as ndpiReader counts them (483 + 437 in http.pcap).
    assert_eq!(flows[0]["bytes"], 920);
}

#[test]
fn vlan_tags_cooked_headers_and_pcapng_interfaces_are_all_understood() {
    let vlan = flows_of("vlan.pcap");
    by_dport(&vlan, "tcp", 80);
    by_dport(&vlan, "udp", 53);
    let sll = flows_of("sll.pcap");
    by_dport(&sll, "udp", 53);
    let sll2 = flows_of("sll2.pcap");
    by_dport(&sll2, "tcp", 443);
    // Two interfaces: the veth (10.99.0.0/24) and lo.
    let multi = flows_of("multi.pcapng");
    assert_eq!(by_dport(&multi, "tcp", 80)["src"], "10.99.0.2");
    assert_eq!(by_dport(&multi, "udp", 53)["src"], "127.0.0.1");
}

// --- damaged input ---------------------------------------------------------

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("patronus-dpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let run = dpi(Path::new("/nonexistent/capture.pcap"), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/capture.pcap"),
        "{}",
        run.stderr
    );
    assert!(run.flows.is_empty());
}

#[test]
fn a_file_that_is_not_a_capture_exits_2_naming_it() {
    for (name, bytes) in [
        ("empty.pcap", &b""[..]),
        (
            "text.pcap",
            &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        ),
        ("short.pcap", &[0xd4, 0xc3, 0xb2][..]),
    ] {
        let p = temp(name, bytes);
        let run = dpi(&p, &[]);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(name), "{name}: {}", run.stderr);
    }
}

#[test]
fn a_truncated_capture_keeps_the_complete_records_and_warns() {
    let full = std::fs::read(fixture("http.pcap")).unwrap();
    let cut = temp("cut.pcap", &full[..full.len() - 30]);
    let run = dpi(&cut, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("warning") && run.stderr.contains("truncated"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("1 records skipped"), "{}", run.stderr);
    let packets: u64 = run
        .flows
        .iter()
        .map(|f| f["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(packets, 19);
}

#[test]
fn garbage_inside_records_is_skipped_without_a_crash() {
    // Overwrite every byte of the packet data (not the record headers) of
    // a real capture with pseudo-random noise, one seed at a time.
    let base = std::fs::read(fixture("dns.pcap")).unwrap();
    let mut x: u32 = 0x9e37_79b9;
    for round in 0..20 {
        let mut f = base.clone();
        let mut at = 24;
        while at + 16 <= f.len() {
            let incl = u32::from_le_bytes(f[at + 8..at + 12].try_into().unwrap()) as usize;
            for b in f
                .iter_mut()
                .skip(at + 16 + 14)
                .take(incl.saturating_sub(14))
            {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if x.is_multiple_of(3) {
                    *b = x as u8;
                }
            }
            at += 16 + incl;
        }
        let p = temp(&format!("noise{round}.pcap"), &f);
        let run = dpi(&p, &[]);
        assert_eq!(run.code, 0, "round {round}: {}", run.stderr);
        assert!(
            run.stderr.contains("packets,"),
            "round {round}: {}",
            run.stderr
        );
    }
    // A record header that claims 1 GiB: reported, and the run ends there.
    let mut f = base.clone();
    let second = 24 + 16 + u32::from_le_bytes(f[32..36].try_into().unwrap()) as usize;
    f[second + 8..second + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let run = dpi(&temp("huge.pcap", &f), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("256 KiB"), "{}", run.stderr);
    assert_eq!(run.flows.len(), 1);
}

#[test]
fn max_packets_is_validated() {
    let out = Command::new(env!("CARGO_BIN_EXE_patronus"))
        .args(["dpi", "--max-packets", "0"])
        .arg(fixture("dns.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let run = dpi(&fixture("dns.pcap"), &["--max-packets", "3"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.flows.len(), 3);
}

// --- classification: what the dissectors decide ------------------------------

#[test]
fn http_host_headers_name_the_site() {
    let flows = flows_of("http.pcap");
    expect(
        &flows[0],
        "HTTP",
        Some("www.youtube.com"),
        Some("YouTube"),
        Some("Video"),
    );
    expect(&flows[1], "HTTP", Some("www.wikipedia.org"), None, None);
}

#[test]
fn tls_sni_names_the_site_with_h2_and_http11_alpn() {
    let flows = flows_of("tls.pcap");
    expect(
        &flows[0],
        "TLS",
        Some("www.netflix.com"),
        Some("Netflix"),
        Some("Video"),
    );
    let flows = flows_of("tls_http11.pcap");
    expect(&flows[0], "TLS", Some("github.com"), None, None);
    let flows = flows_of("sll2.pcap");
    expect(&flows[0], "TLS", Some("zoom.us"), None, None);
}

#[test]
fn dns_queries_over_udp_and_tcp() {
    let flows = flows_of("dns.pcap");
    expect(&flows[0], "DNS", Some("www.google.com"), None, None);
    expect(&flows[1], "DNS", Some("patronus.test"), None, None);
    assert_eq!(flows[2]["l4"], "tcp");
    expect(&flows[2], "DNS", Some("www.netflix.com"), None, None);
    expect(
        &flows_of("sll.pcap")[0],
        "DNS",
        Some("www.netflix.com"),
        None,
        None,
    );
}

#[test]
fn quic_initial_is_decrypted_for_its_sni() {
    let flows = flows_of("quic.pcap");
    expect(&flows[0], "QUIC", Some("www.google.com"), None, None);
}

#[test]
fn dtls_client_hello_carries_sni() {
    expect(
        &flows_of("dtls.pcap")[0],
        "DTLS",
        Some("meet.google.com"),
        None,
        None,
    );
}

#[test]
fn remote_access_and_databases() {
    expect(
        &flows_of("ssh.pcap")[0],
        "SSH",
        None,
        None,
        Some("Interactive"),
    );
    expect(
        &flows_of("postgres.pcap")[0],
        "PostgreSQL",
        None,
        None,
        Some("Database"),
    );
    expect(
        &flows_of("mysql.pcap")[0],
        "MySQL",
        None,
        None,
        Some("Database"),
    );
    for f in flows_of("redis.pcap") {
        expect(&f, "Redis", None, None, Some("Database"));
    }
    expect(
        &flows_of("redis.pcapng")[0],
        "Redis",
        None,
        None,
        Some("Database"),
    );
}

#[test]
fn a_sip_call_and_its_rtp_media() {
    let flows = flows_of("sip.pcap");
    expect(
        by_dport(&flows, "udp", 5060),
        "SIP",
        None,
        None,
        Some("VoIP"),
    );
    expect(
        by_dport(&flows, "udp", 6000),
        "RTP",
        None,
        None,
        Some("VoIP"),
    );
}

#[test]
fn ftp_control_and_both_data_connections() {
    let flows = flows_of("ftp.pcap");
    let control: Vec<&Value> = flows.iter().filter(|f| f["dport"] == 21).collect();
    assert_eq!(control.len(), 2);
    for f in control {
        expect(f, "FTP", None, None, Some("FileTransfer"));
    }
    // Passive (client → 30010) and active (server port 20 → client): both
    // announced on the control connection.
    expect(by_dport(&flows, "tcp", 30010), "FTP-DATA", None, None, None);
    let active = flows.iter().find(|f| f["sport"] == 20).unwrap();
    expect(active, "FTP-DATA", None, None, None);
}

#[test]
fn file_transfer_and_infrastructure_protocols() {
    expect(
        &flows_of("rsync.pcap")[0],
        "RSYNC",
        None,
        None,
        Some("FileTransfer"),
    );
    expect(
        &flows_of("smb.pcap")[0],
        "SMB",
        None,
        None,
        Some("FileTransfer"),
    );
    expect(&flows_of("ntp.pcap")[0], "NTP", None, None, Some("Network"));
    expect(
        &flows_of("stun.pcap")[0],
        "STUN",
        None,
        None,
        Some("Network"),
    );
}

#[test]
fn tagged_and_multi_interface_captures_classify_like_plain_ones() {
    let vlan = flows_of("vlan.pcap");
    expect(
        by_dport(&vlan, "tcp", 80),
        "HTTP",
        Some("www.twitch.tv"),
        None,
        None,
    );
    expect(
        by_dport(&vlan, "udp", 53),
        "DNS",
        Some("www.google.com"),
        None,
        None,
    );
    let multi = flows_of("multi.pcapng");
    expect(
        by_dport(&multi, "tcp", 80),
        "HTTP",
        Some("www.twitch.tv"),
        None,
        None,
    );
    expect(
        by_dport(&multi, "udp", 53),
        "DNS",
        Some("www.google.com"),
        None,
        None,
    );
}
