//! Runs the API: one thread with a current-thread tokio runtime (so the
//! API never competes with the workers for more than the core it is pinned
//! to), HTTP/1.1 via hyper, HTTPS via rustls (ring provider, TLS 1.2/1.3)
//! when a certificate is configured.
//!
//! The listener is bound before the thread starts, so a bad or taken
//! address is an error from [`spawn`], not a log line later. Connections
//! are capped, slow clients time out (header read, TLS handshake), and
//! [`ApiHandle::shutdown`] stops accepting, ends the SSE streams, gives
//! requests in flight a moment, and joins the thread.

use super::auth::Authenticator;
use super::config::{ApiConfig, TlsFiles};
use super::routes;
use super::state::ApiState;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Open connections at most; more are closed at once. A management API
/// has a handful of clients (a dashboard, Prometheus, an operator).
const MAX_CONNECTIONS: usize = 128;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("api: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("api: TLS: {0}")]
    Tls(String),
    #[error("api: cannot start the API thread: {0}")]
    Thread(std::io::Error),
}

/// The running API. Dropping it shuts the API down too.
#[derive(Debug)]
pub struct ApiHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    state: Arc<ApiState>,
    thread: Option<JoinHandle<()>>,
}

impl ApiHandle {
    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, end SSE streams, drain, join the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        self.state.closing.send_replace(true);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("api: the API thread panicked");
            }
        }
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn tls_config(files: &TlsFiles) -> Result<ServerConfig, ApiError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| ApiError::Tls(format!("{}: {e}", files.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ApiError::Tls(format!(
            "{}: no certificate in the file",
            files.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| ApiError::Tls(format!("{}: {e}", files.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ApiError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Bind `config.listen`, start the API thread (pinned to `config.core` if
/// given) and serve until [`ApiHandle::shutdown`].
pub fn spawn(config: ApiConfig, state: Arc<ApiState>) -> Result<ApiHandle, ApiError> {
    let tls = match &config.tls {
        Some(files) => Some(TlsAcceptor::from(Arc::new(tls_config(files)?))),
        None => None,
    };
    let bind = |source| ApiError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    if addr.ip().is_unspecified() {
        log::warn!("api: listening on {addr}, every interface: the API belongs on the management address only");
    }

    let router = routes::router(
        state.clone(),
        Arc::new(Authenticator::new(config.tokens.clone())),
    );
    let (stop, stop_rx) = watch::channel(false);
    state.closing.send_replace(false);
    let core = config.core;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let thread = std::thread::Builder::new()
        .name("patronus-api".into())
        .spawn(move || {
            if let Some(id) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                    log::warn!("api: could not pin the API thread to CPU {id}");
                }
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    log::error!("api: cannot build the runtime: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, tls, router, stop_rx).await,
                    Err(e) => log::error!("api: cannot register the listener: {e}"),
                }
            });
        })
        .map_err(ApiError::Thread)?;
    log::info!("api: serving {scheme}://{addr}/");
    Ok(ApiHandle {
        addr,
        stop,
        state,
        thread: Some(thread),
    })
}

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _peer) = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("api: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let result = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let Some(stream) = handshake(acceptor, stream).await else {
                        return;
                    };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
            };
            if let Err(e) = result {
                log::debug!("api: connection: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        log::debug!("api: connections still open after {DRAIN:?}; closing them");
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            log::debug!("api: TLS handshake: {e}");
            None
        }
        Err(_) => {
            log::debug!("api: TLS handshake timed out");
            None
        }
    }
}
