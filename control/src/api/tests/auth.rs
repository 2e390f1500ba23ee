//! RFC 6750 behaviour: 401 with a Bearer challenge without or with a bad
//! token, 403 for a read-only token on a change, public routes public.

use super::{Harness, ADMIN, READ_ONLY};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

const CLASS: &str = r#"{"name":"gold","max_latency_ms":80}"#;

#[tokio::test]
async fn no_token_is_401_with_a_bearer_challenge() {
    let h = Harness::new();
    for path in [
        "/api/v1/status",
        "/api/v1/peers",
        "/metrics",
        "/api/v1/events/stream",
    ] {
        let r = h.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            "Bearer realm=\"patronus\"",
            "{path}"
        );
        assert!(r.json()["error"].is_string());
    }
}

#[tokio::test]
async fn a_wrong_token_is_401_invalid_token() {
    let h = Harness::new();
    for token in ["wrong", &ADMIN[1..], &format!("{ADMIN}x")] {
        let r = h
            .call(Method::GET, "/api/v1/status", Some(token), None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r
            .header("www-authenticate")
            .contains("error=\"invalid_token\""));
    }
    // Another scheme is no bearer token at all.
    let req = Request::get("/api/v1/status")
        .header("authorization", format!("Basic {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::UNAUTHORIZED);
    // RFC 6750 §2.3 (token in the query) is deliberately not supported.
    let r = h
        .call(
            Method::GET,
            &format!("/api/v1/status?access_token={ADMIN}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn read_only_reads_but_cannot_change() {
    let h = Harness::new();
    for path in ["/api/v1/status", "/api/v1/policies", "/metrics"] {
        let r = h.call(Method::GET, path, Some(READ_ONLY), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let writes = [
        (Method::POST, "/api/v1/sla-classes", Some(CLASS)),
        (
            Method::PUT,
            "/api/v1/sla-classes/voice",
            Some(r#"{"name":"voice"}"#),
        ),
        (Method::DELETE, "/api/v1/policies/backup", None),
        (Method::POST, "/api/v1/config/save", None),
    ];
    for (method, path, body) in writes {
        let r = h.call(method.clone(), path, Some(READ_ONLY), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.header("www-authenticate").contains("insufficient_scope"));
    }
    assert_eq!(
        h.get("/api/v1/sla-classes/gold").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/api/v1/policies/backup").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_can_change() {
    let h = Harness::new();
    let r = h
        .call(
            Method::POST,
            "/api/v1/sla-classes",
            Some(ADMIN),
            Some(CLASS),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test]
async fn health_openapi_and_dashboard_need_no_token() {
    let h = Harness::new();
    h.api.set_ready(true);
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
        "/",
        "/dashboard/app.js",
        "/dashboard/style.css",
    ] {
        let r = h.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
}
