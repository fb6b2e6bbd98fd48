//! The HTTP server every service runs in: operational endpoints (`/healthz`,
//! `/readyz`, `/metrics`, `/openapi.json`), request limits, JSON errors for
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

/// Ready: every backend (database, queue) answers. 503 otherwise, with the
/// error body plus which check failed.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, body = ReadyReport), (status = 503, body = ErrorBody))
)]
#[get("/readyz")]
async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let results = futures_util::future::join_all(readiness.0.iter().map(|check| async move {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), check.check())
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
        .map(|(name, r)| (name, r.err().unwrap_or_else(|| "ok".to_owned())))
        .collect();
    if failed.is_empty() {
        HttpResponse::Ok().json(ReadyReport {
            status: "ready",
            checks,
        })
    } else {
        let mut body = serde_json::to_value(ApiError::Unavailable(failed.join("; ")).body())
            .unwrap_or_default();
        body["checks"] = serde_json::to_value(&checks).unwrap_or_default();
        HttpResponse::ServiceUnavailable().json(body)
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

async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Counts and times every request by route pattern (not raw path, so ids
/// don't explode the label set), and logs it.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let response = next.call(req).await?;
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
        tracing::warn!(%method, %route, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), ms = elapsed.as_millis() as u64, "request");
    }
    Ok(response)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Yixin",
        description = "Home-care nursing dispatch: a qualified nurse at the door within 30 minutes.",
        license(name = "Apache-2.0")
    ),
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
    app.split_for_parts().1
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
    let readiness = web::Data::new(readiness);
    let doc = web::Data::new(openapi(&mounts));
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
            .service(healthz)
            .service(readyz)
            .service(metrics_text);
        for mount in &mounts {
            let mount = mount.clone();
            app = app.configure(move |cfg| mount(cfg));
        }
        app.into_app()
            .route("/openapi.json", web::get().to(openapi_json))
            .default_service(web::to(not_found))
            .wrap(middleware::ErrorHandlers::new().default_handler(json_error_body))
            .wrap(middleware::from_fn(observe))
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
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let body = ErrorBody {
        error: crate::error::ErrorDetail {
            code: code.to_owned(),
            message: message.to_owned(),
            field: None,
        },
    };
    let (req, _) = res.into_parts();
    let response = HttpResponse::build(status).json(body);
    Ok(middleware::ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
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
    fn openapi_lists_the_operational_paths() {
        let doc = openapi(&[]);
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing");
        }
    }
}
