//! Every request's id: taken from a sane incoming `X-Request-Id` or made
//! here, answered in the `X-Request-Id` header, carried in every error body
//! (`error.request_id`) and in the log line about that error, so an
//! operator can find the detail a client was not shown.

use std::future::Future;

/// The request header (and response header) carrying the id.
pub const HEADER: &str = "x-request-id";

/// `Retry-After` of a 503 when no request context says otherwise.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// What the HTTP layer knows about the request being served.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    /// `Retry-After` of a 503 (`server.retry_after_secs`).
    pub retry_after_secs: u64,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Runs `fut` as the request `ctx` (what [`current`] answers inside it).
pub async fn scope<F: Future>(ctx: RequestContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    CONTEXT.try_with(|c| c.id.clone()).ok()
}

/// `Retry-After` seconds for a 503 of the request being served.
pub fn retry_after_secs() -> u64 {
    CONTEXT
        .try_with(|c| c.retry_after_secs)
        .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
}

/// The incoming id if it is sane (1–64 characters of letters, digits,
/// `-`, `_`, `.`, `:`), else a new random one.
pub fn accept_or_new(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                }) =>
        {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(accept_or_new(Some("abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in ["", "a b", "a\u{0}b", "ü", &"x".repeat(65)] {
            let got = accept_or_new(Some(bad));
            assert_ne!(got, bad);
            assert_eq!(got.len(), 32);
        }
        assert_eq!(accept_or_new(None).len(), 32);
    }

    #[tokio::test]
    async fn the_context_is_seen_inside_its_scope_only() {
        assert_eq!(current(), None);
        let ctx = RequestContext {
            id: "r1".into(),
            retry_after_secs: 9,
        };
        let (id, retry) = scope(ctx, async { (current(), retry_after_secs()) }).await;
        assert_eq!(id.as_deref(), Some("r1"));
        assert_eq!(retry, 9);
        assert_eq!(retry_after_secs(), DEFAULT_RETRY_AFTER_SECS);
    }
}
