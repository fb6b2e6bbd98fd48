//! Nurse safety and the visit checks (issue 17): the arrival geofence, the
//! short-visit flag, alarms and their life (raised → acknowledged →
//! resolved, escalated when nobody acknowledges in time) and the
//! lone-worker timer. Pure rules: callers pass positions and `now`.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::geo::GeoPoint;
use crate::ids::{AlarmId, NurseId, OrderId, OrgId};

/// Longest note on an alarm (the nurse's, or the coordinator's resolution).
pub const ALARM_NOTE_MAX_CHARS: usize = 500;

/// A visit shorter than this share of the service's duration is flagged
/// for review.
pub const SHORT_VISIT_SHARE: f64 = 0.5;

/// The review flag a too-short visit gets.
pub const SHORT_VISIT_FLAG: &str = "short_visit";

/// Where `arrived` is accepted: within `radius_m` of the address, widened
/// by the fix's reported accuracy up to `max_widening_m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalRule {
    pub radius_m: f64,
    pub max_widening_m: f64,
}

impl Default for ArrivalRule {
    fn default() -> Self {
        Self {
            radius_m: 200.0,
            max_widening_m: 100.0,
        }
    }
}

impl ArrivalRule {
    /// The accepted distance for a fix of `accuracy_m` (a negative or
    /// non-finite accuracy widens nothing).
    pub fn allowed_m(&self, accuracy_m: f64) -> f64 {
        let widening = if accuracy_m.is_finite() {
            accuracy_m.clamp(0.0, self.max_widening_m.max(0.0))
        } else {
            0.0
        };
        self.radius_m + widening
    }

    /// The distance in metres when `position` (of accuracy `accuracy_m`) is
    /// close enough to `address`; `too_far_from_address` with the distance
    /// otherwise.
    pub fn check(
        &self,
        position: GeoPoint,
        accuracy_m: f64,
        address: GeoPoint,
    ) -> Result<u32, DomainError> {
        let distance = position.distance_m(&address);
        let allowed = self.allowed_m(accuracy_m);
        let rounded = |m: f64| m.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        if distance <= allowed {
            Ok(rounded(distance))
        } else {
            Err(DomainError::TooFarFromAddress {
                distance_m: rounded(distance),
                allowed_m: rounded(allowed),
            })
        }
    }
}

/// Whether a visit from `started` to `completed` is shorter than
/// [`SHORT_VISIT_SHARE`] of the service's `duration_min`.
pub fn is_short_visit(started: DateTime<Utc>, completed: DateTime<Utc>, duration_min: u32) -> bool {
    let took_s = (completed - started).num_seconds() as f64;
    took_s < f64::from(duration_min) * 60.0 * SHORT_VISIT_SHARE
}

/// When the phone is first asked to check in: the service's expected
/// duration plus the grace after arrival.
pub fn first_check_in_due(
    arrived_at: DateTime<Utc>,
    duration_min: u32,
    grace: TimeDelta,
) -> DateTime<Utc> {
    arrived_at + TimeDelta::minutes(i64::from(duration_min)) + grace
}

/// When the phone is asked again after a check-in (the timer re-armed).
pub fn next_check_in_due(checked_in_at: DateTime<Utc>, grace: TimeDelta) -> DateTime<Utc> {
    checked_in_at + grace
}

/// Why an alarm was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The nurse pressed SOS.
    Sos,
    /// The phone was asked to check in and did not, in time.
    MissedCheckIn,
    /// The phone sent nothing for too long during a visit.
    SilentPhone,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sos => "sos",
            Self::MissedCheckIn => "missed_check_in",
            Self::SilentPhone => "silent_phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sos" => Some(Self::Sos),
            "missed_check_in" => Some(Self::MissedCheckIn),
            "silent_phone" => Some(Self::SilentPhone),
            _ => None,
        }
    }
}

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Raised, nobody has taken it yet.
    Open,
    /// A coordinator has taken it.
    Acknowledged,
    /// Closed by a coordinator with a note.
    Resolved,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }
}

