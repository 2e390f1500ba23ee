//! `patronus`: the Patronus SD-WAN data-plane daemon.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use patronus_control::api;
use patronus_control::bfd;
use patronus_control::sla;
mod apisnap;
mod bfdconfig;
mod bfddriver;
mod config;
mod controlplane;
mod dpi_cmd;
mod dpiconfig;
mod inject;
mod neighbors;
mod qosconfig;
mod run;
mod slaconfig;
mod sladriver;
mod wgconfig;
mod wgdriver;

/// Exit code for a configuration the daemon refuses (nothing was started).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "patronus", version, about = "Patronus: a DPDK-backed SD-WAN data plane", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the data plane: EAL, ports, pinned workers and the control thread.
    Run {
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (0 when valid, 2 when not).
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Classify the flows of a pcap or pcapng capture offline with the DPI
    /// engine and print one JSON object per flow (exit 2 if FILE is not a
    /// readable capture).
    Dpi {
        /// The capture file (pcap or pcapng).
        file: PathBuf,
        /// Packets of a flow (both directions) inspected before falling
        /// back to a port guess (the config's `dpi.max_packets`).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
        max_packets: Option<u8>,
    },
    /// Read an API token (one line) from stdin and print its argon2id hash
    /// for `[[api.token]] hash = ...`. The token is never echoed.
    HashToken,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Run { config } | Command::Check { config } => config,
        Command::HashToken => return hash_token(),
        Command::Dpi { file, max_packets } => {
            return match dpi_cmd::run(file, *max_packets) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("patronus dpi: error: {e}");
                    ExitCode::from(e.exit_code())
                }
            };
        }
    };
    let config = match config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("patronus: config error: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    match cli.command {
        Command::Dpi { .. } | Command::HashToken => {
            unreachable!("handled before the config is loaded")
        }
        Command::Check { .. } => {
            println!("patronus: {} is valid", path.display());
            ExitCode::SUCCESS
        }
        Command::Run { .. } => match run::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("patronus: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `patronus hash-token`: stdin's first line, without its line ending.
fn hash_token() -> ExitCode {
    let mut line = zeroize::Zeroizing::new(String::new());
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("patronus hash-token: cannot read stdin: {e}");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    let token = line.trim_end_matches(['\n', '\r']);
    if token.len() < 16 {
        eprintln!(
            "patronus hash-token: a token needs at least 16 characters (e.g. `head -c 24 /dev/urandom | base64`)"
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("{}", api::hash_token(token));
    ExitCode::SUCCESS
}
