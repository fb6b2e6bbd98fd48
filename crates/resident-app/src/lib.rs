//! The resident app: a phone web page at `/app/` where residents (and their
//! family) sign in by SMS code, keep their household, get a quote and
//! order a visit, follow the nurse, and rate. Hand-written HTML, CSS and ES
//! modules built into the binary: no CDN, no external fonts, relative URLs,
//! so it works offline on a bare machine, in a plain browser and inside a
//! WeChat mini-program `web-view` (which loads it as its own top-level page).
//!
//! This crate only serves the files and `/app/config.json`; everything the
//! page does goes through the public API. It owns no data.
//!
//! Every answer carries a strict Content-Security-Policy (everything from
//! this origin only, images also from the configured tile server, sockets to
//! this host), `nosniff`, no referrer, no framing by other pages. Assets are
//! revalidated (`no-cache` with an `ETag`).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_platform::web::{
    Asset, CSS, HTML, JS, SVG, StaticFiles, secured, tile_source, websocket_sources,
};
use yixin_platform::{ApiError, ErrorBody, Mount, Settings};

/// `(file name, content type, bytes)` of every file, the page first.
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

/// The app and its files, as built into the binary; the page first.
const FILES: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("i18n.js", JS),
    asset!("minimap.js", JS),
    asset!("words.js", JS),
    asset!("app.css", CSS),
    asset!("icon.svg", SVG),
];

/// What the page needs to know of the platform's configuration. No secrets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ResidentAppConfig)]
pub struct AppConfig {
    /// The organisation residents sign in to (`?org=` in the URL overrides it).
    pub org: String,
    /// Whether `POST /v1/auth/dev-token` is on (the page then offers a demo sign-in).
    pub dev_login: bool,
    /// XYZ template of base map tiles; empty: the page draws its own map.
    pub tile_url: String,
    pub tile_attribution: String,
    /// The organisation's service areas, each an outer ring of `[lng, lat]`,
    /// drawn under the map and used to centre it.
    #[schema(value_type = Vec<Vec<Vec<f64>>>)]
    pub areas: Vec<Vec<[f64; 2]>>,
}

impl AppConfig {
    /// From the settings and the service areas (outer rings) of the organisation.
    pub fn from_settings(settings: &Settings, areas: Vec<Vec<[f64; 2]>>) -> Self {
        Self {
            org: settings.demo.org_id.clone(),
            dev_login: settings.dev_login_enabled(),
            tile_url: settings.dashboard.tile_url.trim().to_owned(),
            tile_attribution: settings.dashboard.tile_attribution.trim().to_owned(),
            areas,
        }
    }
}

struct Served {
    config: AppConfig,
    policy: String,
    files: StaticFiles,
}

/// `scheme://host` of the tile template, if it is a plain one.
fn base_policy(tile_url: &str) -> String {
    let img = match tile_source(tile_url) {
        Some(origin) => format!("'self' data: {origin}"),
        None => "'self' data:".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
         font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'; connect-src 'self'"
    )
}

impl Served {
    /// The app's headers, with the request's host allowed for sockets.
    fn headers(&self, req: &HttpRequest, res: HttpResponse) -> HttpResponse {
        secured(res, &format!("{}{}", self.policy, websocket_sources(req)))
    }

    fn file(&self, req: &HttpRequest, index: usize) -> HttpResponse {
        self.headers(req, self.files.response(req, index))
    }
}

/// The resident app (a phone web page).
#[utoipa::path(
    tag = "resident",
    responses(
        (status = 200, description = "The resident app", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `ETag` sent as `If-None-Match`"),
    )
)]
#[get("/app/")]
async fn page(req: HttpRequest, served: web::Data<Served>) -> HttpResponse {
    served.file(&req, 0)
}

/// `/app` without the slash: to `/app/`, so the page's relative URLs resolve.
#[utoipa::path(tag = "resident", responses((status = 308, description = "To `/app/`")))]
#[get("/app")]
async fn to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/app/"))
        .finish()
}

/// What the resident app needs of the configuration.
#[utoipa::path(tag = "resident", responses((status = 200, body = AppConfig)))]
#[get("/app/config.json")]
async fn config_json(req: HttpRequest, served: web::Data<Served>) -> HttpResponse {
    let res = HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(&served.config);
    served.headers(&req, res)
}

/// One of the app's files, built into the binary.
#[utoipa::path(
    tag = "resident",
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
#[get("/app/{name}")]
async fn file(
    req: HttpRequest,
    served: web::Data<Served>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let index = served
        .files
        .index_of(&name)
        .ok_or_else(|| ApiError::not_found("no such file"))?;
    Ok(served.file(&req, index))
}

/// The routes: `/app` → `/app/`, the page, its files and `/app/config.json`.
pub fn mount(config: AppConfig) -> Mount {
    let served = web::Data::new(Served {
        policy: base_policy(&config.tile_url),
        config,
        files: StaticFiles::new(FILES),
    });
    Arc::new(move |cfg| {
        cfg.app_data(served.clone());
        cfg.service(to_page);
        cfg.service(page);
        cfg.service(config_json);
        cfg.service(file);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use actix_web::{App, http::StatusCode, test as actix_test};
    use utoipa_actix_web::AppExt;

    fn config() -> AppConfig {
        AppConfig {
            org: "demo".into(),
            dev_login: false,
            tile_url: "https://{s}.tiles.example.org/{z}/{x}/{y}.png".into(),
            tile_attribution: String::new(),
            areas: vec![],
        }
    }

    async fn get(path: &str) -> actix_web::dev::ServiceResponse {
        let mount = mount(config());
        let app = actix_test::init_service(
            App::new()
                .into_utoipa_app()
                .configure(move |cfg| mount(cfg))
                .into_app(),
        )
        .await;
        let req = actix_test::TestRequest::get()
            .uri(path)
            .insert_header(("host", "127.0.0.1:8080"))
            .to_request();
        actix_test::call_service(&app, req).await
    }

    #[actix_web::test]
    async fn the_page_and_its_files_carry_a_strict_policy() {
        for path in ["/app/", "/app/app.js", "/app/app.css", "/app/config.json"] {
            let res = get(path).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let csp = res
                .headers()
                .get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(
                csp.contains("img-src 'self' data: https://*.tiles.example.org;"),
                "{csp}"
            );
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe"), "{csp}");
            assert_eq!(
                res.headers().get("x-content-type-options").unwrap(),
                "nosniff"
            );
        }
        assert_eq!(get("/app/nope.js").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/app").await.status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[test]
    fn the_page_uses_relative_urls_and_no_inline_code() {
        let html = std::str::from_utf8(FILES[0].body).unwrap();
        assert!(
            !html.contains("src=\"/") && !html.contains("href=\"/"),
            "absolute URL"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "external URL"
        );
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style=\""), "inline style");
    }

    #[test]
    fn tile_sources() {
        assert_eq!(
            tile_source("https://{s}.tile.example/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example")
        );
        assert_eq!(tile_source("ftp://x/{z}"), None);
        assert_eq!(tile_source(""), None);
    }
}
