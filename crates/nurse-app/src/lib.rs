//! The nurse app: the phone web app a nurse keeps open for a whole shift,
//! at `/nurse/`, hand-written (no framework, no bundler) and built into the
//! binary. It is installable (a web app manifest and a service worker that
//! caches only the app shell, never API answers).
//!
//! The app talks to the nurse API (`/v1/nurse/…`, its WebSocket) and the
//! sign-in API like any other client; this crate only serves the files and
//! a small `/nurse/config.json` (organisation, whether the dev sign-in is
//! on, the fix limits). It owns no data and must not reach into the services.
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles,
//! the manifest and the worker from this origin only, no inline code,
//! connections to this origin's HTTP and WebSocket only), `nosniff`, no
//! referrer and no framing. Files are revalidated (`no-cache` with an
//! `ETag`), so a new binary's app is never mixed with an old cached script.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_platform::web::{
    Asset, CSS, HTML, JS, MANIFEST, SVG, StaticFiles, secured, websocket_sources,
};
use yixin_platform::{ApiError, ErrorBody, Mount, Settings};

/// One asset built in from `assets/`, named as its file.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

/// The app and its assets, as built into the binary; the page first. The
/// service worker's shell list (`sw.js`) names the same files.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("socket.js", JS),
    asset!("fixes.js", JS),
    asset!("state.js", JS),
    asset!("maps.js", JS),
    asset!("alert.js", JS),
    asset!("sos.js", JS),
    asset!("suggestion.js", JS),
    asset!("i18n.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
    asset!("manifest.webmanifest", MANIFEST),
    asset!("sw.js", JS),
];
/// Where the page is in [`ASSETS`].
const PAGE: usize = 0;

/// What the app needs to know of the platform's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NurseAppConfig {
    /// The organisation nurses sign in to (the page's `?org=` overrides it).
    pub org: String,
    /// Whether `POST /v1/auth/dev-token` is on: the app then offers a
    /// sign-in by roster id (or external id) without an SMS code.
    pub dev_login: bool,
    /// The server refuses fixes less accurate than this (metres).
    pub max_accuracy_m: f64,
    /// Most fixes in one `locations` frame.
    pub max_fixes_per_batch: usize,
    /// A position older than this makes the nurse stale (not offered work).
    pub stale_after_secs: u64,
}

impl NurseAppConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            org: settings.demo.org_id.clone(),
            dev_login: settings.dev_login_enabled(),
            max_accuracy_m: settings.tracking.max_accuracy_m,
            max_fixes_per_batch: settings.tracking.max_fixes_per_batch,
            stale_after_secs: settings.tracking.stale_after_secs,
        }
    }
}

/// What the handlers share.
struct NurseApp {
    config: NurseAppConfig,
    files: StaticFiles,
}

/// The app's Content-Security-Policy.
fn content_security_policy(req: &HttpRequest) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{ws}; font-src 'self'; manifest-src 'self'; worker-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ws = websocket_sources(req),
    )
}

/// One asset (or 304), with the app's headers.
fn serve(app: &NurseApp, req: &HttpRequest, index: usize) -> HttpResponse {
    secured(
        app.files.response(req, index),
        &content_security_policy(req),
    )
}

