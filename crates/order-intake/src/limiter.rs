//! A per-caller, in-process rate limiter (fixed one-minute windows).
//!
//! Per instance: with N instances behind a balancer a caller may get up to
//! N × the limit. Good enough against a runaway client; a shared limiter
//! (Redis) would be the cross-instance version.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt by `who`; `Err(seconds to wait)` when over the limit.
    pub fn check(&self, who: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock only means another request panicked; do not
            // turn that into refusing everyone.
            return Ok(());
        };
        if windows.len() > 10_000 {
            let window = self.window;
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(who.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_the_window_ends() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let t = Instant::now();
        assert!(l.check("a", t).is_ok());
        assert!(l.check("a", t).is_ok());
        let wait = l.check("a", t + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, 50);
        assert!(l.check("b", t).is_ok());
        assert!(l.check("a", t + Duration::from_secs(61)).is_ok());
    }
}
