//! Real servers on 127.0.0.1:0: plain HTTP, HTTPS with a self-signed
//! certificate (rcgen), bind and TLS errors, and a shutdown that does not
//! hang on an open event stream.

use super::{tokens, ADMIN};
use crate::api::config::{ApiConfig, TlsFiles};
use crate::api::server::{spawn, ApiError};
use crate::api::state::ApiState;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, pki_types::ServerName, RootCertStore};

fn config(tls: Option<TlsFiles>) -> ApiConfig {
    ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls,
        tokens: tokens(),
        core: None,
    }
}

fn request(path: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
}

fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request(path, token).as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn plain_http_serves_and_shuts_down_with_a_stream_open() {
    let api = Arc::new(ApiState::new("1"));
    let handle = spawn(config(None), api).unwrap();
    let addr = handle.local_addr();
    assert_ne!(addr.port(), 0);
    let reply = http_get(addr, "/healthz", None);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#"{"status":"ok"}"#), "{reply}");
    let reply = http_get(addr, "/api/v1/status", Some(ADMIN));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // An SSE client that never leaves.
    let mut sse = TcpStream::connect(addr).unwrap();
    sse.write_all(request("/api/v1/events/stream", Some(ADMIN)).as_bytes())
        .unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 12];
    sse.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Shutdown ends the stream itself: the body's last chunk (`0\r\n\r\n`)
    // arrives before the connection closes. Had the server waited out its
    // drain timeout instead, the connection would be cut with no final
    // chunk. The timeouts here only turn a hang into a failure; nothing is
    // asserted about how long shutdown takes on a busy machine.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.shutdown();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(HANG)
        .expect("shutdown returns with an event stream open");
    sse.set_read_timeout(Some(HANG)).unwrap();
    let mut rest = Vec::new();
    sse.read_to_end(&mut rest)
        .expect("the event stream ends with the server");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "the event stream was ended by the server, not cut: {:?}",
        String::from_utf8_lossy(&rest[rest.len().saturating_sub(64)..])
    );
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

/// Long enough for any machine: turns a hang into a failure, never a
/// timing assertion.
const HANG: Duration = Duration::from_secs(60);

#[test]
fn a_taken_address_is_an_error_from_spawn() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(None);
    c.listen = taken.local_addr().unwrap();
    let e = spawn(c, Arc::new(ApiState::new("1"))).unwrap_err();
    assert!(matches!(e, ApiError::Bind { .. }), "{e}");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("patronus-api-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn missing_or_bad_tls_files_are_errors_from_spawn() {
    let dir = TempDir::new("badtls");
    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (cert, key) in [
        (dir.0.join("none.pem"), garbage.clone()),
        (garbage.clone(), garbage.clone()),
    ] {
        let e = spawn(
            config(Some(TlsFiles {
                cert_file: cert,
                key_file: key,
            })),
            Arc::new(ApiState::new("1")),
        )
        .unwrap_err();
        assert!(matches!(e, ApiError::Tls(_)), "{e}");
    }
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let dir = TempDir::new("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let handle = spawn(
        config(Some(TlsFiles {
            cert_file,
            key_file,
        })),
        Arc::new(ApiState::new("1")),
    )
    .unwrap();
    let addr = handle.local_addr();

    let mut roots = RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let get = |path: &'static str, token: Option<&'static str>| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(request(path, token).as_bytes())
                .await
                .unwrap();
            let mut out = Vec::new();
            // A peer that closes without close_notify is an error here; the data is what counts.
            let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let reply = get("/healthz", None).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = get("/api/v1/status", Some(ADMIN)).await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("\"version\":\"1\""),
        "{reply}"
    );
    let reply = get("/api/v1/status", None).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tokio::task::spawn_blocking(move || http_get(addr, "/healthz", None))
        .await
        .unwrap();
    assert!(!plain.starts_with("HTTP/1.1 200"), "{plain}");
    drop(handle);
}
