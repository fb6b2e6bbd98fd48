//! How our web apps (the dashboard, the resident app, the nurse app) are
//! served: files built into the binary, each with a content `ETag` and
//! `no-cache` (so a new binary's page is never mixed with an old cached
//! script), and the security headers every page carries. Each app keeps
//! its own file list and Content-Security-Policy.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
};

/// One file of an app, built into the binary.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const SVG: &str = "image/svg+xml";
pub const MANIFEST: &str = "application/manifest+json";

/// An app's files with their `ETag`s, computed once.
pub struct StaticFiles {
    assets: &'static [Asset],
    etags: Vec<String>,
}

impl StaticFiles {
    pub fn new(assets: &'static [Asset]) -> Self {
        Self {
            assets,
            etags: assets
                .iter()
                .map(|a| format!("\"{:016x}\"", fingerprint(a.body)))
                .collect(),
        }
    }

    /// Where the file `name` is in the list.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.assets.iter().position(|a| a.name == name)
    }

    /// The file at `index`, or 304 when the browser's copy is current
    /// (`If-None-Match`). Without security headers: see [`secured`].
    pub fn response(&self, req: &HttpRequest, index: usize) -> HttpResponse {
        let (Some(asset), Some(etag)) = (self.assets.get(index), self.etags.get(index)) else {
            return HttpResponse::NotFound().finish();
        };
        let current = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let mut res = if current {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        res.insert_header((header::ETAG, etag.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-cache"));
        if current {
            res.finish()
        } else {
            res.content_type(asset.content_type).body(asset.body)
        }
    }
}

/// FNV-1a, 64 bits: a content fingerprint for the `ETag` (not security).
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `res` with the page's Content-Security-Policy, `nosniff`, no referrer
/// and no framing.
pub fn secured(mut res: HttpResponse, csp: &str) -> HttpResponse {
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// The request's `Host` as CSP sources for a socket (` ws://h wss://h`),
/// if it is a plain host name or address (anything odd is left out:
/// `'self'` remains).
pub fn websocket_sources(req: &HttpRequest) -> String {
    let host = req.connection_info().host().to_owned();
    let plain = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if plain {
        format!(" ws://{host} wss://{host}")
    } else {
        String::new()
    }
}

/// The origin of a tile template as a CSP source: `https://a.example` for
/// `https://a.example/{z}/{x}/{y}.png`, `https://*.example` when the host
/// starts with the `{s}` subdomain placeholder. `None` for anything else.
pub fn tile_source(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = match authority.strip_prefix("{s}.") {
        Some(host) => format!("*.{host}"),
        None => authority.to_owned(),
    };
    let ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']'));
    ok.then(|| format!("{scheme}://{authority}"))
}
