//! An organisation's local time: its UTC offset, and where its day begins.
//!
//! "Today" (KPIs, a nurse's jobs today for fairness, the simulator's days)
//! is the organisation's local day, never UTC's. The pilot organisations are
//! in China: UTC+8 all year, no daylight saving, so a fixed offset is exact.

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, Timelike, Utc};

/// An organisation's fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgTimeZone {
    offset_secs: i32,
}

impl OrgTimeZone {
    /// China Standard Time (Asia/Shanghai, Chongqing): UTC+8.
    pub const CHINA: OrgTimeZone = OrgTimeZone {
        offset_secs: 8 * 3600,
    };

    /// A zone `offset_secs` east of UTC; `None` outside ±18 h.
    pub fn from_offset_secs(offset_secs: i32) -> Option<Self> {
        FixedOffset::east_opt(offset_secs).map(|_| Self { offset_secs })
    }

    /// Seconds east of UTC.
    pub fn offset_secs(self) -> i32 {
        self.offset_secs
    }

    fn offset(self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.offset_secs))
    }

    /// The start of the local day containing `now`, in UTC.
    pub fn start_of_day(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let local = (now + self.offset()).date_naive().and_time(NaiveTime::MIN);
        local.and_utc() - self.offset()
    }

    /// The local hour of the day (0–23) at `at`.
    pub fn hour(self, at: DateTime<Utc>) -> u32 {
        (at + self.offset()).hour()
    }
}

impl Default for OrgTimeZone {
    fn default() -> Self {
        Self::CHINA
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_day_starts_at_local_midnight() {
        let z = OrgTimeZone::CHINA;
        // 01:30 on the 24th in Chongqing: the day began at 16:00 UTC on the 23rd.
        assert_eq!(
            z.start_of_day(t("2026-11-23T17:30:00Z")),
            t("2026-11-23T16:00:00Z")
        );
        assert_eq!(
            z.start_of_day(t("2026-11-23T15:59:00Z")),
            t("2026-11-22T16:00:00Z")
        );
        assert_eq!(
            z.start_of_day(t("2026-11-23T16:00:00Z")),
            t("2026-11-23T16:00:00Z")
        );
        assert_eq!(z.hour(t("2026-11-23T17:30:00Z")), 1);
        // No daylight saving: the same offset in summer.
        assert_eq!(
            z.start_of_day(t("2026-07-01T20:00:00Z")),
            t("2026-07-01T16:00:00Z")
        );
    }

    #[test]
    fn other_offsets_work_and_absurd_ones_are_refused() {
        let utc = OrgTimeZone::from_offset_secs(0).unwrap();
        assert_eq!(
            utc.start_of_day(t("2026-11-23T17:30:00Z")),
            t("2026-11-23T00:00:00Z")
        );
        assert!(OrgTimeZone::from_offset_secs(24 * 3600).is_none());
    }
}
