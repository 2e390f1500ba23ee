//! `patronus dpi FILE`: the offline classifier, in the manner of
//! ndpiReader. It reads a pcap or pcapng capture, runs the same DPI engine
//! as the workers on every flow's packets, and prints one JSON object per
//! flow (in order of first appearance) on stdout, with a one-line summary
//! and any warnings on stderr.

use patronus_dataplane::dpi::capture::{self, BadRecord, Skip};
use patronus_dataplane::dpi::engine::{DpiConfig, DpiEngine, FlowDpi, Inspection};
use patronus_dataplane::dpi::key::{FlowKey, Side};
use patronus_dataplane::dpi::types::{Classification, Confidence};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Per-record warnings printed before they are only counted.
const MAX_WARNINGS: usize = 20;

/// Why the run could not start (exit code 2) or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DpiCmdError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    NotACapture {
        path: String,
        source: capture::CaptureError,
    },
    #[error("dpi engine: {0}")]
    Engine(#[from] patronus_dataplane::dpi::engine::DpiError),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

impl DpiCmdError {
    /// 2 for a file that cannot be read as a capture (nothing was
    /// classified), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DpiCmdError::Read { .. } | DpiCmdError::NotACapture { .. } => 2,
            _ => 1,
        }
    }
}

/// One flow's line of output.
#[derive(Serialize)]
struct FlowLine<'a> {
    l4: &'static str,
    src: String,
    sport: u16,
    dst: String,
    dport: u16,
    protocol: &'static str,
    app: Option<&'a str>,
    category: &'static str,
    hostname: Option<&'a str>,
    confidence: &'static str,
    packets_to_decide: u8,
    packets: u64,
    bytes: u64,
}

struct Record {
    key: FlowKey,
    dpi: FlowDpi,
    /// The side of the first packet seen: the flow's initiator.
    initiator: Side,
    packets: u64,
    bytes: u64,
    /// Set once the engine has decided (or said Done).
    class: Option<Classification>,
    hostname: Option<String>,
}

/// What was skipped, for the summary line.
#[derive(Default)]
struct Skipped {
    bad_records: u64,
    malformed: u64,
    not_ip: u64,
    later_fragments: u64,
    unsupported_link: u64,
    warnings: usize,
}

impl Skipped {
    fn total(&self) -> u64 {
        self.bad_records
            + self.malformed
            + self.not_ip
            + self.later_fragments
            + self.unsupported_link
    }

    fn warn(&mut self, file: &str, what: std::fmt::Arguments<'_>) {
        self.warnings += 1;
        if self.warnings <= MAX_WARNINGS {
            eprintln!("patronus dpi: warning: {file}: {what}");
        } else if self.warnings == MAX_WARNINGS + 1 {
            eprintln!(
                "patronus dpi: warning: {file}: further warnings only counted in the summary"
            );
        }
    }
}

