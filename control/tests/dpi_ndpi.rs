//! `patronus dpi` against nDPI's ndpiReader (Debian package libndpi-bin,
//! nDPI 4.2) on every committed capture: for every flow both of them
//! decide from the payload, they must name the same protocol and, where
//! both report one, the same hostname. The disagreements that are
//! legitimate are listed in [`ALLOWED`] with the reason.
//!
//! Without ndpiReader the test is skipped with a message, except in CI
//! (`CI=true`), where it fails: CI installs libndpi-bin (scripts/setup).

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A difference between nDPI and us that is expected, and why.
struct Allowed {
    fixture: &'static str,
    /// The server (responder) port of the flow.
    port: u16,
    /// "hostname", "protocol", or "unread" (ndpiReader cannot read the file).
    what: &'static str,
    #[allow(dead_code)] // documentation for the reader of a failure
    why: &'static str,
}

const ALLOWED: &[Allowed] = &[
    Allowed {
        fixture: "ssh.pcap",
        port: 22,
        what: "hostname",
        why: "nDPI 4.2 stores the client's SSH banner (SSH-2.0-OpenSSH_...) in the \
              field it prints as Hostname/SNI; the banner is not a hostname and \
              patronus reports none for SSH",
    },
    Allowed {
        fixture: "sll2.pcap",
        port: 443,
        what: "unread",
        why: "ndpiReader 4.2 says \"Unsupported datalink 276. Skip pcap\": it predates \
              Linux cooked capture v2 (tcpdump -i any's default), so it has no flows \
              to compare",
    },
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dpi")
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixture directory")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// A flow as one classifier saw it.
#[derive(Debug, Clone)]
struct Flow {
    protocol: String,
    /// nDPI's sub-protocol / our application, for the report only.
    app: Option<String>,
    hostname: Option<String>,
    decided: bool,
}

/// Both directions of a 5-tuple map to one key.
type Key = (String, (String, u16), (String, u16));

fn key(l4: &str, a: (String, u16), b: (String, u16)) -> Key {
    let l4 = l4.to_ascii_lowercase();
    if a <= b {
        (l4, a, b)
    } else {
        (l4, b, a)
    }
}

/// nDPI protocol names → ours. Unlisted names are compared as they are
/// (and so disagree with any of ours).
fn map_ndpi(name: &str) -> Option<&'static str> {
    Some(match name {
        "HTTP" | "HTTP_Proxy" | "HTTP_Connect" => "HTTP",
        "TLS" => "TLS",
        "QUIC" => "QUIC",
        "DNS" => "DNS",
        "SSH" => "SSH",
        "RDP" => "RDP",
        "SIP" => "SIP",
        "RTP" => "RTP",
        "RTCP" => "RTCP",
        "STUN" => "STUN",
        "DTLS" => "DTLS",
        "MySQL" => "MySQL",
        "PostgreSQL" => "PostgreSQL",
        "Redis" => "Redis",
        "MongoDB" => "MongoDB",
        "SMBv1" | "SMBv23" => "SMB",
        "FTP_CONTROL" => "FTP",
        "FTP_DATA" => "FTP-DATA",
        "RSYNC" => "RSYNC",
        "NTP" => "NTP",
        "BitTorrent" => "BitTorrent",
        _ => return None,
    })
}

fn endpoint(s: &str) -> Option<(String, u16)> {
    let (addr, port) = s.rsplit_once(':')?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    Some((addr.to_string(), port.parse().ok()?))
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("[{name}: "))? + name.len() + 3;
    let end = line[start..].find(']')? + start;
    Some(&line[start..end])
}

/// Parses `ndpiReader -v 2` flow lines, e.g.
/// `1  TCP 127.0.0.1:54810 <-> 127.0.0.1:443 [proto: 91.133/TLS.NetFlix]...[Confidence: DPI]...[Hostname/SNI: www.netflix.com]`.
fn parse_ndpi(text: &str) -> HashMap<Key, Flow> {
    let mut flows = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(n), Some(l4), Some(a), Some(arrow), Some(b)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        if n.parse::<u32>().is_err() || arrow != "<->" || !matches!(l4, "TCP" | "UDP") {
            continue;
        }
        let (Some(a), Some(b), Some(proto)) = (endpoint(a), endpoint(b), field(line, "proto"))
        else {
            continue;
        };
        // "91.133/TLS.NetFlix": master TLS, application NetFlix;
        // "10.41/NetBIOS.SMBv23": the first name we know wins.
        let names = proto.split_once('/').map_or(proto, |(_, n)| n);
        let parts: Vec<&str> = names.split('.').collect();
        let protocol = parts
            .iter()
            .find_map(|p| map_ndpi(p))
            .map(str::to_string)
            .unwrap_or_else(|| names.to_string());
        let confidence = field(line, "Confidence").unwrap_or("");
        flows.insert(
            key(l4, a, b),
            Flow {
                decided: protocol != "Unknown" && confidence == "DPI",
                app: parts.get(1).map(|s| s.to_string()),
                protocol,
                hostname: field(line, "Hostname/SNI")
                    .filter(|h| !h.is_empty())
                    .map(str::to_string),
            },
        );
    }
    flows
}

