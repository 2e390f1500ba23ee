//! API tests that need no DPDK, no root and no network beyond loopback:
//! the router driven in-process (`tower::ServiceExt::oneshot`), and real
//! servers on 127.0.0.1:0 for TLS and shutdown.

mod auth;
mod contract;
mod logs;
mod metrics;
mod openapi;
mod server;
mod sse;

use super::auth::{hash_token_cheap, Authenticator, Role, TokenConfig};
use super::demo::Demo;
use super::routes;
use super::state::ApiState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tower::ServiceExt;

pub(super) const ADMIN: &str = "admin-Tok3n-for-tests";
pub(super) const READ_ONLY: &str = "read-0nly-Tok3n-for-tests";

pub(super) fn tokens() -> Vec<TokenConfig> {
    vec![
        TokenConfig::new(Role::Admin, &hash_token_cheap(ADMIN)).unwrap(),
        TokenConfig::new(Role::ReadOnly, &hash_token_cheap(READ_ONLY)).unwrap(),
    ]
}

/// A router over a demo "daemon" running on its own thread, as the real
/// one would: polling commands every millisecond and publishing.
pub(super) struct Harness {
    pub api: Arc<ApiState>,
    pub router: Router,
    stop: Arc<AtomicBool>,
    daemon: Option<JoinHandle<()>>,
}

impl Harness {
    pub fn new() -> Harness {
        let api = Arc::new(ApiState::new("9.9.9"));
        // The tests set readiness themselves: a demo that flips it at
        // 0.5 s raced them on a loaded machine.
        let mut demo = Demo::new().without_readiness();
        demo.step(&api);
        let stop = Arc::new(AtomicBool::new(false));
        let daemon = {
            let (api, stop) = (api.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    demo.step(&api);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Harness::with_daemon(api, stop, Some(daemon))
    }

    /// No daemon thread: the test answers commands itself, or nobody does.
    pub fn bare(api: Arc<ApiState>) -> Harness {
        Harness::with_daemon(api, Arc::new(AtomicBool::new(false)), None)
    }

    fn with_daemon(
        api: Arc<ApiState>,
        stop: Arc<AtomicBool>,
        daemon: Option<JoinHandle<()>>,
    ) -> Harness {
        let router = routes::router(api.clone(), Arc::new(Authenticator::new(tokens())));
        Harness {
            api,
            router,
            stop,
            daemon,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: bytes.to_vec(),
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, Some(ADMIN), None).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.daemon.take() {
            let _ = d.join();
        }
    }
}

#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `field` of a JSON error body.
    pub fn field(&self) -> Option<String> {
        self.json()["field"].as_str().map(str::to_string)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}
