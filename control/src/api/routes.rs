//! The HTTP routes: `/api/v1/*` (JSON), `/metrics`, `/healthz`, `/readyz`
//! and the dashboard. Each route is registered through `Table`, which
//! also records its path, methods and access, so the OpenAPI test can
//! compare the document with what the router really serves.
//!
//! Handlers read one snapshot per request and never panic on input: bad
//! parameters and bodies become 4xx JSON errors ([`super::error`]).

use super::auth::{require_token, Authenticator};
use super::error::{json_body, ErrorResponse};
use super::model::{
    ErrorBody, Event, EventPage, Flow, Health, Path, Peer, Policy, SlaClass, Stats, Status,
};
use super::state::{ApiState, CommandError, ConfigCommand, Snapshot};
use super::{dashboard, metrics, openapi, validate};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long a configuration change waits for the daemon's control loop
/// (which polls every millisecond or so) before answering 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Request bodies are small JSON objects.
const BODY_LIMIT: usize = 64 * 1024;
/// `limit` parameters at most (events and flows).
pub const MAX_LIMIT: u64 = 1000;

#[derive(Clone)]
pub(crate) struct Ctx {
    pub api: Arc<ApiState>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `/healthz`, `/readyz`, the OpenAPI document.
    Public,
    /// A bearer token; read-only suffices for GET.
    Token,
    /// The dashboard's static files: public, and not part of the API
    /// document.
    Static,
}

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub path: &'static str,
    pub methods: Vec<Method>,
    pub access: Access,
}

struct Table {
    router: Router<Ctx>,
    routes: Vec<RouteInfo>,
    auth: Arc<Authenticator>,
}

impl Table {
    fn add(
        mut self,
        access: Access,
        path: &'static str,
        methods: &[Method],
        route: MethodRouter<Ctx>,
    ) -> Table {
        let route = match access {
            Access::Token => route.route_layer(middleware::from_fn_with_state(
                self.auth.clone(),
                require_token,
            )),
            Access::Public | Access::Static => route,
        };
        self.router = self.router.route(path, route);
        self.routes.push(RouteInfo {
            path,
            methods: methods.to_vec(),
            access,
        });
        self
    }
}

/// The router and the list of what it serves.
pub(crate) fn build(api: Arc<ApiState>, auth: Arc<Authenticator>) -> (Router, Vec<RouteInfo>) {
    use Access::*;
    use Method as M;
    let table = Table {
        router: Router::new(),
        routes: Vec::new(),
        auth,
    }
    .add(Public, "/healthz", &[M::GET], get(healthz))
    .add(Public, "/readyz", &[M::GET], get(readyz))
    .add(Token, "/metrics", &[M::GET], get(metrics_text))
    .add(Public, "/api/v1/openapi.json", &[M::GET], get(openapi_json))
    .add(Token, "/api/v1/status", &[M::GET], get(status))
    .add(Token, "/api/v1/peers", &[M::GET], get(peers))
    .add(Token, "/api/v1/peers/{name}", &[M::GET], get(peer))
    .add(Token, "/api/v1/paths", &[M::GET], get(paths))
    .add(
        Token,
        "/api/v1/sla-classes",
        &[M::GET, M::POST],
        get(list_classes).post(create_class),
    )
    .add(
        Token,
        "/api/v1/sla-classes/{name}",
        &[M::GET, M::PUT, M::DELETE],
        get(get_class).put(update_class).delete(delete_class),
    )
    .add(
        Token,
        "/api/v1/policies",
        &[M::GET, M::POST],
        get(list_policies).post(create_policy),
    )
    .add(
        Token,
        "/api/v1/policies/{name}",
        &[M::GET, M::PUT, M::DELETE],
        get(get_policy).put(update_policy).delete(delete_policy),
    )
    .add(Token, "/api/v1/flows", &[M::GET], get(flows))
    .add(Token, "/api/v1/stats", &[M::GET], get(stats))
    .add(Token, "/api/v1/events", &[M::GET], get(events))
    .add(Token, "/api/v1/events/stream", &[M::GET], get(event_stream))
    .add(Token, "/api/v1/config/save", &[M::POST], post(save))
    .add(Static, "/", &[M::GET], get(dashboard::index))
    .add(
        Static,
        "/dashboard/app.js",
        &[M::GET],
        get(dashboard::app_js),
    )
    .add(
        Static,
        "/dashboard/style.css",
        &[M::GET],
        get(dashboard::style_css),
    );
    let router = table
        .router
        .fallback(|| async { ErrorResponse::not_found("such route") })
        .method_not_allowed_fallback(|| async {
            ErrorResponse::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(common_headers))
        .with_state(Ctx { api });
    (router, table.routes)
}

/// The API's router, ready to serve (without TLS or a listener: see
/// [`super::server::spawn`]). Also usable with `tower::ServiceExt::oneshot`
/// in tests.
pub fn router(api: Arc<ApiState>, auth: Arc<Authenticator>) -> Router {
    build(api, auth).0
}

/// Headers for every response, and one access-log line per request at
/// debug level: method, path and status only, never headers or the query.
async fn common_headers(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Live data: never serve it from a cache.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    log::debug!("api: {method} {path} {}", response.status().as_u16());
    response
}

// ---- parameters ----

fn query(raw: Option<String>) -> Result<Vec<(String, String)>, ErrorResponse> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ErrorResponse::new(StatusCode::BAD_REQUEST, format!("bad query string: {e}")))
}