fn parse_ours(text: &str) -> HashMap<Key, Flow> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            let ep = |a: &str, p: &str| {
                (
                    v[a].as_str().unwrap().to_string(),
                    v[p].as_u64().unwrap() as u16,
                )
            };
            (
                key(
                    v["l4"].as_str().unwrap(),
                    ep("src", "sport"),
                    ep("dst", "dport"),
                ),
                Flow {
                    protocol: v["protocol"].as_str().unwrap().to_string(),
                    app: v["app"].as_str().map(str::to_string),
                    hostname: v["hostname"].as_str().map(str::to_string),
                    decided: v["confidence"] == "dpi",
                },
            )
        })
        .collect()
}

fn allowed(fixture: &str, k: &Key, what: &str) -> bool {
    ALLOWED
        .iter()
        .any(|a| a.fixture == fixture && a.what == what && (k.1 .1 == a.port || k.2 .1 == a.port))
}

#[test]
fn patronus_and_ndpi_agree_on_every_flow_both_decide() {
    let ndpi_ok = Command::new("ndpiReader").arg("-h").output().is_ok();
    if !ndpi_ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("ndpiReader is not installed (apt-get install libndpi-bin; scripts/setup does)");
        }
        eprintln!("skipped: ndpiReader is not installed (apt-get install libndpi-bin)");
        return;
    }
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut report = Vec::new();
    for path in fixtures() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let nd = Command::new("ndpiReader")
            .arg("-i")
            .arg(&path)
            .args(["-v", "2"])
            .output()
            .unwrap();
        let nd_text =
            String::from_utf8_lossy(&nd.stdout).into_owned() + &String::from_utf8_lossy(&nd.stderr);
        let ndpi = parse_ndpi(&nd_text);
        let ours_out = Command::new(env!("CARGO_BIN_EXE_patronus"))
            .arg("dpi")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            ours_out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&ours_out.stderr)
        );
        let ours = parse_ours(&String::from_utf8_lossy(&ours_out.stdout));

        if ndpi.is_empty() {
            let any = ours.keys().next().cloned();
            match any {
                Some(k) if allowed(&name, &k, "unread") => {
                    report.push(format!("{name}: ndpiReader read no flows (allowed)"));
                    continue;
                }
                _ => {
                    problems.push(format!("{name}: ndpiReader reported no flows:\n{nd_text}"));
                    continue;
                }
            }
        }
        for (k, n) in &ndpi {
            let Some(o) = ours.get(k) else {
                problems.push(format!(
                    "{name}: nDPI has flow {k:?} that patronus does not"
                ));
                continue;
            };
            report.push(format!(
                "{name}: {}:{} <-> {}:{} nDPI {}{} {:?} ({}) | patronus {}{} {:?} ({})",
                k.1 .0,
                k.1 .1,
                k.2 .0,
                k.2 .1,
                n.protocol,
                n.app
                    .as_deref()
                    .map(|a| format!(".{a}"))
                    .unwrap_or_default(),
                n.hostname,
                if n.decided { "dpi" } else { "undecided" },
                o.protocol,
                o.app
                    .as_deref()
                    .map(|a| format!(".{a}"))
                    .unwrap_or_default(),
                o.hostname,
                if o.decided { "dpi" } else { "undecided" },
            ));
            if !(n.decided && o.decided) {
                continue;
            }
            compared += 1;
            if n.protocol != o.protocol && !allowed(&name, k, "protocol") {
                problems.push(format!(
                    "{name}: {k:?}: nDPI says {}, patronus says {}",
                    n.protocol, o.protocol
                ));
            }
            if let (Some(nh), Some(oh)) = (&n.hostname, &o.hostname) {
                if !nh.eq_ignore_ascii_case(oh) && !allowed(&name, k, "hostname") {
                    problems.push(format!("{name}: {k:?}: nDPI hostname {nh}, patronus {oh}"));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        problems.is_empty(),
        "{} disagreement(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The fixtures hold ~25 flows nDPI decides; a comparison of almost
    // nothing would pass vacuously.
    assert!(compared >= 20, "only {compared} flows were decided by both");
}
