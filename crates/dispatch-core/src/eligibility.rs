//! The one candidate rule: whether a nurse can take an order now, and if
//! not, why. Automatic dispatch (the [`crate::Fleet`]'s candidate search)
//! and manual assignment (the coordinator's candidate list) both ask
//! [`eligibility`], so they cannot disagree.

use std::fmt;

use yixin_domain::Skill;

/// What is known of one nurse for one order, as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NurseFacts {
    /// Active and on shift.
    pub on_shift: bool,
    /// Holds every skill the order's service requires ([`covers`]; the
    /// simulator compares bit sets).
    pub skilled: bool,
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
    Busy,
    OfferedElsewhere,
    /// No fix, an old one, or the phone is gone: we do not know where she is.
    Stale,
}

impl Ineligible {
    /// As spelled in the API (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OffShift => "off_shift",
            Self::MissingSkills => "missing_skills",
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
    fn the_first_reason_that_applies_is_the_answer() {
        let wound = [Skill::new("wound_care").unwrap()];
        let catheter = [Skill::new("catheter").unwrap()];
        assert!(covers(&wound, &wound) && covers(&wound, &[]));
        assert!(!covers(&wound, &catheter) && !covers(&[], &wound));
        let free = NurseFacts {
            on_shift: true,
            skilled: true,
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
        for (facts, why) in cases {
            assert_eq!(eligibility(&facts), Err(why), "{facts:?}");
        }
        assert_eq!(Ineligible::OfferedElsewhere.as_str(), "offered_elsewhere");
    }
}
