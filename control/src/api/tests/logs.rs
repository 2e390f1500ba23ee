//! No token ever reaches a log line: every request below, good and bad,
//! runs with a capturing logger at trace level, and the lines are
//! searched for the tokens. The access-log line is checked too, so the
//! capture demonstrably works.

use super::{Harness, ADMIN, READ_ONLY};
use axum::http::{Method, StatusCode};
use std::sync::Mutex;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        // Other tests in this binary log too: keep memory bounded.
        if lines.len() < 100_000 {
            lines.push(format!("{} {}", record.target(), record.args()));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

#[tokio::test]
async fn tokens_never_appear_in_logs() {
    // Nothing else in this test binary installs a logger.
    log::set_logger(&CAPTURE).expect("the only logger in the test binary");
    log::set_max_level(log::LevelFilter::Trace);
    let h = Harness::new();
    let wrong = "wr0ng-Tok3n-that-must-not-leak";
    for token in [ADMIN, READ_ONLY, wrong] {
        h.call(Method::GET, "/api/v1/status", Some(token), None)
            .await;
        h.call(
            Method::POST,
            "/api/v1/sla-classes",
            Some(token),
            Some(r#"{"name":"logged"}"#),
        )
        .await;
        h.call(
            Method::DELETE,
            "/api/v1/sla-classes/logged",
            Some(token),
            None,
        )
        .await;
        h.call(
            Method::GET,
            &format!("/api/v1/flows?limit={token}"),
            Some(token),
            None,
        )
        .await;
    }
    let r = h
        .call(Method::GET, "/api/v1/status", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let lines = LINES.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("api: GET /api/v1/status 200")),
        "the access log was captured: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("SLA class logged created")));
    for token in [ADMIN, READ_ONLY, wrong] {
        assert!(
            !lines.iter().any(|l| l.contains(token)),
            "{token} leaked: {lines:?}"
        );
    }
}
