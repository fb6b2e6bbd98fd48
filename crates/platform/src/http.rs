//! The HTTP server every service runs in: operational endpoints (`/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`, `/asyncapi.json`), request limits, JSON errors for
//! everything actix would otherwise answer in plain text, request metrics,
//! and graceful shutdown.

use std::{net::TcpListener, sync::Arc, time::Instant};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{ServerHandle, ServiceRequest, ServiceResponse},
    get,
    http::StatusCode,
    middleware::{self, Next},
    web,
};
use async_trait::async_trait;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_actix_web::{AppExt, service_config::ServiceConfig};

use crate::{
    ApiError, ErrorBody,
    config::ServerSettings,
    extract::{BodyLimit, json_config, path_config, payload_config, query_config},
    telemetry,
};

/// A backend `/readyz` checks: the database, the queue.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Err` carries a short reason, shown to operators; no secrets.
    async fn check(&self) -> Result<(), String>;
    /// What `/readyz` shows for it: `ok`, or a short state when ready
    /// (e.g. the dispatch regions held); `Err` as [`Self::check`].
    async fn report(&self) -> Result<String, String> {
        self.check().await.map(|()| "ok".to_owned())
    }
}

/// All readiness checks of one process.
#[derive(Clone, Default)]
pub struct Readiness(Vec<Arc<dyn ReadinessCheck>>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.0.push(check);
        self
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Alive: the process answers HTTP. Says nothing about backends.
#[utoipa::path(tag = "operations", responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct ReadyReport {
    #[schema(example = "ready")]
    status: &'static str,
    /// Each backend and `ok` or why it failed.
    checks: std::collections::BTreeMap<&'static str, String>,
}

/// `/readyz`'s 503: the error body plus each backend and `ok` or why it failed.
#[derive(Serialize, ToSchema)]
struct NotReady {
    error: crate::error::ErrorDetail,
    checks: std::collections::BTreeMap<&'static str, String>,
}

/// Ready: every backend (database, queue) answers. 503 otherwise, with the
/// error body plus which check failed.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, body = ReadyReport), (status = 503, body = NotReady))
)]
#[get("/readyz")]
async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let results = futures_util::future::join_all(readiness.0.iter().map(|check| async move {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), check.report())
            .await
            .unwrap_or_else(|_| Err("timed out after 3 s".to_owned()));
        (check.name(), outcome)
    }))
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    let checks = results
        .into_iter()
        .map(|(name, r)| (name, r.unwrap_or_else(|e| e)))
        .collect();
    if failed.is_empty() {
        HttpResponse::Ok().json(ReadyReport {
            status: "ready",
            checks,
        })
    } else {
        let ErrorBody { error } = ApiError::Unavailable(failed.join("; ")).body();
        HttpResponse::ServiceUnavailable()
            .insert_header((
                "Retry-After",
                crate::request_id::retry_after_secs().to_string(),
            ))
            .json(NotReady { error, checks })
    }
}

/// Prometheus text exposition of the process's metrics.
#[utoipa::path(tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
#[get("/metrics")]
async fn metrics_text() -> HttpResponse {
    let handle = telemetry::metrics_handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}

/// The AsyncAPI document of the sockets, as served.
struct AsyncApiDoc(serde_json::Value);

/// The WebSocket frames (`/v1/nurse/ws`, `/v1/orders/{id}/live`,
/// `/v1/dispatch/live`) as an AsyncAPI 3.0 document.
#[utoipa::path(
    get,
    path = "/asyncapi.json",
    tag = "operations",
    responses((status = 200, description = "AsyncAPI 3.0", body = Object))
)]
async fn asyncapi_json(doc: web::Data<AsyncApiDoc>) -> HttpResponse {
    HttpResponse::Ok().json(&doc.0)
}

/// The hand-written AsyncAPI 3.0 document of the WebSocket frames. Its
/// frames name the HTTP API's views (`OrderView`, `DispatchOrder`, …) by
/// `#/components/schemas/…`; [`asyncapi`] copies those in.
pub const ASYNCAPI_SOURCE: &str = include_str!("../asyncapi.json");

