//! Region leases of sharded dispatch, as a state machine without I/O.
//!
//! Each dispatcher instance serves the regions it holds a lease on (kept in
//! the database: holder, fencing token, expiry). This book says which it
//! serves *now*, which leases to renew, and which free regions to try to
//! take; the engine does the reading and writing.
//!
//! Safety: a lease is believed only until `sent + ttl − margin`, where
//! `sent` is when the acquiring or renewing statement was sent (this
//! instance's monotonic clock) and the database's expiry is the database
//! call's `now + ttl`, later than `sent + ttl`. So an instance whose
//! renewals fail stops serving a region at least `margin` before another
//! instance can take it (clocks between instances may differ by less than
//! `margin`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A dispatch region: the coarse H3 cell (hex) of `yixin_contracts::region_of`.
pub type Region = String;

/// Which regions an instance wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// No preference: any free region, up to an even share of the known
    /// regions among the live holders.
    Auto,
    /// These first (`dispatch.regions` listed); other free regions (a dead
    /// instance's) only after a start-up grace of one lease, so that each
    /// listed owner starting together gets its own first.
    List(BTreeSet<Region>),
}

/// The lease timing: `ttl` in the database, renewed every `ttl / 3`,
/// believed until `ttl − ttl / 5` after the statement was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
}

impl LeaseTiming {
    /// Shortest lease: renewals every second at least.
    pub const MIN_TTL: Duration = Duration::from_secs(3);

    /// How often the held leases are renewed (and free regions looked for).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long before the database's expiry this instance stops serving.
    pub fn margin(&self) -> Duration {
        self.ttl / 5
    }
}

/// One row of the lease table as the book reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub region: Region,
    pub holder: Option<String>,
    pub token: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

