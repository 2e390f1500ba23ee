//! The management API and dashboard over a fake node (`api::demo`), for
//! developing the dashboard and for running schemathesis and the browser
//! test (`scripts/api-check --demo`) without DPDK or root.
//!
//! ```text
//! cargo run -p patronus-control --example api_demo -- \
//!     --listen 127.0.0.1:8080 --token demo-admin-token [--read-only-token T] \
//!     [--tls-cert cert.pem --tls-key key.pem]
//! ```
//!
//! The fake daemon answers configuration commands, publishes a snapshot
//! every 200 ms and pushes an event every 4 s. SIGINT/SIGTERM stop it.

use clap::Parser;
use patronus_control::api::{self, ApiConfig, ApiState, Role, TlsFiles, TokenConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The admin bearer token (hashed with argon2 at start).
    #[arg(long)]
    token: String,
    /// An optional read-only token.
    #[arg(long)]
    read_only_token: Option<String>,
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut tokens = vec![TokenConfig::new(
        Role::Admin,
        &api::hash_token(&args.token),
    )?];
    if let Some(t) = &args.read_only_token {
        tokens.push(TokenConfig::new(Role::ReadOnly, &api::hash_token(t))?);
    }
    let config = ApiConfig {
        listen: args.listen,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert_file, key_file)| TlsFiles {
                cert_file,
                key_file,
            }),
        tokens,
        core: None,
    };
    let state = Arc::new(ApiState::new(env!("CARGO_PKG_VERSION")));
    let mut demo = api::demo::Demo::new();
    demo.step(&state);
    let handle = api::spawn(config, state.clone())?;
    // The address line is what scripts wait for.
    println!("api_demo: listening on {}", handle.local_addr());

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    while !stop.load(Ordering::Relaxed) {
        demo.step(&state);
        std::thread::sleep(Duration::from_millis(200));
    }
    handle.shutdown();
    Ok(())
}