/// The AsyncAPI document `/asyncapi.json` serves: [`ASYNCAPI_SOURCE`] with
/// copies of the schemas of `openapi` its frames name (and those they name
/// in turn), so it stands alone and cannot disagree with `/openapi.json`.
pub fn asyncapi(openapi: &utoipa::openapi::OpenApi) -> serde_json::Result<serde_json::Value> {
    let mut doc: serde_json::Value = serde_json::from_str(ASYNCAPI_SOURCE)?;
    let openapi = serde_json::to_value(openapi)?;
    let available = openapi.pointer("/components/schemas");
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Ok(doc);
    };
    let mut wanted = Vec::new();
    for schema in schemas.values() {
        schema_refs(schema, &mut wanted);
    }
    while let Some(name) = wanted.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(schema) = available.and_then(|a| a.get(&name)) {
            schema_refs(schema, &mut wanted);
            schemas.insert(name, schema.clone());
        }
    }
    Ok(doc)
}

/// Names of the component schemas `value` refers to.
fn schema_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match v
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    Some(name) if key == "$ref" => out.push(name.to_owned()),
                    _ => schema_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| schema_refs(v, out)),
        _ => {}
    }
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Largest request head (all header names and values) the platform reads;
/// a larger one gets 431 with the JSON error body. (Past actix's own hard
/// limits, 128 KiB or 96 headers, the HTTP layer answers 431 without a body
/// before any of this runs.)
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most request headers the platform reads (431 past it).
pub const MAX_HEADERS: usize = 64;

/// Gives every request its id ([`crate::request_id`]) and the context its
/// errors read (`Retry-After` of a 503), refuses oversized heads with 431,
/// counts and times every request by route pattern (not raw path, so ids
/// don't explode the label set), and logs it.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    retry_after_secs: u64,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let id = crate::request_id::accept_or_new(
        req.headers()
            .get(crate::request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let ctx = crate::request_id::RequestContext {
        id: id.clone(),
        retry_after_secs,
    };
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let too_large = head_bytes > MAX_HEADER_BYTES || req.headers().len() > MAX_HEADERS;
    let mut response = crate::request_id::scope(ctx, async move {
        if too_large {
            let body =
                ApiError::bad_request("headers_too_large", "request headers are too large").body();
            let response =
                HttpResponse::build(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).json(body);
            return Ok(req.into_response(response).map_into_boxed_body());
        }
        // Handlers' and extractors' errors become responses inside this
        // scope, so they carry the id.
        next.call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body)
    })
    .await?;
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(crate::request_id::HEADER),
            value,
        );
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::warn!(request_id = %id, %method, %route, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request");
    } else {
        tracing::debug!(request_id = %id, %method, %route, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request");
    }
    Ok(response)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Yixin",
        description = "Home-care nursing dispatch: a qualified nurse at the door within 30 minutes. The WebSocket frames are described by the AsyncAPI document at `/asyncapi.json`.",
        license(name = "Apache-2.0")
    ),
    paths(openapi_json, asyncapi_json),
    components(schemas(ErrorBody)),
    modifiers(&BearerSecurity),
    tags(
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "auth", description = "Tokens"),
        (name = "resident", description = "Ordering (order-intake)"),
        (name = "nurse", description = "Nurse phones (nurse-tracking)"),
        (name = "coordinator", description = "Dispatch and the dashboard (dispatcher)"),
    )
)]
struct BaseDoc;

/// Name of the OpenAPI security scheme for bearer JWTs; protected operations
/// say `#[utoipa::path(security(("bearer" = [])), …)]`.
pub const BEARER_SCHEME: &str = "bearer";

/// utoipa modifier adding the [`BEARER_SCHEME`] security scheme (HTTP
/// bearer, JWT) to a document. The served document gets it from the base
/// document here.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// What a service contributes to the app: routes (with their OpenAPI
/// annotations) and the app data they need.
pub type Mount = Arc<dyn Fn(&mut ServiceConfig<'_>) + Send + Sync>;

/// A running HTTP server.
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    pub handle: ServerHandle,
    pub server: actix_web::dev::Server,
}