/// The nurse app (a phone web page, installable). Sign in by phone and SMS
/// code; everything else goes through the nurse API and its socket.
#[utoipa::path(
    tag = "nurse",
    responses(
        (status = 200, description = "The nurse app", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` sent as `If-None-Match`"),
    )
)]
#[get("/nurse/")]
async fn page(req: HttpRequest, app: web::Data<NurseApp>) -> HttpResponse {
    serve(&app, &req, PAGE)
}

/// `/nurse` without the slash: to `/nurse/`, where the app's relative
/// links and its service worker's scope start.
#[utoipa::path(
    tag = "nurse",
    responses((status = 308, description = "To `/nurse/`"))
)]
#[get("/nurse")]
async fn page_redirect(req: HttpRequest) -> HttpResponse {
    let query = req.query_string();
    let to = if query.is_empty() {
        "/nurse/".to_owned()
    } else {
        format!("/nurse/?{query}")
    };
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// What the nurse app needs of the configuration: the organisation, whether
/// the dev sign-in is on, the limits on fixes. No secrets.
#[utoipa::path(
    tag = "nurse",
    responses((status = 200, body = NurseAppConfig))
)]
#[get("/nurse/config.json")]
async fn config_json(req: HttpRequest, app: web::Data<NurseApp>) -> HttpResponse {
    let res = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(&app.config);
    secured(res, &content_security_policy(&req))
}

/// One of the app's files (scripts, styles, icon, manifest, service
/// worker), built into the binary.
#[utoipa::path(
    tag = "nurse",
    params(("name" = String, Path, description = "File name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
            (String = "application/manifest+json"),
            (String = "text/html"),
        )),
        (status = 304, description = "Unchanged since the `ETag` sent as `If-None-Match`"),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
#[get("/nurse/{name}")]
async fn asset_file(
    req: HttpRequest,
    app: web::Data<NurseApp>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let index = app
        .files
        .index_of(&name)
        .ok_or_else(|| ApiError::not_found("no such nurse app file"))?;
    Ok(serve(&app, &req, index))
}

/// The routes of the nurse app: `GET /nurse/` (and `/nurse`, redirected),
/// its files under `/nurse/`, and `/nurse/config.json`.
pub fn mount(config: NurseAppConfig) -> Mount {
    let app = web::Data::new(NurseApp {
        config,
        files: StaticFiles::new(ASSETS),
    });
    Arc::new(move |cfg| {
        cfg.app_data(app.clone());
        cfg.service(page);
        cfg.service(page_redirect);
        cfg.service(config_json);
        cfg.service(asset_file);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use actix_web::{App, http::StatusCode, test as actix_test};
    use utoipa_actix_web::AppExt;

    fn config() -> NurseAppConfig {
        NurseAppConfig {
            org: "demo".to_owned(),
            dev_login: true,
            max_accuracy_m: 500.0,
            max_fixes_per_batch: 100,
            stale_after_secs: 60,
        }
    }

    async fn get(path: &str, etag: Option<&str>) -> actix_web::dev::ServiceResponse {
        let mount = mount(config());
        let app = actix_test::init_service(
            App::new()
                .into_utoipa_app()
                .configure(move |cfg| mount(cfg))
                .into_app(),
        )
        .await;
        let mut req = actix_test::TestRequest::get()
            .uri(path)
            .insert_header(("host", "127.0.0.1:8080"));
        if let Some(etag) = etag {
            req = req.insert_header(("if-none-match", etag));
        }
        actix_test::call_service(&app, req.to_request()).await
    }

    fn header<'a>(res: &'a actix_web::dev::ServiceResponse, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[actix_web::test]
    async fn the_app_and_its_files_have_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/nurse/", "text/html"),
            ("/nurse/app.js", "text/javascript"),
            ("/nurse/sw.js", "text/javascript"),
            ("/nurse/style.css", "text/css"),
            ("/nurse/icon.svg", "image/svg+xml"),
            ("/nurse/manifest.webmanifest", "application/manifest+json"),
        ] {
            let res = get(path, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(header(&res, "content-type").starts_with(kind), "{path}");
            assert_eq!(header(&res, "cache-control"), "no-cache", "{path}");
            assert_eq!(header(&res, "x-content-type-options"), "nosniff");
            let csp = header(&res, "content-security-policy");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("worker-src 'self';"), "{csp}");
            assert!(csp.contains("manifest-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
    }

    #[actix_web::test]
    async fn without_the_slash_it_redirects_keeping_the_query() {
        let res = get("/nurse?org=x", None).await;
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&res, "location"), "/nurse/?org=x");
    }

    #[actix_web::test]
    async fn a_current_copy_is_not_sent_again() {
        let res = get("/nurse/app.js", None).await;
        let etag = header(&res, "etag").to_owned();
        let res = get("/nurse/app.js", Some(&etag)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let other = get("/nurse/sw.js", None).await;
        assert_ne!(header(&other, "etag"), etag);
    }

    #[actix_web::test]
    async fn an_unknown_file_is_a_json_404() {
        for path in ["/nurse/nope.js", "/nurse/..%2FCargo.toml"] {
            let res = get(path, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            let body: serde_json::Value = actix_test::read_body_json(res).await;
            assert_eq!(body["error"]["code"], "not_found");
        }
    }

    #[actix_web::test]
    async fn the_config_says_what_the_app_needs() {
        let res = get("/nurse/config.json", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "cache-control"), "no-store");
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["org"], "demo");
        assert_eq!(body["dev_login"], true);
        assert_eq!(body["max_fixes_per_batch"], 100);
    }

    fn text(name: &str) -> &'static str {
        std::str::from_utf8(ASSETS.iter().find(|a| a.name == name).unwrap().body).unwrap()
    }

    #[test]
    fn every_script_is_used_and_the_shell_lists_every_file() {
        let html = text("index.html");
        let sw = text("sw.js");
        for asset in ASSETS {
            if asset.name.ends_with(".js") && asset.name != "sw.js" && asset.name != "app.js" {
                let imported = ASSETS.iter().filter(|a| a.name.ends_with(".js")).any(|a| {
                    std::str::from_utf8(a.body)
                        .unwrap()
                        .contains(&format!("./{}'", asset.name))
                });
                assert!(imported, "{} unused", asset.name);
            }
            if asset.name != "sw.js" {
                assert!(
                    sw.contains(&format!("'./{}'", asset.name)) || asset.name == "index.html",
                    "{} not in the shell",
                    asset.name
                );
            }
        }
        for name in ["app.js", "style.css", "icon.svg", "manifest.webmanifest"] {
            assert!(html.contains(&format!("./{name}")), "{name}");
        }
        assert!(sw.contains("'./'"), "the page is in the shell");
        assert!(!sw.contains("/v1/"), "the worker never names the API");
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style=\""), "no inline style");
    }

    #[test]
    fn the_manifest_is_json_and_starts_at_the_app() {
        let m: serde_json::Value = serde_json::from_str(text("manifest.webmanifest")).unwrap();
        assert_eq!(m["start_url"], "./");
        assert_eq!(m["display"], "standalone");
        assert!(m["icons"].as_array().is_some_and(|i| !i.is_empty()));
    }
}
