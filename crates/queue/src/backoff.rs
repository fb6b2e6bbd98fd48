//! The one reconnect back-off: capped, exponential, jittered. Every loop
//! that waits for a backend to come back (pub/sub, stream consumers, the
//! outbox relay, supervised workers) uses it, so a fleet of instances does
//! not hammer a restarted Redis or PostgreSQL in lock-step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Capped exponential back-off with jitter.
///
/// Each [`next_delay`](Self::next_delay) returns the current step with
/// "equal jitter" (between half of it and all of it), then doubles the step
/// up to `max`. [`reset`](Self::reset) after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    /// Starts at `min`, never waits longer than `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            step: min,
        }
    }

    /// The default for reconnecting to a backend: 100 ms doubling to 5 s.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The delay to wait now; the next one is longer (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter())
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.step = self.min;
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// A number in `[0, 1)` from the process's randomly keyed hasher: no
/// random-number crate needed for a jitter.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_within_half_a_step() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));
        let mut steps = Vec::new();
        for _ in 0..7 {
            steps.push(b.next_delay());
        }
        let expected_steps = [100, 200, 400, 800, 1_000, 1_000, 1_000];
        for (got, step) in steps.iter().zip(expected_steps) {
            let step = Duration::from_millis(step);
            assert!(
                *got >= step / 2 && *got <= step,
                "{got:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Jitter differs between draws (not all equal over many draws).
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 1);
    }
}