/// A nurse's alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub id: AlarmId,
    pub org_id: OrgId,
    pub nurse_id: NurseId,
    /// The job she was on, if any.
    pub order_id: Option<OrderId>,
    pub kind: AlarmKind,
    /// Her position when raised (the one sent, or her latest known fix).
    pub location: Option<GeoPoint>,
    pub accuracy_m: Option<f64>,
    /// The nurse's note with an SOS.
    pub note: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_note: Option<String>,
    /// When the escalation webhook accepted it (or the last failed try).
    pub escalated_at: Option<DateTime<Utc>>,
    /// `delivered`, `failed` (after every try) or `no_endpoint`.
    pub escalation: Option<String>,
}

impl Alarm {
    /// A new, open alarm.
    #[allow(clippy::too_many_arguments)]
    pub fn raise(
        org_id: OrgId,
        nurse_id: NurseId,
        order_id: Option<OrderId>,
        kind: AlarmKind,
        location: Option<GeoPoint>,
        accuracy_m: Option<f64>,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            id: AlarmId::new(),
            org_id,
            nurse_id,
            order_id,
            kind,
            location,
            accuracy_m,
            note: clean_note(note, "note")?,
            raised_at: now,
            acknowledged_by: None,
            acknowledged_at: None,
            resolved_by: None,
            resolved_at: None,
            resolution_note: None,
            escalated_at: None,
            escalation: None,
        })
    }

    pub fn state(&self) -> AlarmState {
        if self.resolved_at.is_some() {
            AlarmState::Resolved
        } else if self.acknowledged_at.is_some() {
            AlarmState::Acknowledged
        } else {
            AlarmState::Open
        }
    }

    /// A coordinator takes the alarm. Acknowledging an acknowledged alarm
    /// changes nothing (the first coordinator stays) and answers `false`;
    /// a resolved one is `alarm_resolved`.
    pub fn acknowledge(&mut self, by: &str, now: DateTime<Utc>) -> Result<bool, DomainError> {
        match self.state() {
            AlarmState::Resolved => Err(DomainError::AlarmResolved),
            AlarmState::Acknowledged => Ok(false),
            AlarmState::Open => {
                self.acknowledged_by = Some(by.to_owned());
                self.acknowledged_at = Some(now);
                Ok(true)
            }
        }
    }

    /// A coordinator closes the alarm with a note (required). Only after it
    /// was acknowledged: `alarm_not_acknowledged` before (acknowledging is
    /// a separate, deliberate step: "someone is on it").
    pub fn resolve(
        &mut self,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let note = clean_note(note, "note")?.ok_or(DomainError::Required { field: "note" })?;
        match self.state() {
            AlarmState::Resolved => Err(DomainError::AlarmResolved),
            AlarmState::Open => Err(DomainError::AlarmNotAcknowledged),
            AlarmState::Acknowledged => {
                self.resolved_by = Some(by.to_owned());
                self.resolved_at = Some(now);
                self.resolution_note = Some(note);
                Ok(())
            }
        }
    }

    /// Still open (nobody acknowledged) `after` its raising, and not sent
    /// to the escalation webhook yet.
    pub fn escalation_due(&self, now: DateTime<Utc>, after: TimeDelta) -> bool {
        self.state() == AlarmState::Open
            && self.escalation.is_none()
            && now >= self.raised_at + after
    }
}

