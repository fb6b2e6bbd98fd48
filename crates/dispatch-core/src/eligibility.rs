//! The one candidate rule: whether a nurse can take an order now, and if
//! not, why. Automatic dispatch (the [`crate::Fleet`]'s candidate search)
//! and manual assignment (the coordinator's candidate list) both ask
//! [`eligibility`], so they cannot disagree. The credentials gate
//! ([`crate::qualification`]) is one of its facts.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use yixin_domain::Skill;

/// What is known of one nurse for one order, as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NurseFacts {
    /// Active and on shift.
    pub on_shift: bool,
    /// Holds every skill the order's service requires ([`covers`]; the
    /// simulator compares bit sets).
    pub skilled: bool,
    /// Credentials verified, in date on the visit's day and meeting the
    /// service's requirements ([`crate::qualification`]).
    pub qualified: bool,
    /// Working on an order (assigned, en route, at the door, in service).
    pub has_job: bool,
    /// Holds a live offer of another order.
    pub offered_elsewhere: bool,
    /// A recent fix from a phone that is still there (connected, or dropped
    /// less than the grace period ago).
    pub fresh: bool,
}

/// Why a nurse cannot take an order; checked in this order, so the first
/// that applies is the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ineligible {
    OffShift,
    MissingSkills,
    /// The credentials do not meet the service's requirements (the gate).
    NotQualified,
    Busy,
    OfferedElsewhere,
    /// No fix, an old one, or the phone is gone: we do not know where she is.
    Stale,
}

impl Ineligible {
    /// Whether this reason also refuses a coordinator's manual assignment:
    /// every reason but `stale`. Automatic dispatch never offers work to a
    /// nurse whose position it does not know, but a coordinator may know
    /// where she is (she called in) and send her all the same.
    pub fn refuses_manual_assignment(self) -> bool {
        !matches!(self, Self::Stale)
    }

    /// As spelled in the API (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OffShift => "off_shift",
            Self::MissingSkills => "missing_skills",
            Self::NotQualified => "not_qualified",
            Self::Busy => "busy",
            Self::OfferedElsewhere => "offered_elsewhere",
            Self::Stale => "stale",
        }
    }
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a nurse's latest fix (`None`: never sent) is too old to count on
/// at `now`: the one staleness rule (the fleet's index, the roster, the
/// free count and manual assignment's candidates all ask it).
pub fn is_stale(
    last_fix: Option<DateTime<Utc>>,
    stale_after: TimeDelta,
    now: DateTime<Utc>,
) -> bool {
    last_fix.is_none_or(|at| now - at > stale_after)
}

/// Whether `skills` hold every one of `required`.
pub fn covers(skills: &[Skill], required: &[Skill]) -> bool {
    required.iter().all(|s| skills.contains(s))
}

/// Whether a nurse with these facts can take the order.
pub fn eligibility(nurse: &NurseFacts) -> Result<(), Ineligible> {
    if !nurse.on_shift {
        Err(Ineligible::OffShift)
    } else if !nurse.skilled {
        Err(Ineligible::MissingSkills)
    } else if !nurse.qualified {
        Err(Ineligible::NotQualified)
    } else if nurse.has_job {
        Err(Ineligible::Busy)
    } else if nurse.offered_elsewhere {
        Err(Ineligible::OfferedElsewhere)
    } else if !nurse.fresh {
        Err(Ineligible::Stale)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_fix_older_than_the_limit_or_none_is_stale() {
        let now = Utc::now();
        let limit = TimeDelta::seconds(60);
        assert!(is_stale(None, limit, now));
        assert!(!is_stale(Some(now - TimeDelta::seconds(60)), limit, now));
        assert!(is_stale(Some(now - TimeDelta::seconds(61)), limit, now));
        assert!(!is_stale(Some(now + TimeDelta::seconds(5)), limit, now));
    }

    #[test]
    fn only_staleness_leaves_a_manual_assignment_to_the_coordinator() {
        for why in [
            Ineligible::OffShift,
            Ineligible::MissingSkills,
            Ineligible::NotQualified,
            Ineligible::Busy,
            Ineligible::OfferedElsewhere,
        ] {
            assert!(why.refuses_manual_assignment(), "{why}");
        }
        assert!(!Ineligible::Stale.refuses_manual_assignment());
    }

    #[test]
    fn the_first_reason_that_applies_is_the_answer() {
        let wound = [Skill::new("wound_care").unwrap()];
        let catheter = [Skill::new("catheter").unwrap()];
        assert!(covers(&wound, &wound) && covers(&wound, &[]));
        assert!(!covers(&wound, &catheter) && !covers(&[], &wound));
        let free = NurseFacts {
            on_shift: true,
            skilled: true,
            qualified: true,
            has_job: false,
            offered_elsewhere: false,
            fresh: true,
        };
        assert_eq!(eligibility(&free), Ok(()));
        assert_eq!(
            eligibility(&NurseFacts {
                skilled: false,
                has_job: true,
                ..free
            }),
            Err(Ineligible::MissingSkills)
        );
        let cases = [
            (
                NurseFacts {
                    fresh: false,
                    ..free
                },
                Ineligible::Stale,
            ),
            (
                NurseFacts {
                    offered_elsewhere: true,
                    fresh: false,
                    ..free
                },
                Ineligible::OfferedElsewhere,
            ),
            (
                NurseFacts {
                    has_job: true,
                    offered_elsewhere: true,
                    ..free
                },
                Ineligible::Busy,
            ),
            (
                NurseFacts {
                    on_shift: false,
                    has_job: true,
                    ..free
                },
                Ineligible::OffShift,
            ),
        ];
        assert_eq!(
            eligibility(&NurseFacts {
                qualified: false,
                has_job: true,
                ..free
            }),
            Err(Ineligible::NotQualified)
        );
        for (facts, why) in cases {
            assert_eq!(eligibility(&facts), Err(why), "{facts:?}");
        }
        assert_eq!(Ineligible::OfferedElsewhere.as_str(), "offered_elsewhere");
    }
}
