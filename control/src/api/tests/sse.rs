//! The event stream: Server-Sent Events framing (WHATWG HTML §9.2), live
//! delivery, resumption with Last-Event-ID, and the end at shutdown.

use super::{Harness, ADMIN};
use crate::api::model::Event;
use crate::api::state::ApiState;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

async fn open(h: &Harness, last_event_id: Option<&str>) -> Body {
    let mut req =
        Request::get("/api/v1/events/stream").header("authorization", format!("Bearer {ADMIN}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let r = h
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r.into_body()
}

/// Read until `n` complete events (blank-line terminated) have arrived.
async fn events(body: &mut Body, n: usize) -> Vec<String> {
    let mut text = String::new();
    while text.matches("\n\n").count() < n {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

fn push(api: &ApiState, kind: &str) -> u64 {
    api.push_event(
        Event::new(kind, "m")
            .peer("berlin")
            .path(1)
            .field("class", "voice"),
    )
}

#[tokio::test]
async fn a_pushed_event_arrives_with_id_kind_and_json() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    push(&h.api, "old");
    let mut body = open(&h, None).await;
    let seq = push(&h.api, "sla_violation");
    let got = events(&mut body, 1).await;
    let lines: Vec<&str> = got[0].lines().collect();
    assert!(lines.contains(&format!("id: {seq}").as_str()), "{lines:?}");
    assert!(lines.contains(&"event: sla_violation"), "{lines:?}");
    let data = lines.iter().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let e: Event = serde_json::from_str(data).unwrap();
    assert_eq!(
        (e.seq, e.peer.as_deref(), e.path),
        (seq, Some("berlin"), Some(1))
    );
    assert_eq!(e.fields["class"], "voice");
}

#[tokio::test]
async fn last_event_id_resumes_after_it_then_goes_live() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    for _ in 0..3 {
        push(&h.api, "bfd");
    }
    let mut body = open(&h, Some("1")).await;
    push(&h.api, "path_switch");
    let got = events(&mut body, 3).await;
    let ids: Vec<&str> = got
        .iter()
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("id: ")))
        .collect();
    assert_eq!(ids, ["2", "3", "4"]);
    assert!(got[2].contains("event: path_switch"));
}

#[tokio::test]
async fn odd_kinds_do_not_break_the_framing() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    let mut body = open(&h, None).await;
    h.api
        .push_event(Event::new("evil\nkind\r", "line one\nline two"));
    let got = events(&mut body, 1).await;
    assert!(got[0].contains("event: evilkind"), "{got:?}");
    let data = got[0]
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let e: Event = serde_json::from_str(data).unwrap();
    assert_eq!(e.message, "line one\nline two");
}

#[tokio::test]
async fn streams_end_when_the_api_closes() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    let mut body = open(&h, None).await;
    h.api.closing.send_replace(true);
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ended");
}
