//! The coordinator dashboard: one web page at `/dashboard` with its
//! scripts and styles, hand-written (no framework, no bundler) and built
//! into the binary, so serving it needs no Node.js and no files on disk.
//!
//! The page talks to the coordinator API (`/v1/dispatch/…`) and its live
//! feed like any other client; this crate only serves the files and a small
//! `/dashboard/config.json` (tile URL, whether the dev sign-in is on, the
//! staleness limit). It owns no data and must not reach into the services.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline code, images from this origin
//! and the configured tile server only, connections to this origin's HTTP
//! and WebSocket only), `nosniff`, no referrer and no framing. Assets are
//! revalidated (`no-cache` with an `ETag`), so a new binary's page is never
//! mixed with an old cached script.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;
pub use yixin_platform::web::tile_source;
use yixin_platform::web::{Asset, CSS, HTML, JS, SVG, StaticFiles, secured, websocket_sources};
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

/// The page and its assets, as built into the binary; the page first.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("map.js", JS),
    asset!("i18n.js", JS),
    asset!("state.js", JS),
    asset!("governance.js", JS),
    asset!("reviews.js", JS),
    asset!("alarms.js", JS),
    asset!("forecast.js", JS),
    asset!("style.css", CSS),
    asset!("governance.css", CSS),
    asset!("alarms.css", CSS),
    asset!("favicon.svg", SVG),
];
/// Where the page is in [`ASSETS`].
const PAGE: usize = 0;

/// What the page needs to know of the platform's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DashboardConfig {
    /// XYZ template of the base map tiles; empty: no base map.
    pub tile_url: String,
    /// Credit for the tiles, shown under the map.
    pub tile_attribution: String,
    /// Whether `POST /v1/auth/dev-token` is on: the page then offers a
    /// one-click sign-in as a coordinator of `dev_org`.
    pub dev_login: bool,
    /// The organisation of the dev sign-in (the demo organisation).
    pub dev_org: String,
    /// A nurse whose latest fix is older than this is shown as stale.
    pub stale_after_secs: u64,
}

impl DashboardConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            tile_url: settings.dashboard.tile_url.trim().to_owned(),
            tile_attribution: settings.dashboard.tile_attribution.trim().to_owned(),
            dev_login: settings.dev_login_enabled(),
            dev_org: settings.demo.org_id.clone(),
            stale_after_secs: settings.tracking.stale_after_secs,
        }
    }
}

/// What the handlers share.
struct Dashboard {
    config: DashboardConfig,
    /// The CSP's `img-src` sources beyond `'self' data:`: the tile server.
    tile_source: Option<String>,
    files: StaticFiles,
}

/// The page's Content-Security-Policy.
fn content_security_policy(dashboard: &Dashboard, req: &HttpRequest) -> String {
    let tiles = dashboard
        .tile_source
        .as_deref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; \
         connect-src 'self'{ws}; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        ws = websocket_sources(req),
    )
}

/// One asset (or 304), with the page's headers.
fn serve(dashboard: &Dashboard, req: &HttpRequest, index: usize) -> HttpResponse {
    secured(
        dashboard.files.response(req, index),
        &content_security_policy(dashboard, req),
    )
}