fn number(
    q: &[(String, String)],
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ErrorResponse> {
    let Some((_, v)) = q.iter().rev().find(|(k, _)| k == name) else {
        return Ok(None);
    };
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ErrorResponse::field(
            StatusCode::BAD_REQUEST,
            name,
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

fn text<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---- health ----

#[utoipa::path(get, path = "/healthz", tag = "health",
    description = "Liveness: the API thread answers.",
    responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    description = "Readiness: every port is up and every worker polls.",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn readyz(State(ctx): State<Ctx>) -> Response {
    if ctx.api.is_ready() {
        Json(Health {
            status: "ready".into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "not ready".into(),
            }),
        )
            .into_response()
    }
}

#[utoipa::path(get, path = "/metrics", tag = "metrics",
    description = "Prometheus text exposition format 0.0.4.",
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn metrics_text(State(ctx): State<Ctx>) -> Response {
    match metrics::render(&ctx.api) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            log::warn!("api: rendering metrics failed: {e}");
            ErrorResponse::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering metrics failed",
            )
            .into_response()
        }
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    description = "This document (OpenAPI 3.1).",
    responses((status = 200, body = Object, content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi::json(),
    )
        .into_response()
}

// ---- read-only views ----

#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = Status), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn status(State(ctx): State<Ctx>) -> Json<Status> {
    Json(ctx.api.status())
}

