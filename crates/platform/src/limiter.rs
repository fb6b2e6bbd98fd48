//! A per-caller, in-process rate limiter: `governor`'s keyed GCRA limiter.
//!
//! `limit` attempts per `window` for each caller: up to `limit` at once,
//! then one more every `window / limit`, so a steady caller gets `limit` a
//! window (as with the fixed windows it replaces, a caller arriving with a
//! full burst can get up to twice that in its first window). A refused
//! attempt learns how long to wait for the next.
//!
//! Per instance: with N instances behind a balancer a caller may get up to
//! N × the limit. Good enough against a runaway client; a shared limiter
//! (Redis) would be the cross-instance version.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;

type Keyed<C> = governor::RateLimiter<
    String,
    HashMapStateStore<String>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

pub struct RateLimiter<C: Clock = DefaultClock> {
    /// `None` when the limit is 0: every attempt is refused.
    keyed: Option<Keyed<C>>,
    window: Duration,
    clock: C,
    start: C::Instant,
    /// When callers back at a fresh state were last forgotten, in
    /// nanoseconds since `start`: at most once a window, so the map stays
    /// as large as the callers of one window and no request scans it twice.
    purged_at: AtomicU64,
}

impl RateLimiter {
    /// `limit` attempts per `window` for each caller, on the real clock.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_clock(limit, window, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// The same on `clock` (tests use a fake one).
    pub fn with_clock(limit: u32, window: Duration, clock: C) -> Self {
        let keyed = NonZeroU32::new(limit)
            .and_then(|burst| Quota::with_period(window / burst.get()).map(|q| (q, burst)))
            .map(|(quota, burst)| {
                governor::RateLimiter::hashmap_with_clock(quota.allow_burst(burst), clock.clone())
            });
        let start = clock.now();
        Self {
            keyed,
            window,
            clock,
            start,
            purged_at: AtomicU64::new(0),
        }
    }

    /// Counts one attempt by `who`; `Err(seconds to wait)` when over the limit.
    pub fn check(&self, who: &str) -> Result<(), u64> {
        let Some(keyed) = &self.keyed else {
            return Err(whole_seconds(self.window));
        };
        self.forget_idle(keyed);
        keyed
            .check_key(&who.to_owned())
            .map_err(|refused| whole_seconds(refused.wait_time_from(self.clock.now())))
    }

    /// Callers tracked now (those not yet back at a fresh state, and those
    /// since the last purge).
    pub fn tracked(&self) -> usize {
        self.keyed.as_ref().map_or(0, Keyed::len)
    }

    fn forget_idle(&self, keyed: &Keyed<C>) {
        let now = u64::from(self.clock.now().duration_since(self.start));
        let last = self.purged_at.load(Ordering::Relaxed);
        let every = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        // One request a window does the purge; the others go on.
        if now.saturating_sub(last) >= every
            && self
                .purged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            keyed.retain_recent();
        }
    }
}

/// Seconds for `Retry-After`: rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limiter(limit: u32) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (
            RateLimiter::with_clock(limit, Duration::from_secs(60), clock.clone()),
            clock,
        )
    }

    #[test]
    fn refuses_past_the_limit_and_says_when_to_retry() {
        let (l, clock) = limiter(2);
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        // 2 a minute: the next one is 30 s after the first.
        clock.advance(Duration::from_secs(10));
        assert_eq!(l.check("a"), Err(20));
        assert!(l.check("b").is_ok(), "another caller is not affected");
        clock.advance(Duration::from_millis(19_500));
        assert_eq!(l.check("a"), Err(1), "a part of a second rounds up");
        clock.advance(Duration::from_millis(500));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
    }

    #[test]
    fn a_steady_caller_gets_the_limit_a_window() {
        let (l, clock) = limiter(10);
        let mut admitted = Vec::new();
        // One attempt a second for five minutes.
        for second in 0..300u64 {
            if l.check("a").is_ok() {
                admitted.push(second);
            }
            clock.advance(Duration::from_secs(1));
        }
        let in_window = |from: u64| {
            admitted
                .iter()
                .filter(|s| (from..from + 60).contains(*s))
                .count()
        };
        // The burst, then one every 6 s.
        assert!(in_window(0) < 20, "{}", in_window(0));
        for from in 60..240 {
            let n = in_window(from);
            assert!((9..=10).contains(&n), "{n} from second {from}");
        }
    }

    #[test]
    fn a_limit_of_zero_refuses_everyone() {
        let (l, _) = limiter(0);
        assert_eq!(l.check("a"), Err(60));
    }

    #[test]
    fn many_callers_stay_cheap_and_idle_ones_are_forgotten() {
        let (l, clock) = limiter(10);
        let started = std::time::Instant::now();
        for i in 0..50_000 {
            assert!(l.check(&format!("caller-{i}")).is_ok());
        }
        // The hand-written limiter scanned its whole map on every request
        // above 10,000 callers: here about 10^9 steps, minutes in a debug build.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(l.tracked(), 50_000);
        // Still limiting each of them.
        for _ in 0..9 {
            assert!(l.check("caller-7").is_ok());
        }
        assert!(l.check("caller-7").is_err());
        // Two windows later every one of them is back at a fresh state, and
        // the next request forgets them.
        clock.advance(Duration::from_secs(120));
        assert!(l.check("newcomer").is_ok());
        assert_eq!(l.tracked(), 1);
    }
}