/// The coordinator dashboard (a web page). Sign in with a coordinator's
/// token (or, where dev login is on, with one click); everything else it
/// does goes through the coordinator API.
#[utoipa::path(
    tag = "coordinator",
    responses(
        (status = 200, description = "The dashboard page", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` sent as `If-None-Match`"),
    )
)]
#[get("/dashboard")]
async fn page(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    serve(&dashboard, &req, PAGE)
}

/// What the dashboard page needs of the configuration: the base-map tile
/// URL (`dashboard.tile_url`, empty by default), whether the dev sign-in
/// is on, the staleness limit of nurse positions. No secrets.
#[utoipa::path(
    tag = "coordinator",
    responses((status = 200, body = DashboardConfig))
)]
#[get("/dashboard/config.json")]
async fn config_json(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    let res = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(&dashboard.config);
    secured(res, &content_security_policy(&dashboard, &req))
}

/// One of the page's files (scripts, styles, icon), built into the binary.
#[utoipa::path(
    tag = "coordinator",
    params(("name" = String, Path, description = "File name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
            (String = "text/html"),
        )),
        (status = 304, description = "Unchanged since the `ETag` sent as `If-None-Match`"),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
#[get("/dashboard/{name}")]
async fn asset_file(
    req: HttpRequest,
    dashboard: web::Data<Dashboard>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let index = dashboard
        .files
        .index_of(&name)
        .ok_or_else(|| ApiError::not_found("no such dashboard file"))?;
    Ok(serve(&dashboard, &req, index))
}

/// The routes of the dashboard: `GET /dashboard` (also `/dashboard/`), its
/// assets under `/dashboard/`, and `/dashboard/config.json`.
pub fn mount(config: DashboardConfig) -> Mount {
    let dashboard = web::Data::new(Dashboard {
        tile_source: tile_source(&config.tile_url),
        config,
        files: StaticFiles::new(ASSETS),
    });
    Arc::new(move |cfg| {
        cfg.app_data(dashboard.clone());
        cfg.service(page);
        cfg.service(config_json);
        cfg.route("/dashboard/", web::get().to(page_again));
        cfg.service(asset_file);
    })
}

/// `/dashboard/`: the page too.
async fn page_again(req: HttpRequest, dashboard: web::Data<Dashboard>) -> HttpResponse {
    serve(&dashboard, &req, PAGE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use actix_web::{App, http::StatusCode, test as actix_test};
    use utoipa_actix_web::AppExt;

    fn config(tile_url: &str) -> DashboardConfig {
        DashboardConfig {
            tile_url: tile_url.to_owned(),
            tile_attribution: String::new(),
            dev_login: true,
            dev_org: "demo".to_owned(),
            stale_after_secs: 60,
        }
    }

    async fn get(
        tile_url: &str,
        path: &str,
        etag: Option<&str>,
    ) -> actix_web::dev::ServiceResponse {
        let mount = mount(config(tile_url));
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
    async fn the_page_and_assets_have_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/dashboard", "text/html"),
            ("/dashboard/", "text/html"),
            ("/dashboard/app.js", "text/javascript"),
            ("/dashboard/style.css", "text/css"),
            ("/dashboard/favicon.svg", "image/svg+xml"),
        ] {
            let res = get("", path, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(header(&res, "content-type").starts_with(kind), "{path}");
            assert_eq!(header(&res, "cache-control"), "no-cache", "{path}");
            assert_eq!(header(&res, "x-content-type-options"), "nosniff");
            let csp = header(&res, "content-security-policy");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(
                csp.contains("img-src 'self' data:;"),
                "no tile server: {csp}"
            );
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
    }

    #[actix_web::test]
    async fn a_current_copy_is_not_sent_again() {
        let res = get("", "/dashboard/app.js", None).await;
        let etag = header(&res, "etag").to_owned();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
        let res = get("", "/dashboard/app.js", Some(&etag)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let res = get("", "/dashboard/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let other = get("", "/dashboard/map.js", None).await;
        assert_ne!(header(&other, "etag"), etag);
    }

    #[actix_web::test]
    async fn an_unknown_file_is_a_json_404() {
        for path in ["/dashboard/nope.js", "/dashboard/..%2FCargo.toml"] {
            let res = get("", path, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            let body: serde_json::Value = actix_test::read_body_json(res).await;
            assert_eq!(body["error"]["code"], "not_found");
        }
    }

    #[actix_web::test]
    async fn the_config_names_the_tiles_and_the_policy_allows_them() {
        let url = "https://{s}.tiles.example.org/{z}/{x}/{y}.png";
        let res = get(url, "/dashboard/config.json", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "cache-control"), "no-store");
        let csp = header(&res, "content-security-policy").to_owned();
        assert!(
            csp.contains("img-src 'self' data: https://*.tiles.example.org;"),
            "{csp}"
        );
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["tile_url"], url);
        assert_eq!(body["dev_login"], true);
        assert_eq!(body["dev_org"], "demo");
        assert_eq!(body["stale_after_secs"], 60);
    }

    #[test]
    fn tile_sources() {
        assert_eq!(
            tile_source("https://tiles.example.org:8443/{z}/{x}/{y}.png").as_deref(),
            Some("https://tiles.example.org:8443")
        );
        assert_eq!(
            tile_source("http://{s}.tile.example/{z}/{x}/{y}.png").as_deref(),
            Some("http://*.tile.example")
        );
        assert_eq!(tile_source(""), None);
        assert_eq!(tile_source("javascript://x/{z}"), None);
        assert_eq!(tile_source("https://a b/{z}"), None);
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for asset in ASSETS {
            if asset.name != "index.html" && asset.name.ends_with(".js") {
                // Modules are loaded by app.js; each must be imported somewhere.
                let imported = ASSETS.iter().filter(|a| a.name.ends_with(".js")).any(|a| {
                    std::str::from_utf8(a.body)
                        .unwrap()
                        .contains(&format!("./{}'", asset.name))
                });
                assert!(
                    imported || html.contains(asset.name),
                    "{} unused",
                    asset.name
                );
            }
        }
        for name in ["app.js", "style.css", "favicon.svg"] {
            assert!(html.contains(&format!("/dashboard/{name}")), "{name}");
        }
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style=\""), "no inline style");
    }
}
