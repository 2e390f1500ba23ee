//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the model's types (utoipa), served at `/api/v1/openapi.json`. A test
//! (`tests/openapi.rs`) checks it against the routes the router really
//! serves, both ways.

use super::routes;
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "An API token (RFC 6750). Read-only tokens may GET; changes need an admin token."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Patronus management API",
        description = "Status, peers, paths, SLA classes, policies, flows, statistics and events of a Patronus SD-WAN node."
    ),
    paths(
        routes::healthz,
        routes::readyz,
        routes::metrics_text,
        routes::openapi_json,
        routes::status,
        routes::peers,
        routes::peer,
        routes::paths,
        routes::flows,
        routes::stats,
        routes::events,
        routes::event_stream,
        routes::list_classes,
        routes::get_class,
        routes::create_class,
        routes::update_class,
        routes::delete_class,
        routes::list_policies,
        routes::get_policy,
        routes::create_policy,
        routes::update_policy,
        routes::delete_policy,
        routes::save,
    ),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The document as served (built once).
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    })
}