/// The OpenAPI document of the given mounts (what `/openapi.json` serves).
pub fn openapi(mounts: &[Mount]) -> utoipa::openapi::OpenApi {
    let mut app = App::new().into_utoipa_app().openapi(BaseDoc::openapi());
    app = app.service(healthz).service(readyz).service(metrics_text);
    for mount in mounts {
        let mount = mount.clone();
        app = app.configure(move |cfg| mount(cfg));
    }
    let mut doc = app.split_for_parts().1;
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    doc
}

/// Adds to every operation the answers the platform itself gives, wherever
/// its annotation left them out: 401 on protected operations (403 depends
/// on the route's role, so each annotation says it), 400 on those with a query (`invalid_query`), 400, 413
/// and 422 on those with a JSON body ([`crate::JsonBody`]), 404 on those
/// with a path parameter (an id that cannot exist names nothing), and 431
/// (request headers too large) and 503 (a backend unavailable, with
/// `Retry-After`) everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, Required};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let with_id = path.contains('{');
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let with_body = operation.request_body.is_some();
                let with_query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
                let with_required_header = operation.parameters.iter().flatten().any(|p| {
                    matches!(p, RefOr::T(p)
                        if p.parameter_in == ParameterIn::Header && p.required == Required::True)
                });
                let answers = [
                    (
                        protected,
                        "401",
                        "No token, or a token expired, forged or malformed",
                    ),
                    (
                        with_body,
                        "400",
                        "Not JSON (`malformed_json`, `unsupported_content_type`)",
                    ),
                    (with_query, "400", "A bad query parameter (`invalid_query`)"),
                    (
                        with_required_header,
                        "400",
                        "A required header missing or malformed",
                    ),
                    (
                        with_body,
                        "413",
                        "The body is larger than `server.body_limit_bytes`",
                    ),
                    (
                        with_body,
                        "422",
                        "A field missing, of the wrong type or out of range; `field` names it",
                    ),
                    (
                        with_id,
                        "404",
                        "No such thing (or one the caller may not know exists)",
                    ),
                ];
                let responses = &mut operation.responses.responses;
                for (applies, status, description) in answers {
                    if applies {
                        responses
                            .entry(status.to_owned())
                            .or_insert_with(|| error_response(description));
                    }
                }
                responses.entry("431".to_owned()).or_insert_with(|| {
                    error_response("Request headers too large (`headers_too_large`)")
                });
                responses
                    .entry("503".to_owned())
                    .or_insert_with(unavailable_response);
            }
        }
    }
}

/// 503 `unavailable` with `Retry-After`: a backend did not answer in time.
fn unavailable_response() -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ObjectBuilder, header::HeaderBuilder, schema::Type};
    error_response_builder(
        "A backend (database, queue) did not answer in time (`unavailable`); \
         retry after `Retry-After` seconds",
    )
    .header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some("Seconds to wait before retrying"))
            .build(),
    )
    .build()
    .into()
}

/// A response with the contract's error body.
fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    error_response_builder(description).build().into()
}

fn error_response_builder(description: &str) -> utoipa::openapi::ResponseBuilder {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// Starts the server on `listener` (bind port 0 for tests). Signals are left
/// to the caller, which stops the server through `handle` once its own
/// workers are told to stop too.
pub fn start(
    listener: TcpListener,
    settings: &ServerSettings,
    readiness: Readiness,
    mounts: Vec<Mount>,
) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let limit = settings.body_limit_bytes;
    let retry_after_secs = settings.retry_after_secs;
    let readiness = web::Data::new(readiness);
    let doc = openapi(&mounts);
    let sockets = web::Data::new(AsyncApiDoc(
        asyncapi(&doc).map_err(|e| std::io::Error::other(format!("asyncapi.json: {e}")))?,
    ));
    let doc = web::Data::new(doc);
    // Touch the recorder before the first request so /metrics is never empty.
    let _ = telemetry::metrics_handle();
    let mut server = HttpServer::new(move || {
        let mut app = App::new()
            .into_utoipa_app()
            .app_data(BodyLimit(limit))
            .app_data(json_config(limit))
            .app_data(payload_config(limit))
            .app_data(query_config())
            .app_data(path_config())
            .app_data(readiness.clone())
            .app_data(doc.clone())
            .app_data(sockets.clone())
            .service(healthz)
            .service(readyz)
            .service(metrics_text);
        for mount in &mounts {
            let mount = mount.clone();
            app = app.configure(move |cfg| mount(cfg));
        }
        app.into_app()
            .route("/openapi.json", web::get().to(openapi_json))
            .route("/asyncapi.json", web::get().to(asyncapi_json))
            .default_service(web::to(not_found))
            .wrap(middleware::ErrorHandlers::new().default_handler(json_error_body))
            .wrap(middleware::from_fn(move |req, next| {
                observe(req, next, retry_after_secs)
            }))
    })
    .listen(listener)?
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .disable_signals();
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    let server = server.run();
    Ok(RunningServer {
        addr,
        handle: server.handle(),
        server,
    })
}