#[utoipa::path(get, path = "/api/v1/peers", tag = "peers",
    responses((status = 200, body = Vec<Peer>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn peers(State(ctx): State<Ctx>) -> Json<Vec<Peer>> {
    Json(ctx.api.snapshot().peers.clone())
}

#[utoipa::path(get, path = "/api/v1/peers/{name}", tag = "peers",
    params(("name" = String, Path, description = "Peer name")),
    responses((status = 200, body = Peer), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn peer(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Peer>, ErrorResponse> {
    let snap = ctx.api.snapshot();
    snap.peers
        .iter()
        .find(|p| p.name == name)
        .map(|p| Json(p.clone()))
        .ok_or_else(|| ErrorResponse::not_found("such peer"))
}

#[utoipa::path(get, path = "/api/v1/paths", tag = "paths",
    params(("peer" = Option<String>, Query, description = "Only this peer's paths")),
    responses((status = 200, body = Vec<Path>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn paths(
    State(ctx): State<Ctx>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Path>>, ErrorResponse> {
    let q = query(raw)?;
    let snap = ctx.api.snapshot();
    let peer = text(&q, "peer");
    Ok(Json(
        snap.paths
            .iter()
            .filter(|p| peer.is_none_or(|name| p.peer == name))
            .cloned()
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/flows", tag = "flows",
    description = "The top flows by bytes, most first.",
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 20)")),
    responses((status = 200, body = Vec<Flow>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn flows(
    State(ctx): State<Ctx>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Flow>>, ErrorResponse> {
    let q = query(raw)?;
    let limit = number(&q, "limit", 1, MAX_LIMIT)?.unwrap_or(20) as usize;
    let snap = ctx.api.snapshot();
    let mut flows = snap.flows.clone();
    flows.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    flows.truncate(limit);
    Ok(Json(flows))
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn stats(State(ctx): State<Ctx>) -> Json<Stats> {
    Json(ctx.api.snapshot().stats.clone())
}

// ---- events ----

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    description = "Event history, oldest first. With `after`: the events after that seq; without: the latest `limit`.",
    params(
        ("after" = Option<u64>, Query, minimum = 0, maximum = 9223372036854775807_i64, description = "Only events with a larger seq"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)")),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn events(
    State(ctx): State<Ctx>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventPage>, ErrorResponse> {
    let q = query(raw)?;
    // The document says int64; seqs never get near it.
    let after = number(&q, "after", 0, i64::MAX as u64)?;
    let limit = number(&q, "limit", 1, MAX_LIMIT)?.unwrap_or(100) as usize;
    Ok(Json(ctx.api.events_page(after, limit)))
}

/// An SSE event name must be one line; the daemon's kinds are plain
/// words, but a stray newline must not panic axum's encoder.
fn sse_event(e: &Event) -> Option<SseEvent> {
    let kind: String = e
        .kind
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    let kind = if kind.is_empty() {
        "message".into()
    } else {
        kind
    };
    SseEvent::default()
        .id(e.seq.to_string())
        .event(kind)
        .json_data(e)
        .ok()
}

struct Feed {
    api: Arc<ApiState>,
    backlog: VecDeque<Event>,
    live: tokio::sync::broadcast::Receiver<Event>,
    last: u64,
    closing: tokio::sync::watch::Receiver<bool>,
}

async fn next_event(mut feed: Feed) -> Option<(Result<SseEvent, Infallible>, Feed)> {
    loop {
        if let Some(e) = feed.backlog.pop_front() {
            if e.seq <= feed.last {
                continue;
            }
            feed.last = e.seq;
            if let Some(sse) = sse_event(&e) {
                return Some((Ok(sse), feed));
            }
            continue;
        }
        if *feed.closing.borrow() {
            return None;
        }
        tokio::select! {
            _ = feed.closing.changed() => return None,
            r = feed.live.recv() => match r {
                Ok(e) => feed.backlog.push_back(e),
                // Fell behind the live channel: catch up from the ring
                // (events older than the ring are gone; the seq gap shows it).
                Err(RecvError::Lagged(_)) => {
                    let (backlog, live) = feed.api.subscribe(feed.last);
                    feed.backlog = backlog.into();
                    feed.live = live;
                }
                Err(RecvError::Closed) => return None,
            },
        }
    }
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events",
    description = "Live events as Server-Sent Events (WHATWG HTML §9.2): `id: <seq>`, `event: <kind>`, `data: <Event JSON>`. \
        A reconnecting client's `Last-Event-ID` resumes after that seq (from the ring of recent events); without it, only new events are sent.",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this seq")),
    responses((status = 200, body = String, content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn event_stream(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // WHATWG: the header echoes whatever id the client saw; one we did not
    // send (not a number) means "from now".
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (backlog, live) = ctx.api.subscribe(resume.unwrap_or(u64::MAX));
    let feed = Feed {
        last: resume.unwrap_or(0),
        backlog: backlog.into(),
        live,
        closing: ctx.api.closing.subscribe(),
        api: ctx.api.clone(),
    };
    Sse::new(stream::unfold(feed, next_event)).keep_alive(KeepAlive::default())
}

// ---- configuration ----

async fn apply(ctx: &Ctx, command: ConfigCommand, audit: Event) -> Result<(), ErrorResponse> {
    let patch = command.clone();
    match ctx.api.command(command, COMMAND_TIMEOUT).await {
        Ok(()) => {
            ctx.api.patch(|s| apply_to(s, &patch));
            log::info!("api: {}", audit.message);
            ctx.api.push_event(audit);
            Ok(())
        }
        Err(CommandError::Rejected(message)) => Err(ErrorResponse::new(
            if patch == ConfigCommand::Save {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            format!("the daemon refused the change: {message}"),
        )),
        Err(CommandError::Unavailable(why)) => Err(ErrorResponse::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{why}; the change may or may not have been applied"),
        )),
    }
}

/// What a command does to the published configuration lists; the daemon
/// may use it too (the demo does).
pub fn apply_to(s: &mut Snapshot, command: &ConfigCommand) {
    match command {
        ConfigCommand::SetSlaClass(c) => {
            match s.sla_classes.iter_mut().find(|x| x.name == c.name) {
                Some(x) => *x = c.clone(),
                None => s.sla_classes.push(c.clone()),
            }
        }
        ConfigCommand::RemoveSlaClass(name) => s.sla_classes.retain(|c| &c.name != name),
        ConfigCommand::SetPolicy(p) => match s.policies.iter_mut().find(|x| x.name == p.name) {
            Some(x) => *x = p.clone(),
            None => s.policies.push(p.clone()),
        },
        ConfigCommand::RemovePolicy(name) => s.policies.retain(|p| &p.name != name),
        ConfigCommand::Save => {}
    }
}

fn unprocessable(e: validate::Invalid) -> ErrorResponse {
    ErrorResponse::field(StatusCode::UNPROCESSABLE_ENTITY, &e.field, e.message)
}

fn name_mismatch(path: &str, body: &str) -> Option<ErrorResponse> {
    (path != body).then(|| {
        ErrorResponse::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            format!("the body names {body:?} but the URL {path:?}; renaming is not supported"),
        )
    })
}

fn created(location: String, body: impl serde::Serialize) -> Response {
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[utoipa::path(get, path = "/api/v1/sla-classes", tag = "sla-classes",
    responses((status = 200, body = Vec<SlaClass>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_classes(State(ctx): State<Ctx>) -> Json<Vec<SlaClass>> {
    Json(ctx.api.snapshot().sla_classes.clone())
}

#[utoipa::path(get, path = "/api/v1/sla-classes/{name}", tag = "sla-classes",
    params(("name" = String, Path)),
    responses((status = 200, body = SlaClass), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_class(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<SlaClass>, ErrorResponse> {
    let snap = ctx.api.snapshot();
    snap.sla_classes
        .iter()
        .find(|c| c.name == name)
        .map(|c| Json(c.clone()))
        .ok_or_else(|| ErrorResponse::not_found("such SLA class"))
}

#[utoipa::path(post, path = "/api/v1/sla-classes", tag = "sla-classes",
    description = "Create an SLA class; it takes effect at once, without a restart.",
    request_body(content = SlaClass, content_type = "application/json"),
    responses((status = 201, body = SlaClass), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_class(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let class: SlaClass = json_body(&headers, &body, &[])?;
    validate::sla_class(&class).map_err(unprocessable)?;
    let _write = ctx.api.write_lock.lock().await;
    if ctx
        .api
        .snapshot()
        .sla_classes
        .iter()
        .any(|c| c.name == class.name)
    {
        return Err(ErrorResponse::field(
            StatusCode::CONFLICT,
            "name",
            "an SLA class of that name exists; PUT to change it",
        ));
    }
    let audit = Event::new("config", format!("SLA class {} created", class.name));
    apply(&ctx, ConfigCommand::SetSlaClass(class.clone()), audit).await?;
    Ok(created(
        format!("/api/v1/sla-classes/{}", class.name),
        class,
    ))
}

#[utoipa::path(put, path = "/api/v1/sla-classes/{name}", tag = "sla-classes",
    description = "Replace an SLA class; policies using it follow at once.",
    params(("name" = String, Path)),
    request_body(content = SlaClass, content_type = "application/json"),
    responses((status = 200, body = SlaClass), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_class(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<SlaClass>, ErrorResponse> {
    let class: SlaClass = json_body(&headers, &body, &[])?;
    let _write = ctx.api.write_lock.lock().await;
    if !ctx
        .api
        .snapshot()
        .sla_classes
        .iter()
        .any(|c| c.name == name)
    {
        return Err(ErrorResponse::not_found("such SLA class"));
    }
    if let Some(e) = name_mismatch(&name, &class.name) {
        return Err(e);
    }
    validate::sla_class(&class).map_err(unprocessable)?;
    let audit = Event::new("config", format!("SLA class {} updated", class.name));
    apply(&ctx, ConfigCommand::SetSlaClass(class.clone()), audit).await?;
    Ok(Json(class))
}

#[utoipa::path(delete, path = "/api/v1/sla-classes/{name}", tag = "sla-classes",
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A policy uses it"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_class(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
) -> Result<StatusCode, ErrorResponse> {
    let _write = ctx.api.write_lock.lock().await;
    let snap = ctx.api.snapshot();
    if !snap.sla_classes.iter().any(|c| c.name == name) {
        return Err(ErrorResponse::not_found("such SLA class"));
    }
    let users: Vec<&str> = snap
        .policies
        .iter()
        .filter(|p| p.sla_class == name)
        .map(|p| p.name.as_str())
        .collect();
    if !users.is_empty() {
        return Err(ErrorResponse::field(
            StatusCode::CONFLICT,
            "name",
            format!("in use by policies: {}", users.join(", ")),
        ));
    }
    let audit = Event::new("config", format!("SLA class {name} deleted"));
    apply(&ctx, ConfigCommand::RemoveSlaClass(name), audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    description = "In match order: the first policy that takes a flow wins.",
    responses((status = 200, body = Vec<Policy>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_policies(State(ctx): State<Ctx>) -> Json<Vec<Policy>> {
    Json(ctx.api.snapshot().policies.clone())
}

#[utoipa::path(get, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path)),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_policy(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Policy>, ErrorResponse> {
    let snap = ctx.api.snapshot();
    snap.policies
        .iter()
        .find(|p| p.name == name)
        .map(|p| Json(p.clone()))
        .ok_or_else(|| ErrorResponse::not_found("such policy"))
}

#[utoipa::path(post, path = "/api/v1/policies", tag = "policies",
    description = "Create a policy (matched after the existing ones); it takes effect at once.",
    request_body(content = Policy, content_type = "application/json"),
    responses((status = 201, body = Policy), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create_policy(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let policy: Policy = json_body(&headers, &body, &["rules"])?;
    let _write = ctx.api.write_lock.lock().await;
    let snap = ctx.api.snapshot();
    validate::name("name", &policy.name).map_err(unprocessable)?;
    if snap.policies.iter().any(|p| p.name == policy.name) {
        return Err(ErrorResponse::field(
            StatusCode::CONFLICT,
            "name",
            "a policy of that name exists; PUT to change it",
        ));
    }
    validate::policy(&policy, &snap).map_err(unprocessable)?;
    let audit =
        Event::new("config", format!("policy {} created", policy.name)).policy(&policy.name);
    apply(&ctx, ConfigCommand::SetPolicy(policy.clone()), audit).await?;
    Ok(created(format!("/api/v1/policies/{}", policy.name), policy))
}

#[utoipa::path(put, path = "/api/v1/policies/{name}", tag = "policies",
    description = "Replace a policy, keeping its match position; it takes effect at once.",
    params(("name" = String, Path)),
    request_body(content = Policy, content_type = "application/json"),
    responses((status = 200, body = Policy), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_policy(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Policy>, ErrorResponse> {
    let policy: Policy = json_body(&headers, &body, &["rules"])?;
    let _write = ctx.api.write_lock.lock().await;
    let snap = ctx.api.snapshot();
    if !snap.policies.iter().any(|p| p.name == name) {
        return Err(ErrorResponse::not_found("such policy"));
    }
    if let Some(e) = name_mismatch(&name, &policy.name) {
        return Err(e);
    }
    validate::policy(&policy, &snap).map_err(unprocessable)?;
    let audit =
        Event::new("config", format!("policy {} updated", policy.name)).policy(&policy.name);
    apply(&ctx, ConfigCommand::SetPolicy(policy.clone()), audit).await?;
    Ok(Json(policy))
}

#[utoipa::path(delete, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete_policy(
    State(ctx): State<Ctx>,
    UrlPath(name): UrlPath<String>,
) -> Result<StatusCode, ErrorResponse> {
    let _write = ctx.api.write_lock.lock().await;
    if !ctx.api.snapshot().policies.iter().any(|p| p.name == name) {
        return Err(ErrorResponse::not_found("such policy"));
    }
    let audit = Event::new("config", format!("policy {name} deleted")).policy(&name);
    apply(&ctx, ConfigCommand::RemovePolicy(name), audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/config/save", tag = "config",
    description = "Write the running configuration (with the changes made through the API) back to the config file.",
    responses((status = 204, description = "Saved"), (status = 500, body = ErrorBody, description = "Writing failed"),
        (status = 503, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn save(State(ctx): State<Ctx>) -> Result<StatusCode, ErrorResponse> {
    let _write = ctx.api.write_lock.lock().await;
    apply(
        &ctx,
        ConfigCommand::Save,
        Event::new("config", "configuration saved"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