impl LeaseView {
    /// Nobody holds it at `now`.
    pub fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.holder.is_none() || self.expires_at.is_none_or(|t| t <= now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    token: i64,
    valid_until: Instant,
}

/// This instance's leases.
#[derive(Debug, Clone)]
pub struct LeaseBook {
    timing: LeaseTiming,
    started: Instant,
    held: BTreeMap<Region, Held>,
}

impl LeaseBook {
    pub fn new(timing: LeaseTiming, started: Instant) -> Self {
        Self {
            timing,
            started,
            held: BTreeMap::new(),
        }
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Whether this instance may dispatch `region`'s orders at `now`.
    pub fn serves(&self, region: &str, now: Instant) -> bool {
        self.held.get(region).is_some_and(|h| now < h.valid_until)
    }

    /// The leases held (region and fencing token), to renew.
    pub fn held(&self) -> Vec<(Region, i64)> {
        self.held
            .iter()
            .map(|(r, h)| (r.clone(), h.token))
            .collect()
    }

    /// Regions served at `now`.
    pub fn serving(&self, now: Instant) -> BTreeSet<Region> {
        self.held
            .iter()
            .filter(|(_, h)| now < h.valid_until)
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.timing.ttl.saturating_sub(self.timing.margin())
    }

    /// The database granted `region` with `token` to a statement sent at `sent`.
    pub fn acquired(&mut self, region: Region, token: i64, sent: Instant) {
        let valid_until = self.valid_until(sent);
        self.held.insert(region, Held { token, valid_until });
    }

    /// The database renewed `region` for a statement sent at `sent`.
    pub fn renewed(&mut self, region: &str, sent: Instant) {
        let valid_until = self.valid_until(sent);
        if let Some(h) = self.held.get_mut(region) {
            h.valid_until = valid_until;
        }
    }

    /// The database refused the renewal (expired, or someone else holds
    /// it): stop serving at once.
    pub fn lost(&mut self, region: &str) {
        self.held.remove(region);
    }

    /// Forgets leases past their belief (renewals failed, e.g. the database
    /// was away) and returns them: stop serving them.
    pub fn expire(&mut self, now: Instant) -> Vec<Region> {
        let gone: Vec<Region> = self
            .held
            .iter()
            .filter(|(_, h)| now >= h.valid_until)
            .map(|(r, _)| r.clone())
            .collect();
        for r in &gone {
            self.held.remove(r);
        }
        gone
    }

    /// The free regions to try to take, best first: wanted ones, then (past
    /// the start-up grace, or in `Auto` up to an even share) any free one,
    /// which is how a dead instance's regions are taken over.
    pub fn to_acquire(
        &self,
        wanted: &Wanted,
        me: &str,
        rows: &[LeaseView],
        now: DateTime<Utc>,
        at: Instant,
    ) -> Vec<Region> {
        let known: BTreeSet<&Region> = rows.iter().map(|r| &r.region).collect();
        let free = |region: &Region| {
            !self.held.contains_key(region)
                && rows
                    .iter()
                    .find(|r| &r.region == region)
                    .is_none_or(|r| r.is_free(now))
        };
        match wanted {
            Wanted::List(list) => {
                let mut out: Vec<Region> = list.iter().filter(|r| free(r)).cloned().collect();
                if at >= self.started + self.timing.ttl {
                    out.extend(
                        known
                            .into_iter()
                            .filter(|r| !list.contains(*r) && free(r))
                            .cloned(),
                    );
                }
                out
            }
            Wanted::Auto => {
                // Live holders: those with an unexpired lease, and this one.
                let mut holders: BTreeSet<&str> = rows
                    .iter()
                    .filter(|r| !r.is_free(now))
                    .filter_map(|r| r.holder.as_deref())
                    .collect();
                holders.insert(me);
                let share = known.len().div_ceil(holders.len());
                let room = share.saturating_sub(self.held.len());
                known
                    .into_iter()
                    .filter(|r| free(r))
                    .take(room)
                    .cloned()
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    fn book(started: Instant) -> LeaseBook {
        LeaseBook::new(LeaseTiming { ttl: TTL }, started)
    }

    fn row(region: &str, holder: Option<&str>, expires_in_s: i64, now: DateTime<Utc>) -> LeaseView {
        LeaseView {
            region: region.to_owned(),
            holder: holder.map(str::to_owned),
            token: 1,
            expires_at: Some(now + chrono::TimeDelta::seconds(expires_in_s)),
        }
    }

    #[test]
    fn timing_renews_three_times_a_lease_and_stops_a_fifth_early() {
        let t = LeaseTiming { ttl: TTL };
        assert_eq!(t.renew_every(), Duration::from_secs(5));
        assert_eq!(t.margin(), Duration::from_secs(3));
    }

    #[test]
    fn a_lease_is_served_until_ttl_minus_margin_after_it_was_sent() {
        let t0 = Instant::now();
        let mut b = book(t0);
        assert!(!b.serves("a", t0));
        b.acquired("a".into(), 7, t0);
        assert!(b.serves("a", t0 + Duration::from_secs(11)));
        assert!(!b.serves("a", t0 + Duration::from_secs(12)));
        assert_eq!(b.held(), vec![("a".to_owned(), 7)]);
        b.renewed("a", t0 + Duration::from_secs(5));
        assert!(b.serves("a", t0 + Duration::from_secs(16)));
    }

    #[test]
    fn failed_renewals_stop_service_before_the_database_lets_another_take_it() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.acquired("a".into(), 1, t0);
        // Renewals at 5 s and 10 s fail (database away): nothing renewed.
        assert!(b.expire(t0 + Duration::from_secs(10)).is_empty());
        let gone = b.expire(t0 + Duration::from_secs(12));
        assert_eq!(gone, vec!["a".to_owned()]);
        assert!(!b.serves("a", t0 + Duration::from_secs(12)));
        // The database's expiry is at least t0 + 15 s: 3 s later.
        assert!(b.timing().ttl - b.timing().margin() < b.timing().ttl);
    }

    #[test]
    fn a_refused_renewal_stops_service_at_once() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.acquired("a".into(), 1, t0);
        b.lost("a");
        assert!(!b.serves("a", t0));
        assert!(b.held().is_empty());
    }

    #[test]
    fn listed_regions_first_and_a_dead_instances_only_after_the_grace() {
        let t0 = Instant::now();
        let now = Utc::now();
        let b = book(t0);
        let wanted = Wanted::List(["a".to_owned()].into());
        let rows = vec![
            row("a", Some("old-me"), -1, now),
            row("b", Some("dead"), -1, now),
            row("c", Some("alive"), 10, now),
        ];
        assert_eq!(b.to_acquire(&wanted, "me", &rows, now, t0), vec!["a"]);
        let later = t0 + TTL;
        assert_eq!(
            b.to_acquire(&wanted, "me", &rows, now, later),
            vec!["a", "b"]
        );
        // A listed region someone else holds is not taken.
        let rows = vec![row("a", Some("other"), 5, now)];
        assert!(b.to_acquire(&wanted, "me", &rows, now, later).is_empty());
    }

    #[test]
    fn auto_takes_an_even_share_of_the_free_regions() {
        let t0 = Instant::now();
        let now = Utc::now();
        let mut b = book(t0);
        let rows = vec![
            row("a", None, -1, now),
            row("b", None, -1, now),
            row("c", Some("other"), 10, now),
            row("d", None, -1, now),
        ];
        // Two live holders, four regions: two each.
        assert_eq!(
            b.to_acquire(&Wanted::Auto, "me", &rows, now, t0),
            vec!["a", "b"]
        );
        b.acquired("a".into(), 1, t0);
        let mut rows = rows;
        rows[0] = row("a", Some("me"), 10, now);
        assert_eq!(b.to_acquire(&Wanted::Auto, "me", &rows, now, t0), vec!["b"]);
        // Alone: everything.
        let alone = vec![row("x", Some("dead"), -5, now), row("y", None, -1, now)];
        assert_eq!(
            book(t0).to_acquire(&Wanted::Auto, "me", &alone, now, t0),
            vec!["x", "y"]
        );
    }
}