/// Responses actix builds itself (405 on a known path, 4xx from a guard…)
/// come without our JSON body; give them one. Responses that already carry
/// JSON are left alone.
fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<middleware::ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(res.status().is_client_error() || res.status().is_server_error()) {
        return Ok(middleware::ErrorHandlerResponse::Response(
            res.map_into_left_body(),
        ));
    }
    let status = res.status();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::NOT_FOUND => ("not_found", "not found"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "request headers are too large")
        }
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "a backend is temporarily unavailable; retry shortly",
        ),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let body = ErrorBody {
        error: crate::error::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
            request_id: crate::request_id::current(),
        },
    };
    let (req, _) = res.into_parts();
    let response = HttpResponse::build(status).json(body);
    Ok(middleware::ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// Where a request came from, for the audit trail: the peer's address,
/// and the `X-Forwarded-For` chain (cut to 200 characters) when a proxy
/// set one — as the client claims it, so kept apart from the peer.
pub fn client_addr(req: &actix_web::HttpRequest) -> Option<String> {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .filter(|s| !s.trim().is_empty());
    match (peer, forwarded) {
        (Some(p), Some(f)) => Some(format!("{p} (for {f})")),
        (Some(p), None) => Some(p),
        (None, Some(f)) => Some(format!("(for {f})")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test as actix_test};

    struct Failing;

    #[async_trait]
    impl ReadinessCheck for Failing {
        fn name(&self) -> &'static str {
            "database"
        }
        async fn check(&self) -> Result<(), String> {
            Err("connection refused".to_owned())
        }
    }

    #[actix_web::test]
    async fn readyz_reports_the_failing_backend() {
        let app = actix_test::init_service(
            App::new()
                .app_data(web::Data::new(Readiness::new().with(Arc::new(Failing))))
                .service(readyz),
        )
        .await;
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/readyz").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["checks"]["database"], "connection refused");
    }

    #[test]
    fn asyncapi_copies_the_schemas_its_frames_name() {
        #[derive(utoipa::OpenApi)]
        #[openapi(components(schemas(crate::views::Location, ErrorBody)))]
        struct Doc;
        let doc = asyncapi(&Doc::openapi()).expect("asyncapi.json parses");
        assert_eq!(doc["asyncapi"], "3.0.0");
        let schemas = &doc["components"]["schemas"];
        // Named by the frames, so copied; not named, so left out.
        assert_eq!(schemas["Location"]["properties"]["lat"]["maximum"], 90.0);
        assert!(schemas.get("ErrorBody").is_none());
        for channel in ["/v1/nurse/ws", "/v1/orders/{id}/live", "/v1/dispatch/live"] {
            assert!(
                doc["channels"]
                    .as_object()
                    .expect("channels")
                    .values()
                    .any(|c| c["address"] == channel),
                "{channel} missing"
            );
        }
    }

    #[test]
    fn every_operation_lists_what_the_platform_answers() {
        let doc = serde_json::to_value(openapi(&[])).expect("document as JSON");
        let ready = &doc["paths"]["/readyz"]["get"]["responses"];
        assert_eq!(
            ready["503"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/NotReady"
        );
        assert!(ready.get("431").is_some());
        // Not protected, no body: no 401 or 422 invented.
        assert!(ready.get("401").is_none());
        assert!(ready.get("422").is_none());
    }

    #[test]
    fn openapi_lists_the_operational_paths() {
        let doc = openapi(&[]);
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