/// A trimmed note: `None` when absent or blank, `too_long` past the limit.
fn clean_note(note: Option<&str>, field: &'static str) -> Result<Option<String>, DomainError> {
    let Some(text) = note.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > ALARM_NOTE_MAX_CHARS {
        return Err(DomainError::TooLong {
            field,
            max: ALARM_NOTE_MAX_CHARS,
        });
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn point(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    /// About `m` metres north of `p` (1° of latitude ≈ 111.2 km).
    fn north(p: GeoPoint, m: f64) -> GeoPoint {
        point(p.lat() + m / 111_195.0, p.lng())
    }

    #[test]
    fn arrival_within_the_radius_passes_with_the_distance() {
        let door = point(29.39, 106.32);
        let rule = ArrivalRule::default();
        let d = rule.check(north(door, 100.0), 10.0, door).unwrap();
        assert!((99..=101).contains(&d), "{d}");
        assert_eq!(rule.check(door, 0.0, door).unwrap(), 0);
    }

    #[test]
    fn arrival_500_m_away_is_refused_naming_the_distance() {
        let door = point(29.39, 106.32);
        let err = ArrivalRule::default()
            .check(north(door, 500.0), 10.0, door)
            .unwrap_err();
        match &err {
            DomainError::TooFarFromAddress {
                distance_m,
                allowed_m,
            } => {
                assert!((499..=501).contains(distance_m), "{distance_m}");
                assert_eq!(*allowed_m, 210);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.code(), "too_far_from_address");
        assert_eq!(err.field(), Some("location"));
        assert!(err.to_string().contains("50"), "{err}");
    }

    #[test]
    fn accuracy_widens_the_radius_but_only_up_to_the_cap() {
        let door = point(29.39, 106.32);
        let rule = ArrivalRule::default();
        assert!(rule.check(north(door, 250.0), 60.0, door).is_ok());
        assert!(rule.check(north(door, 250.0), 40.0, door).is_err());
        // A hopeless 2 km accuracy widens only by the cap (100 m).
        assert!(rule.check(north(door, 290.0), 2_000.0, door).is_ok());
        assert!(rule.check(north(door, 320.0), 2_000.0, door).is_err());
        assert_eq!(rule.allowed_m(f64::NAN), 200.0);
        assert_eq!(rule.allowed_m(-5.0), 200.0);
    }

    #[test]
    fn a_visit_under_half_the_duration_is_short() {
        // 30-minute service: under 15 minutes is short.
        assert!(is_short_visit(at(0), at(14 * 60 + 59), 30));
        assert!(!is_short_visit(at(0), at(15 * 60), 30));
        assert!(!is_short_visit(at(0), at(40 * 60), 30));
    }

    #[test]
    fn the_check_in_timer_runs_the_duration_plus_grace_then_the_grace() {
        let grace = TimeDelta::minutes(10);
        assert_eq!(first_check_in_due(at(0), 30, grace), at(40 * 60));
        assert_eq!(next_check_in_due(at(100), grace), at(100 + 600));
    }

    fn alarm() -> Alarm {
        Alarm::raise(
            OrgId::from("demo"),
            NurseId::new(),
            None,
            AlarmKind::Sos,
            Some(point(29.39, 106.32)),
            Some(8.0),
            Some("  help  "),
            at(0),
        )
        .unwrap()
    }

    #[test]
    fn an_alarm_is_acknowledged_then_resolved_with_a_note() {
        let mut a = alarm();
        assert_eq!(a.note.as_deref(), Some("help"));
        assert_eq!(a.state(), AlarmState::Open);
        assert_eq!(
            a.resolve("c1", Some("fine"), at(5)),
            Err(DomainError::AlarmNotAcknowledged)
        );
        assert_eq!(a.acknowledge("c1", at(10)), Ok(true));
        // A second coordinator's acknowledgement changes nothing.
        assert_eq!(a.acknowledge("c2", at(11)), Ok(false));
        assert_eq!(a.acknowledged_by.as_deref(), Some("c1"));
        assert_eq!(
            a.resolve("c1", Some("   "), at(20)),
            Err(DomainError::Required { field: "note" })
        );
        assert_eq!(
            a.resolve("c1", None, at(20)),
            Err(DomainError::Required { field: "note" })
        );
        let long = "x".repeat(ALARM_NOTE_MAX_CHARS + 1);
        assert!(matches!(
            a.resolve("c1", Some(&long), at(20)),
            Err(DomainError::TooLong { .. })
        ));
        a.resolve("c1", Some("called her, she is safe"), at(30))
            .unwrap();
        assert_eq!(a.state(), AlarmState::Resolved);
        assert_eq!(a.resolved_at, Some(at(30)));
        assert_eq!(
            a.resolve("c1", Some("again"), at(40)),
            Err(DomainError::AlarmResolved)
        );
        assert_eq!(a.acknowledge("c1", at(40)), Err(DomainError::AlarmResolved));
    }

    #[test]
    fn only_an_unacknowledged_alarm_escalates_once_its_time_is_up() {
        let after = TimeDelta::seconds(60);
        let mut a = alarm();
        assert!(!a.escalation_due(at(59), after));
        assert!(a.escalation_due(at(60), after));
        a.escalation = Some("delivered".into());
        assert!(!a.escalation_due(at(120), after));
        let mut b = alarm();
        b.acknowledge("c1", at(30)).unwrap();
        assert!(!b.escalation_due(at(120), after));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            AlarmKind::Sos,
            AlarmKind::MissedCheckIn,
            AlarmKind::SilentPhone,
        ] {
            assert_eq!(AlarmKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AlarmKind::parse("panic"), None);
    }
}