/// Classifies the capture at `path` and prints its flows on stdout.
pub fn run(path: &Path, max_packets: Option<u8>) -> Result<(), DpiCmdError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| DpiCmdError::Read {
        path: name.clone(),
        source,
    })?;
    let records = capture::records(&bytes).map_err(|source| DpiCmdError::NotACapture {
        path: name.clone(),
        source,
    })?;
    let format = records.format();
    let mut config = DpiConfig::default();
    if let Some(n) = max_packets {
        config.max_packets = n;
    }
    let mut engine = DpiEngine::new(config)?;

    let mut flows: Vec<Record> = Vec::new();
    let mut index: HashMap<FlowKey, usize> = HashMap::new();
    let mut skipped = Skipped::default();
    let mut packets: u64 = 0;

    for (n, item) in records.enumerate() {
        let rec = match item {
            Ok(rec) => rec,
            Err(BadRecord { offset, reason }) => {
                skipped.bad_records += 1;
                skipped.warn(
                    &name,
                    format_args!("record {} (byte {offset}): {reason}; skipped", n + 1),
                );
                continue;
            }
        };
        let (key, view) = match capture::packet(rec.link, rec.data) {
            Ok(parsed) => parsed,
            Err(skip) => {
                match skip {
                    Skip::NotIp => skipped.not_ip += 1,
                    Skip::LaterFragment => skipped.later_fragments += 1,
                    Skip::UnsupportedLink(_) => {
                        if skipped.unsupported_link == 0 {
                            skipped.warn(
                                &name,
                                format_args!(
                                    "record {}: {}; such records skipped",
                                    n + 1,
                                    skip.describe()
                                ),
                            );
                        }
                        skipped.unsupported_link += 1;
                    }
                    Skip::Malformed(why) => {
                        skipped.malformed += 1;
                        skipped.warn(&name, format_args!("record {}: {why}; skipped", n + 1));
                    }
                }
                continue;
            }
        };
        packets += 1;
        let at = *index.entry(key).or_insert_with(|| {
            flows.push(Record {
                key,
                dpi: FlowDpi::default(),
                initiator: view.side,
                packets: 0,
                bytes: 0,
                class: None,
                hostname: None,
            });
            flows.len() - 1
        });
        let flow = &mut flows[at];
        flow.packets += 1;
        flow.bytes += u64::from(rec.orig_len.max(rec.data.len() as u32));
        // Decided flows stop here, except control connections (FTP, SIP)
        // whose later lines announce the data and media flows to expect.
        if !flow.dpi.wants_packets() {
            continue;
        }
        match engine.inspect(&mut flow.dpi, &view, rec.ts_us) {
            Inspection::Pending => {}
            Inspection::Decided { class, hostname } => {
                if flow.class.is_none() {
                    flow.class = Some(class);
                    flow.hostname = hostname.map(str::to_owned);
                }
            }
            Inspection::Done => {
                flow.class.get_or_insert(flow.dpi.class);
            }
        }
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut decided = 0usize;
    for flow in &mut flows {
        let class = match flow.class {
            Some(c) => c,
            None => engine.finish(
                &mut flow.dpi,
                flow.key.proto,
                flow.key.lo_port,
                flow.key.hi_port,
            ),
        };
        if class.confidence == Confidence::Dpi {
            decided += 1;
        }
        let (src, sport) = flow.key.endpoint(flow.initiator);
        let (dst, dport) = flow.key.endpoint(flow.initiator.other());
        let line = FlowLine {
            l4: match flow.key.proto {
                6 => "tcp",
                17 => "udp",
                1 | 58 => "icmp",
                _ => "other",
            },
            src: src.to_string(),
            sport,
            dst: dst.to_string(),
            dport,
            protocol: class.protocol.name(),
            app: engine.app_name(class.app),
            category: class.category.name(),
            hostname: flow.hostname.as_deref(),
            confidence: class.confidence.name(),
            packets_to_decide: class.packets,
            packets: flow.packets,
            bytes: flow.bytes,
        };
        let text = serde_json::to_string(&line).expect("plain data serialises");
        writeln!(out, "{text}").map_err(DpiCmdError::Output)?;
    }
    out.flush().map_err(DpiCmdError::Output)?;

    let mut detail = Vec::new();
    for (count, what) in [
        (skipped.bad_records, "damaged records"),
        (skipped.malformed, "malformed packets"),
        (skipped.not_ip, "non-IP frames"),
        (skipped.later_fragments, "non-first IP fragments"),
        (skipped.unsupported_link, "unsupported link type"),
    ] {
        if count > 0 {
            detail.push(format!("{count} {what}"));
        }
    }
    eprintln!(
        "patronus dpi: {name} ({}): {packets} packets, {} flows ({decided} decided by dpi), {} records skipped{}",
        format.name(),
        flows.len(),
        skipped.total(),
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(", "))
        }
    );
    Ok(())
}
