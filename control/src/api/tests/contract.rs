//! Contract tests: every route's shape and status codes, validation errors
//! naming the field, and create → list → update → delete.

use super::{Harness, ADMIN};
use crate::api::model::{Event, Flow};
use crate::api::state::{ApiState, ConfigCommand, Snapshot};
use axum::http::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

const VOICE2: &str = r#"{"name":"voice2","sla_class":"voice","categories":["VoIP"],
    "rules":[{"protocol":"udp","dst_ports":"5060-5061","dscp":46}],"path_order":["path:1","port:wan2"],"mode":"spread"}"#;

#[tokio::test]
async fn health_is_public_and_ready_follows_the_flag() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    let r = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let r = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("not ready"))
    );
    h.api.set_ready(true);
    let r = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn status_reports_version_uptime_cores_and_ports() {
    let h = Harness::new();
    h.api.set_ready(true);
    let r = h.get("/api/v1/status").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("cache-control"), "no-store");
    let s = r.json();
    assert_eq!(s["version"], "9.9.9");
    assert!(s["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["cores"]["workers"].as_array().unwrap().len(), 2);
    let ports: Vec<&str> = s["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["lan", "wan1", "wan2"]);
    assert_eq!(s["ports"][1]["link_up"], true);
    assert!(s["ports"][1]["rx_bytes"].is_u64());
}

#[tokio::test]
async fn peers_carry_public_keys_only() {
    let h = Harness::new();
    let r = h.get("/api/v1/peers").await;
    assert_eq!(r.status, StatusCode::OK);
    let peers = r.json();
    let berlin = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "berlin")
        .unwrap();
    for key in [
        "public_key",
        "endpoints",
        "allowed_ips",
        "latest_handshake_unix",
        "rx_bytes",
        "tx_bytes",
        "paths",
    ] {
        assert!(berlin.get(key).is_some(), "{key} missing");
    }
    let text = r.text().to_ascii_lowercase();
    assert!(
        !text.contains("private") && !text.contains("preshared"),
        "{text}"
    );
    let r = h.get("/api/v1/peers/berlin").await;
    assert_eq!(r.json()["name"], "berlin");
    let r = h.get("/api/v1/peers/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].as_str().unwrap().contains("peer"));
}

#[tokio::test]
async fn paths_carry_bfd_and_sla_and_filter_by_peer() {
    let h = Harness::new();
    let all = h.get("/api/v1/paths").await.json();
    assert_eq!(all.as_array().unwrap().len(), 6);
    let p = &all[0];
    assert_eq!(p["bfd"]["state"], "up");
    assert!(p["sla"]["rtt_ms"]["p95"].as_f64().unwrap() > 0.0);
    assert!(p["sla"]["compliant"]["voice"].is_boolean());
    let paris = h.get("/api/v1/paths?peer=paris").await.json();
    let peers: Vec<&str> = paris
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["paris", "paris"]);
}

#[tokio::test]
async fn flows_are_the_top_n_by_bytes() {
    let api = Arc::new(ApiState::new("1"));
    let flow = |bytes| Flow {
        bytes,
        ..Flow::default()
    };
    api.publish(Snapshot {
        flows: vec![flow(5), flow(50), flow(7), flow(9)],
        ..Snapshot::default()
    });
    let h = Harness::bare(api);
    let r = h.get("/api/v1/flows?limit=3").await;
    let bytes: Vec<u64> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(bytes, [50, 9, 7]);
    for bad in ["0", "1001", "abc", "-1"] {
        let r = h.get(&format!("/api/v1/flows?limit={bad}")).await;
        assert_eq!(
            (r.status, r.field().as_deref()),
            (StatusCode::BAD_REQUEST, Some("limit")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn stats_have_qos_per_port_and_class_and_dpi() {
    let h = Harness::new();
    let s = h.get("/api/v1/stats").await.json();
    assert_eq!(s["qos"][0]["port"], "wan1");
    assert_eq!(s["qos"][0]["classes"].as_array().unwrap().len(), 5);
    assert!(s["qos"][0]["classes"][0]["sent_bytes"].is_u64());
    assert!(s["dpi"]["by_category"].as_array().unwrap().len() > 1);
    assert_eq!(s["dpi"]["top_apps"][0]["app"], "zoom");
}

#[tokio::test]
async fn events_page_forward_with_after_and_next() {
    let h = Harness::bare(Arc::new(ApiState::new("1")));
    for i in 0..5 {
        h.api
            .push_event(Event::new("bfd", format!("e{i}")).peer("p").path(1));
    }
    let page = h.get("/api/v1/events?after=1&limit=2").await.json();
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!((seqs, page["next"].as_u64()), (vec![2, 3], Some(3)));
    let page = h.get("/api/v1/events?after=3").await.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 5);
    assert_eq!(page["events"][0]["kind"], "bfd");
    assert_eq!(page["events"][0]["peer"], "p");
    let page = h.get("/api/v1/events?after=5").await.json();
    assert_eq!(
        (
            page["events"].as_array().unwrap().len(),
            page["next"].as_u64()
        ),
        (0, Some(5))
    );
    // Without after: the latest ones.
    let page = h.get("/api/v1/events?limit=2").await.json();
    assert_eq!(page["events"][0]["seq"], 4);
    for q in ["limit=0", "limit=1001", "after=x"] {
        let r = h.get(&format!("/api/v1/events?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(r.field().is_some(), "{q}");
    }
}

#[tokio::test]
async fn sla_class_create_list_update_delete() {
    let h = Harness::new();
    let body = r#"{"name":"gold","max_latency_ms":80,"max_loss_pct":0.5}"#;
    let r = h
        .call(Method::POST, "/api/v1/sla-classes", Some(ADMIN), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("location"), "/api/v1/sla-classes/gold");
    assert_eq!(r.json()["max_jitter_ms"], serde_json::Value::Null);

    let list = h.get("/api/v1/sla-classes").await.json();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "gold" && c["max_latency_ms"] == 80.0));

    let r = h
        .call(Method::POST, "/api/v1/sla-classes", Some(ADMIN), Some(body))
        .await;
    assert_eq!(
        (r.status, r.field().as_deref()),
        (StatusCode::CONFLICT, Some("name"))
    );

    let update = r#"{"name":"gold","max_latency_ms":60}"#;
    let r = h
        .call(
            Method::PUT,
            "/api/v1/sla-classes/gold",
            Some(ADMIN),
            Some(update),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = h.get("/api/v1/sla-classes/gold").await.json();
    assert_eq!(
        (got["max_latency_ms"].as_f64(), got["max_loss_pct"].as_f64()),
        (Some(60.0), None)
    );

    let r = h
        .call(
            Method::PUT,
            "/api/v1/sla-classes/gold",
            Some(ADMIN),
            Some(r#"{"name":"silver"}"#),
        )
        .await;
    assert_eq!(
        (r.status, r.field().as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
    );
    let r = h
        .call(
            Method::PUT,
            "/api/v1/sla-classes/nope",
            Some(ADMIN),
            Some(r#"{"name":"nope"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // In use by a policy: refused, naming the policy.
    let p = r#"{"name":"gold-users","sla_class":"gold","apps":["zoom"]}"#;
    let r = h
        .call(Method::POST, "/api/v1/policies", Some(ADMIN), Some(p))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = h
        .call(
            Method::DELETE,
            "/api/v1/sla-classes/gold",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("gold-users"));
    let r = h
        .call(
            Method::DELETE,
            "/api/v1/policies/gold-users",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = h
        .call(
            Method::DELETE,
            "/api/v1/sla-classes/gold",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/api/v1/sla-classes/gold").await.status,
        StatusCode::NOT_FOUND
    );
    let r = h
        .call(
            Method::DELETE,
            "/api/v1/sla-classes/gold",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sla_class_validation_names_the_field() {
    let h = Harness::new();
    let cases = [
        (
            r#"{"name":"x","max_loss_pct":-1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_loss_pct",
        ),
        (
            r#"{"name":"x","max_loss_pct":150}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_loss_pct",
        ),
        (
            r#"{"name":"x y"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (r#"{"name":""}"#, StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (r#"{"max_loss_pct":1}"#, StatusCode::BAD_REQUEST, "name"),
        (
            r#"{"name":"x","max_latency_ms":"fast"}"#,
            StatusCode::BAD_REQUEST,
            "max_latency_ms",
        ),
        (
            r#"{"name":"x","max_latency_ms":1e999}"#,
            StatusCode::BAD_REQUEST,
            "max_latency_ms",
        ),
        (
            r#"{"name":"x","colour":1}"#,
            StatusCode::BAD_REQUEST,
            "colour",
        ),
    ];
    for (body, status, field) in cases {
        let r = h
            .call(Method::POST, "/api/v1/sla-classes", Some(ADMIN), Some(body))
            .await;
        assert_eq!(
            (r.status, r.field().as_deref()),
            (status, Some(field)),
            "{body}: {}",
            r.text()
        );
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }
    let r = h
        .call(
            Method::POST,
            "/api/v1/sla-classes",
            Some(ADMIN),
            Some("{nope"),
        )
        .await;
    assert_eq!((r.status, r.field()), (StatusCode::BAD_REQUEST, None));
    let raw = axum::http::Request::post("/api/v1/sla-classes")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from(r#"{"name":"x"}"#))
        .unwrap();
    assert_eq!(h.send(raw).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn policy_create_list_update_delete_keeps_match_order() {
    let h = Harness::new();
    let r = h
        .call(Method::POST, "/api/v1/policies", Some(ADMIN), Some(VOICE2))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(h.get("/api/v1/policies").await.json()),
        ["voice", "backup", "voice2"]
    );
    let got = h.get("/api/v1/policies/voice2").await.json();
    assert_eq!(got["rules"][0]["dscp"], 46);
    assert_eq!(got["mode"], "spread");

    let updated = VOICE2.replace("\"spread\"", "\"best-path\"").replace(
        "voice2\",\"sla_class\":\"voice",
        "voice2\",\"sla_class\":\"business",
    );
    let r = h
        .call(
            Method::PUT,
            "/api/v1/policies/voice2",
            Some(ADMIN),
            Some(&updated),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = h.get("/api/v1/policies/voice2").await.json();
    assert_eq!(
        (got["mode"].as_str(), got["sla_class"].as_str()),
        (Some("best-path"), Some("business"))
    );

    // Updating the first keeps it first.
    let voice = h.get("/api/v1/policies/voice").await.text();
    let r = h
        .call(
            Method::PUT,
            "/api/v1/policies/voice",
            Some(ADMIN),
            Some(&voice),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        names(h.get("/api/v1/policies").await.json()),
        ["voice", "backup", "voice2"]
    );

    let r = h
        .call(Method::DELETE, "/api/v1/policies/voice2", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        names(h.get("/api/v1/policies").await.json()),
        ["voice", "backup"]
    );
    assert_eq!(
        h.get("/api/v1/policies/voice2").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn policy_validation_names_the_field() {
    let h = Harness::new();
    let base: serde_json::Value = serde_json::from_str(VOICE2).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b.to_string()
    };
    let cases = [
        (
            with("sla_class", json!("platinum")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sla_class",
        ),
        (
            with("categories", json!(["VoIP", "Telepathy"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "categories[1]",
        ),
        (
            with("apps", json!(["zoom", "myspace"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "apps[1]",
        ),
        (
            with("rules", json!([{"dst": "10.0.0.0/33"}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].dst",
        ),
        (
            with("rules", json!([{}, {"protocol": "carrier-pigeon"}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[1].protocol",
        ),
        (
            with("rules", json!([{"dscp": 64}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].dscp",
        ),
        (
            with("rules", json!([{"dscp": 300}])),
            StatusCode::BAD_REQUEST,
            "rules[0].dscp",
        ),
        (
            with("path_order", json!(["port:wan7"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path_order[0]",
        ),
        (
            with("path_order", json!(["fastest"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "path_order[0]",
        ),
        (
            with("mode", json!("random")),
            StatusCode::BAD_REQUEST,
            "mode",
        ),
        (with("name", json!("voice")), StatusCode::CONFLICT, "name"),
        (with("name", json!(7)), StatusCode::BAD_REQUEST, "name"),
    ];
    for (body, status, field) in cases {
        let r = h
            .call(Method::POST, "/api/v1/policies", Some(ADMIN), Some(&body))
            .await;
        assert_eq!(
            (r.status, r.field().as_deref()),
            (status, Some(field)),
            "{body}: {}",
            r.text()
        );
    }
    assert_eq!(
        h.get("/api/v1/policies")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing was created"
    );
}

#[tokio::test]
async fn changes_are_audited_as_events_and_save_reaches_the_daemon() {
    let h = Harness::new();
    let before = h.get("/api/v1/events?after=0&limit=1000").await.json()["next"]
        .as_u64()
        .unwrap();
    let r = h
        .call(Method::POST, "/api/v1/policies", Some(ADMIN), Some(VOICE2))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h
        .call(Method::POST, "/api/v1/config/save", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let page = h
        .get(&format!("/api/v1/events?after={before}&limit=1000"))
        .await
        .json();
    let config: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "config")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(config, ["policy voice2 created", "configuration saved"]);
}

#[tokio::test]
async fn a_refusal_by_the_daemon_is_422_and_changes_nothing() {
    let api = Arc::new(ApiState::new("1"));
    api.publish(crate::api::demo::Demo::new().snapshot(1.0));
    let h = Harness::bare(api.clone());
    let daemon = std::thread::spawn(move || loop {
        if let Some((cmd, reply)) = api.try_recv_command() {
            assert!(matches!(cmd, ConfigCommand::SetSlaClass(_)));
            reply.send(Err("the selector is full".into()));
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    });
    let r = h
        .call(
            Method::POST,
            "/api/v1/sla-classes",
            Some(ADMIN),
            Some(r#"{"name":"gold"}"#),
        )
        .await;
    daemon.join().unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("the selector is full"));
    assert_eq!(
        h.get("/api/v1/sla-classes/gold").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let h = Harness::new();
    let r = h.get("/api/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
    let r = h
        .call(Method::DELETE, "/api/v1/status", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json()["error"].is_string());
}

#[tokio::test]
async fn the_dashboard_is_served_with_content_types() {
    let h = Harness::new();
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
    ] {
        let r = h.call(Method::GET, path, None, None).await;
        assert_eq!(
            (r.status, r.header("content-type")),
            (StatusCode::OK, ty),
            "{path}"
        );
        assert!(r
            .header("content-security-policy")
            .contains("default-src 'none'"));
        assert!(!r.body.is_empty());
    }
}
