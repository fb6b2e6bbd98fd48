//! Orders and their state machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::clinical::{Admission, OrderClinical};
use crate::error::DomainError;
use crate::geo::GeoPoint;
use crate::ids::{NurseId, OrderId, OrgId, ResidentId};
pub use crate::phone::PhoneNumber;

/// The platform's promise: a nurse at the door within this many minutes of ordering.
pub const PROMISE_MINUTES: i64 = 30;
/// Longest address text and detail, in characters.
pub const ADDRESS_MAX_CHARS: usize = 200;
/// Longest contact name, in characters.
pub const CONTACT_NAME_MAX_CHARS: usize = 50;
/// Longest free-text notes on an order, in characters.
pub const NOTES_MAX_CHARS: usize = 500;
/// Longest cancellation reason, in characters.
pub const REASON_MAX_CHARS: usize = 500;
/// Longest rating comment, in characters.
pub const COMMENT_MAX_CHARS: usize = 500;
/// How far ahead a visit can be booked (the one booking horizon): order
/// intake, quotes and slots check it through [`check_booking_time`], and the
/// catalogue serves it to the apps as `booking_horizon_days`.
pub const MAX_BOOKING_AHEAD_DAYS: i64 = 7;

/// Refuses a booked time in the past (a minute of slack for a client clock a
/// little behind ours) or beyond [`MAX_BOOKING_AHEAD_DAYS`].
pub fn check_booking_time(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DomainError> {
    if at < now - TimeDelta::minutes(1) {
        return Err(DomainError::InvalidSchedule {
            reason: "the booked time is in the past",
        });
    }
    if at > now + TimeDelta::days(MAX_BOOKING_AHEAD_DAYS) {
        return Err(DomainError::InvalidSchedule {
            reason: "visits can be booked at most 7 days ahead",
        });
    }
    Ok(())
}

/// Whether an order for `scheduled_for`, placed at `now`, is a booking that
/// waits in `scheduled` until it is due: its time is later than the
/// 30-minute promise. A time sooner than that is an order for now.
pub fn is_booking(scheduled_for: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    scheduled_for.is_some_and(|at| at > now + TimeDelta::minutes(PROMISE_MINUTES))
}

/// Where an order is in its life. The allowed steps:
///
/// ```text
/// awaiting_review -> pending | scheduled (approved) | rejected | cancelled  (screening)
/// scheduled  -> pending (due: time minus lead) | cancelled       (a booking, not yet due)
/// pending    -> offered | assigned (manual) | escalated | cancelled
/// offered    -> assigned (accept) | pending (decline / expiry: next candidate) | escalated | cancelled
/// escalated  -> offered | assigned | cancelled        (no nurse within 30 min; still dispatchable)
/// assigned   -> en_route | pending (the nurse drops out before leaving) | cancelled
/// en_route   -> arrived | cancelled
/// arrived    -> in_service | cancelled
/// in_service -> completed
/// completed, cancelled, rejected: terminal
/// ```
/// See [`OrderStatus::can_transition_to`] for the exact table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for a candidate to be offered the order.
    Pending,
    /// Offered to one nurse, waiting for the answer.
    Offered,
    /// A nurse has it and has not left yet.
    Assigned,
    /// The nurse is on the way.
    EnRoute,
    /// The nurse is at the door.
    Arrived,
    /// The visit has started.
    InService,
    /// The visit is over.
    Completed,
    /// Called off by the resident or a coordinator.
    Cancelled,
    /// No nurse can arrive within the promise; still dispatched, with an alert.
    Escalated,
    /// Waiting for a coordinator's screening; not dispatched until approved.
    AwaitingReview,
    /// Screening refused the visit (the reason is on the order).
    Rejected,
    /// A booked visit not yet due: not offered, nobody's job; released to
    /// `pending` at its time minus the lead.
    Scheduled,
}

impl OrderStatus {
    /// Every status, in life-cycle order (`escalated` last).
    pub const ALL: [OrderStatus; 12] = [
        Self::Pending,
        Self::Offered,
        Self::Assigned,
        Self::EnRoute,
        Self::Arrived,
        Self::InService,
        Self::Completed,
        Self::Cancelled,
        Self::Escalated,
        Self::AwaitingReview,
        Self::Rejected,
        Self::Scheduled,
    ];

    /// The snake_case name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Offered => "offered",
            Self::Assigned => "assigned",
            Self::EnRoute => "en_route",
            Self::Arrived => "arrived",
            Self::InService => "in_service",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Escalated => "escalated",
            Self::AwaitingReview => "awaiting_review",
            Self::Rejected => "rejected",
            Self::Scheduled => "scheduled",
        }
    }

    /// Whether the state machine allows going from `self` to `next`. Staying put is not a step.
    pub fn can_transition_to(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (AwaitingReview, Pending | Scheduled | Rejected | Cancelled)
                | (Scheduled, Pending | Cancelled)
                | (Pending, Offered | Assigned | Escalated | Cancelled)
                | (Offered, Assigned | Pending | Escalated | Cancelled)
                | (Escalated, Offered | Assigned | Cancelled)
                | (Assigned, EnRoute | Pending | Cancelled)
                | (EnRoute, Arrived | Cancelled)
                | (Arrived, InService | Cancelled)
                | (InService, Completed)
        )
    }

    /// `next` if the step is allowed, `illegal_transition` otherwise.
    pub fn transition(self, next: OrderStatus) -> Result<OrderStatus, DomainError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(DomainError::IllegalTransition {
                from: self,
                to: next,
            })
        }
    }

    /// Completed, cancelled or rejected: nothing more can happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Rejected)
    }

    /// The order can still be called off: true until the visit starts (`in_service`).
    pub fn is_cancellable(self) -> bool {
        self.can_transition_to(Self::Cancelled)
    }

    /// Statuses of an order that still needs a nurse: the dispatcher works
    /// on it, and an accepted offer or a manual assignment may claim it.
    pub const NEEDS_NURSE: [OrderStatus; 3] = [Self::Pending, Self::Offered, Self::Escalated];

    /// Statuses of an open order: neither completed, cancelled nor rejected.
    pub const OPEN: [OrderStatus; 9] = [
        Self::AwaitingReview,
        Self::Scheduled,
        Self::Pending,
        Self::Offered,
        Self::Escalated,
        Self::Assigned,
        Self::EnRoute,
        Self::Arrived,
        Self::InService,
    ];

    /// Whether the nurse has yet to reach the door: waiting, offered,
    /// escalated, assigned or en route (what "late" and "at risk" apply to).
    pub fn awaits_arrival(self) -> bool {
        self.needs_nurse() || matches!(self, Self::Assigned | Self::EnRoute)
    }

    /// Whether the order still needs a nurse (see [`Self::NEEDS_NURSE`]).
    pub fn needs_nurse(self) -> bool {
        Self::NEEDS_NURSE.contains(&self)
    }

    /// The dispatcher should look for a nurse: `pending` or `escalated`.
    pub fn is_dispatchable(self) -> bool {
        matches!(self, Self::Pending | Self::Escalated)
    }

    /// A nurse is committed to the order (assigned through in service).
    pub fn has_nurse(self) -> bool {
        matches!(
            self,
            Self::Assigned | Self::EnRoute | Self::Arrived | Self::InService
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| DomainError::InvalidStatus {
                field: "status",
                value: s.chars().take(32).collect(),
            })
    }
}

/// Where the visit takes place, as the resident wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawAddress")]
pub struct Address {
    /// Street address, e.g. "双福街道 福城大道 88 号".
    pub text: String,
    /// Building, floor, door, e.g. "3 栋 2 单元 1102".
    pub detail: Option<String>,
}

#[derive(Deserialize)]
struct RawAddress {
    text: String,
    #[serde(default)]
    detail: Option<String>,
}

impl TryFrom<RawAddress> for Address {
    type Error = DomainError;

    fn try_from(raw: RawAddress) -> Result<Self, Self::Error> {
        Address::new(&raw.text, raw.detail.as_deref())
    }
}

impl Address {
    /// Trims and checks: `text` required, both at most [`ADDRESS_MAX_CHARS`]; a blank detail is none.
    pub fn new(text: &str, detail: Option<&str>) -> Result<Self, DomainError> {
        Ok(Self {
            text: required_text("address.text", text, ADDRESS_MAX_CHARS)?,
            detail: optional_text("address.detail", detail, ADDRESS_MAX_CHARS)?,
        })
    }
}

/// Who the nurse calls at the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawContact")]
pub struct Contact {
    pub name: String,
    pub phone: PhoneNumber,
}

#[derive(Deserialize)]
struct RawContact {
    name: String,
    phone: PhoneNumber,
}

impl TryFrom<RawContact> for Contact {
    type Error = DomainError;

    fn try_from(raw: RawContact) -> Result<Self, Self::Error> {
        Ok(Contact {
            name: required_text("contact.name", &raw.name, CONTACT_NAME_MAX_CHARS)?,
            phone: raw.phone,
        })
    }
}

impl Contact {
    /// Trims and checks the name (required, at most [`CONTACT_NAME_MAX_CHARS`]) and the phone.
    pub fn new(name: &str, phone: &str) -> Result<Self, DomainError> {
        Ok(Self {
            name: required_text("contact.name", name, CONTACT_NAME_MAX_CHARS)?,
            phone: PhoneNumber::new(phone)?,
        })
    }
}

/// The resident's verdict on a completed visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRating")]
pub struct Rating {
    /// 1 to 5.
    pub stars: u8,
    /// At most [`COMMENT_MAX_CHARS`] characters; never blank.
    pub comment: Option<String>,
}

#[derive(Deserialize)]
struct RawRating {
    stars: u8,
    #[serde(default)]
    comment: Option<String>,
}

impl TryFrom<RawRating> for Rating {
    type Error = DomainError;

    fn try_from(raw: RawRating) -> Result<Self, Self::Error> {
        Rating::new(raw.stars, raw.comment)
    }
}

impl Rating {
    /// Checks stars in 1..=5 and the comment length; a blank comment becomes none.
    pub fn new(stars: u8, comment: Option<String>) -> Result<Self, DomainError> {
        if !(1..=5).contains(&stars) {
            return Err(DomainError::InvalidRating {
                field: "stars",
                reason: "stars must be between 1 and 5",
            });
        }
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > COMMENT_MAX_CHARS)
        {
            return Err(DomainError::InvalidRating {
                field: "comment",
                reason: "the comment must be at most 500 characters",
            });
        }
        Ok(Self { stars, comment })
    }
}

/// A resident's request, before it becomes an [`Order`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    pub org_id: OrgId,
    pub resident_id: ResidentId,
    pub service_code: String,
    pub location: GeoPoint,
    pub address: Address,
    pub contact: Contact,
    pub notes: Option<String>,
    /// A booked time; none means "as soon as possible".
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl NewOrder {
    /// Checks what the types alone cannot: text lengths (the fields are public,
    /// so they may have been built by hand) and that `scheduled_for` is neither
    /// in the past nor more than [`MAX_BOOKING_AHEAD_DAYS`] ahead. Whether the
    /// service exists and the location is served needs the catalogue and the
    /// areas: see [`crate::Catalog::orderable_service`] and [`crate::ServiceArea::covering`].
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        required_text("service_code", &self.service_code, 64)?;
        Address::new(&self.address.text, self.address.detail.as_deref())?;
        required_text("contact.name", &self.contact.name, CONTACT_NAME_MAX_CHARS)?;
        optional_text("notes", self.notes.as_deref(), NOTES_MAX_CHARS)?;
        if let Some(at) = self.scheduled_for {
            check_booking_time(at, now)?;
        }
        Ok(())
    }
}

/// One order for one home visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub org_id: OrgId,
    pub resident_id: ResidentId,
    pub service_code: String,
    pub location: GeoPoint,
    pub address: Address,
    pub contact: Contact,
    pub notes: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    /// When the nurse must be at the door: see [`Order::place`].
    pub promised_by: DateTime<Utc>,
    /// The nurse who has the order (from `assigned` on).
    pub nurse_id: Option<NurseId>,
    /// Predicted arrival of the nurse.
    pub eta: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub rating: Option<Rating>,
    pub updated_at: DateTime<Utc>,
    /// Intake answers, their flags, consent, doctor's order, screening outcome.
    #[serde(default)]
    pub clinical: OrderClinical,
    /// A **next job**: the nurse's current job this one waits for (won
    /// while that visit was ending, see `yixin_dispatch_core::chain`). It
    /// stays `assigned` until that job ends; then this is cleared and she
    /// proceeds. `None` for every other order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_after: Option<OrderId>,
}

/// One step in an order's timeline, as shown to the resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

impl Order {
    /// Turns a request into a `pending` order created at `now` (`scheduled`
    /// for a booking: see [`is_booking`]).
    ///
    /// `promised_by`: for an order for now, `now` + [`PROMISE_MINUTES`]; for a
    /// booked visit, `scheduled_for` itself (the nurse must be there by the
    /// booked time). A booking sooner than the 30-minute promise is treated as
    /// an order for now, so the promise is never tighter than 30 minutes.
    /// Call [`NewOrder::validate`] first.
    pub fn place(new: NewOrder, now: DateTime<Utc>) -> Order {
        let promised_by = promise(new.scheduled_for, now);
        Order {
            id: OrderId::new(),
            org_id: new.org_id,
            resident_id: new.resident_id,
            service_code: new.service_code,
            location: new.location,
            address: new.address,
            contact: new.contact,
            notes: new.notes,
            scheduled_for: new.scheduled_for,
            status: if is_booking(new.scheduled_for, now) {
                OrderStatus::Scheduled
            } else {
                OrderStatus::Pending
            },
            created_at: now,
            promised_by,
            nurse_id: None,
            eta: None,
            cancel_reason: None,
            rating: None,
            updated_at: now,
            clinical: OrderClinical::default(),
            chained_after: None,
        }
    }

    /// Attaches the admitted intake (see [`crate::ServiceClinical::admit`]);
    /// an order that needs screening starts `awaiting_review` instead of
    /// `pending`. Call right after [`Order::place`].
    pub fn admit(&mut self, admission: Admission) {
        self.clinical = admission.clinical;
        if admission.needs_review {
            self.status = OrderStatus::AwaitingReview;
        }
    }

    /// Screening approved the order at `at`: it becomes `pending` (the
    /// dispatcher takes it) and the 30-minute promise starts now; a booking
    /// not yet due becomes `scheduled` instead.
    pub fn approve(&mut self, at: DateTime<Utc>) -> Result<TimelineEvent, DomainError> {
        let next = if is_booking(self.scheduled_for, at) {
            OrderStatus::Scheduled
        } else {
            OrderStatus::Pending
        };
        if self.status != OrderStatus::AwaitingReview {
            return Err(DomainError::IllegalTransition {
                from: self.status,
                to: next,
            });
        }
        let ev = self.transition(next, at)?;
        self.promised_by = promise(self.scheduled_for, at);
        Ok(ev)
    }

    /// Screening refused the order at `at`, for `reason` (shown to the resident).
    pub fn reject(
        &mut self,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<TimelineEvent, DomainError> {
        let reason = crate::clinical::check_review_reason(reason)?;
        let ev = self.transition(OrderStatus::Rejected, at)?;
        self.clinical.review_reason = Some(reason);
        Ok(ev)
    }

    /// Moves the order to `next` at `at`, keeping `updated_at`; going back to
    /// `pending` forgets the nurse and the ETA. On error nothing changes.
    pub fn transition(
        &mut self,
        next: OrderStatus,
        at: DateTime<Utc>,
    ) -> Result<TimelineEvent, DomainError> {
        self.status = self.status.transition(next)?;
        self.updated_at = at;
        if next == OrderStatus::Pending {
            self.nurse_id = None;
            self.eta = None;
        }
        Ok(TimelineEvent {
            order_id: self.id,
            status: next,
            at,
        })
    }

    /// Gives the order to `nurse` (an accepted offer or a manual assignment).
    pub fn assign(
        &mut self,
        nurse: NurseId,
        eta: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<TimelineEvent, DomainError> {
        let ev = self.transition(OrderStatus::Assigned, at)?;
        self.nurse_id = Some(nurse);
        self.eta = eta;
        Ok(ev)
    }

    /// Calls the order off; `not_cancellable` once the visit has started.
    pub fn cancel(
        &mut self,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<TimelineEvent, DomainError> {
        if !self.status.is_cancellable() {
            return Err(DomainError::NotCancellable {
                status: self.status,
            });
        }
        let reason = optional_text("reason", reason, REASON_MAX_CHARS)?;
        let ev = self.transition(OrderStatus::Cancelled, at)?;
        self.cancel_reason = reason;
        Ok(ev)
    }

    /// Records the resident's rating: once, and only after completion.
    pub fn rate(&mut self, rating: Rating, at: DateTime<Utc>) -> Result<(), DomainError> {
        if self.status != OrderStatus::Completed {
            return Err(DomainError::NotCompleted {
                status: self.status,
            });
        }
        if self.rating.is_some() {
            return Err(DomainError::AlreadyRated);
        }
        self.rating = Some(rating);
        self.updated_at = at;
        Ok(())
    }

    /// Time left before the promise is broken (negative once late).
    pub fn time_to_promise(&self, now: DateTime<Utc>) -> TimeDelta {
        self.promised_by - now
    }

    /// Whether the nurse should be at the door by now and is not (the order is
    /// still waiting, offered, assigned or en route).
    pub fn is_late(&self, now: DateTime<Utc>) -> bool {
        self.status.awaits_arrival() && now > self.promised_by
    }
}

/// When the nurse must be at the door for an order (or approval) at `now`:
/// `now` + [`PROMISE_MINUTES`], or a later booked time.
pub fn promise(scheduled_for: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    let asap = now + TimeDelta::minutes(PROMISE_MINUTES);
    match scheduled_for {
        Some(at) if at > asap => at,
        _ => asap,
    }
}

/// Trims; refuses blank or longer than `max` characters.
fn required_text(field: &'static str, s: &str, max: usize) -> Result<String, DomainError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DomainError::Required { field });
    }
    if t.chars().count() > max {
        return Err(DomainError::TooLong { field, max });
    }
    Ok(t.to_owned())
}

/// Trims; blank becomes none; refuses longer than `max` characters.
fn optional_text(
    field: &'static str,
    s: Option<&str>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match s.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() > max => Err(DomainError::TooLong { field, max }),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// The statuses in the order of the rows and columns of [`EXPECTED`].
    const STATES: [OrderStatus; 12] = [
        Pending,
        Offered,
        Assigned,
        EnRoute,
        Arrived,
        InService,
        Completed,
        Cancelled,
        Escalated,
        AwaitingReview,
        Rejected,
        Scheduled,
    ];

    /// Written out by hand from the rules, not derived from the code: 1 = allowed.
    #[rustfmt::skip]
    const EXPECTED: [[u8; 12]; 12] = [
        //               pend off asg enr arr ins cmp cnc esc rev rej sch
        /* pending    */ [0,   1,  1,  0,  0,  0,  0,  1,  1,  0,  0,  0],
        /* offered    */ [1,   0,  1,  0,  0,  0,  0,  1,  1,  0,  0,  0],
        /* assigned   */ [1,   0,  0,  1,  0,  0,  0,  1,  0,  0,  0,  0],
        /* en_route   */ [0,   0,  0,  0,  1,  0,  0,  1,  0,  0,  0,  0],
        /* arrived    */ [0,   0,  0,  0,  0,  1,  0,  1,  0,  0,  0,  0],
        /* in_service */ [0,   0,  0,  0,  0,  0,  1,  0,  0,  0,  0,  0],
        /* completed  */ [0,   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0],
        /* cancelled  */ [0,   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0],
        /* escalated  */ [0,   1,  1,  0,  0,  0,  0,  1,  0,  0,  0,  0],
        /* awaiting   */ [1,   0,  0,  0,  0,  0,  0,  1,  0,  0,  1,  1],
        /* rejected   */ [0,   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0],
        /* scheduled  */ [1,   0,  0,  0,  0,  0,  0,  1,  0,  0,  0,  0],
    ];

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn new_order(scheduled_for: Option<DateTime<Utc>>) -> NewOrder {
        NewOrder {
            org_id: OrgId::from("demo"),
            resident_id: ResidentId::from("resident-1"),
            service_code: "wound_care".into(),
            location: GeoPoint::new(29.39, 106.32).unwrap(),
            address: Address::new("双福街道 福城大道 88 号", Some("3 栋 1102")).unwrap(),
            contact: Contact::new("王女士", "+86 138 1234 5678").unwrap(),
            notes: None,
            scheduled_for,
        }
    }

    #[test]
    fn screening_approval_starts_the_promise_and_rejection_keeps_the_reason() {
        let mut o = Order::place(new_order(None), t(0));
        o.admit(Admission {
            clinical: OrderClinical::default(),
            needs_review: true,
        });
        assert_eq!(o.status, AwaitingReview);
        assert!(!o.status.needs_nurse() && !o.status.is_dispatchable());
        let mut approved = o.clone();
        approved.approve(t(45)).unwrap();
        assert_eq!(approved.status, Pending);
        assert_eq!(approved.promised_by, t(75), "the clock starts at approval");
        assert!(approved.approve(t(46)).is_err(), "approved once");
        let mut rejected = o.clone();
        assert_eq!(
            rejected.reject("  ", t(5)).unwrap_err().field(),
            Some("reason")
        );
        rejected.reject("请先到医院就诊", t(5)).unwrap();
        assert_eq!(rejected.status, Rejected);
        assert_eq!(
            rejected.clinical.review_reason.as_deref(),
            Some("请先到医院就诊")
        );
        assert!(rejected.status.is_terminal());
        let mut plain = Order::place(new_order(None), t(0));
        plain.admit(Admission {
            clinical: OrderClinical::default(),
            needs_review: false,
        });
        assert_eq!(plain.status, Pending);
        assert!(plain.approve(t(1)).is_err());
    }

    #[test]
    fn status_sets_agree_with_each_other() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::OPEN.contains(&s), !s.is_terminal(), "{s}");
            if s.needs_nurse() {
                assert!(s.awaits_arrival() && OrderStatus::OPEN.contains(&s), "{s}");
            }
            assert_eq!(
                s.awaits_arrival(),
                s.needs_nurse() || matches!(s, OrderStatus::Assigned | OrderStatus::EnRoute),
                "{s}"
            );
        }
        assert!(!OrderStatus::Arrived.awaits_arrival());
    }

    #[test]
    fn every_pair_of_states_matches_the_table() {
        for (i, from) in STATES.into_iter().enumerate() {
            for (j, to) in STATES.into_iter().enumerate() {
                let allowed = EXPECTED[i][j] == 1;
                assert_eq!(from.can_transition_to(to), allowed, "{from} -> {to}");
                match from.transition(to) {
                    Ok(next) => {
                        assert!(allowed, "{from} -> {to} should be refused");
                        assert_eq!(next, to);
                    }
                    Err(e) => {
                        assert!(!allowed, "{from} -> {to} should be allowed");
                        assert_eq!(e, DomainError::IllegalTransition { from, to });
                        assert_eq!(e.code(), "illegal_transition");
                    }
                }
                let mut order = Order::place(new_order(None), t(0));
                order.status = from;
                let before = order.clone();
                let res = order.transition(to, t(5));
                assert_eq!(res.is_ok(), allowed, "Order::transition {from} -> {to}");
                if !allowed {
                    assert_eq!(order, before, "a refused step changes nothing");
                }
            }
        }
    }

    #[test]
    fn status_predicates_match_the_rules() {
        //                    pend   off    asg    enr    arr    ins    cmp    cnc    esc    rev    rej    sch
        let terminal = [
            false, false, false, false, false, false, true, true, false, false, true, false,
        ];
        let cancellable = [
            true, true, true, true, true, false, false, false, true, true, false, true,
        ];
        let dispatchable = [
            true, false, false, false, false, false, false, false, true, false, false, false,
        ];
        for (i, s) in STATES.into_iter().enumerate() {
            assert_eq!(s.is_terminal(), terminal[i], "{s}");
            assert_eq!(s.is_cancellable(), cancellable[i], "{s}");
            assert_eq!(s.is_dispatchable(), dispatchable[i], "{s}");
        }
    }

    #[test]
    fn status_names() {
        let names = [
            "pending",
            "offered",
            "assigned",
            "en_route",
            "arrived",
            "in_service",
            "completed",
            "cancelled",
            "escalated",
            "awaiting_review",
            "rejected",
            "scheduled",
        ];
        assert_eq!(OrderStatus::ALL.len(), 12);
        for (s, name) in STATES.into_iter().zip(names) {
            assert!(OrderStatus::ALL.contains(&s));
            assert_eq!(s.as_str(), name);
            assert_eq!(s.to_string(), name);
            assert_eq!(name.parse::<OrderStatus>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<OrderStatus>(&format!("\"{name}\"")).unwrap(),
                s
            );
        }
        let e = "EnRoute".parse::<OrderStatus>().unwrap_err();
        assert_eq!((e.code(), e.field()), ("invalid_status", Some("status")));
    }

    #[test]
    fn place_promises_thirty_minutes() {
        let o = Order::place(new_order(None), t(0));
        assert_eq!(o.status, Pending);
        assert_eq!(o.created_at, t(0));
        assert_eq!(o.updated_at, t(0));
        assert_eq!(o.promised_by, t(30));
        assert_eq!(o.nurse_id, None);
    }

    #[test]
    fn place_promises_the_booked_time() {
        let o = Order::place(new_order(Some(t(180))), t(0));
        assert_eq!(o.promised_by, t(180));
        assert_eq!(o.status, Scheduled, "a booking waits until it is due");
        // Booked sooner than the promise allows: treated as an order for now.
        let o = Order::place(new_order(Some(t(10))), t(0));
        assert_eq!(o.promised_by, t(30));
        assert_eq!(o.status, Pending);
    }

    #[test]
    fn approving_a_booking_keeps_it_scheduled() {
        let mut o = Order::place(new_order(Some(t(180))), t(0));
        o.admit(Admission {
            clinical: OrderClinical::default(),
            needs_review: true,
        });
        assert_eq!(o.status, AwaitingReview);
        o.approve(t(5)).unwrap();
        assert_eq!(o.status, Scheduled);
        assert_eq!(o.promised_by, t(180));
        assert!(!Scheduled.needs_nurse() && !Scheduled.is_dispatchable() && !Scheduled.has_nurse());
        assert!(Scheduled.is_cancellable());
    }

    #[test]
    fn the_booking_horizon_is_one_rule() {
        assert!(check_booking_time(t(60 * 24 * MAX_BOOKING_AHEAD_DAYS), t(0)).is_ok());
        assert!(check_booking_time(t(60 * 24 * MAX_BOOKING_AHEAD_DAYS + 1), t(0)).is_err());
        assert!(check_booking_time(t(-2), t(0)).is_err());
        assert!(is_booking(Some(t(31)), t(0)) && !is_booking(Some(t(30)), t(0)));
        assert!(!is_booking(None, t(0)));
    }

    #[test]
    fn happy_path_and_timeline() {
        let mut o = Order::place(new_order(None), t(0));
        let nurse = NurseId::new();
        o.transition(Offered, t(1)).unwrap();
        let ev = o.assign(nurse, Some(t(20)), t(2)).unwrap();
        assert_eq!(
            ev,
            TimelineEvent {
                order_id: o.id,
                status: Assigned,
                at: t(2)
            }
        );
        assert_eq!((o.nurse_id, o.eta), (Some(nurse), Some(t(20))));
        for (i, s) in [EnRoute, Arrived, InService, Completed]
            .into_iter()
            .enumerate()
        {
            let at = t(3 + i as i64);
            assert_eq!(o.transition(s, at).unwrap().status, s);
            assert_eq!(o.updated_at, at);
        }
        assert!(!o.is_late(t(60)));
        o.rate(Rating::new(5, Some("  很专业 ".into())).unwrap(), t(10))
            .unwrap();
        assert_eq!(
            o.rating.as_ref().unwrap().comment.as_deref(),
            Some("很专业")
        );
        assert_eq!(
            o.rate(Rating::new(4, None).unwrap(), t(11)).unwrap_err(),
            DomainError::AlreadyRated
        );
    }

    #[test]
    fn back_to_pending_forgets_the_nurse() {
        let mut o = Order::place(new_order(None), t(0));
        o.assign(NurseId::new(), Some(t(25)), t(1)).unwrap();
        o.transition(Pending, t(2)).unwrap();
        assert_eq!((o.nurse_id, o.eta), (None, None));
        assert_eq!(o.updated_at, t(2));
        assert!(o.status.is_dispatchable());
    }

    #[test]
    fn cancel_until_the_visit_starts() {
        let mut o = Order::place(new_order(None), t(0));
        o.assign(NurseId::new(), None, t(1)).unwrap();
        o.transition(EnRoute, t(2)).unwrap();
        o.cancel(Some(" changed my mind "), t(3)).unwrap();
        assert_eq!(o.status, Cancelled);
        assert_eq!(o.cancel_reason.as_deref(), Some("changed my mind"));

        let mut o = Order::place(new_order(None), t(0));
        o.assign(NurseId::new(), None, t(1)).unwrap();
        for s in [EnRoute, Arrived, InService] {
            o.transition(s, t(2)).unwrap();
        }
        let e = o.cancel(None, t(3)).unwrap_err();
        assert_eq!(e.code(), "not_cancellable");
        assert_eq!(o.status, InService);

        let mut o = Order::place(new_order(None), t(0));
        let e = o.cancel(Some(&"x".repeat(501)), t(1)).unwrap_err();
        assert_eq!((e.code(), e.field()), ("too_long", Some("reason")));
        assert_eq!(o.status, Pending);
    }

    #[test]
    fn rating_rules() {
        let mut o = Order::place(new_order(None), t(0));
        let e = o.rate(Rating::new(5, None).unwrap(), t(1)).unwrap_err();
        assert_eq!(e.code(), "order_not_completed");
        for bad in [0u8, 6, 255] {
            let e = Rating::new(bad, None).unwrap_err();
            assert_eq!((e.code(), e.field()), ("invalid_rating", Some("stars")));
        }
        let e = Rating::new(3, Some("好".repeat(501))).unwrap_err();
        assert_eq!(e.field(), Some("comment"));
        assert!(Rating::new(3, Some("好".repeat(500))).is_ok());
        assert_eq!(Rating::new(3, Some("   ".into())).unwrap().comment, None);
        assert!(serde_json::from_str::<Rating>(r#"{"stars":9}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Rating>(r#"{"stars":4}"#).unwrap(),
            Rating::new(4, None).unwrap()
        );
    }

    #[test]
    fn late_orders() {
        let o = Order::place(new_order(None), t(0));
        assert!(!o.is_late(t(30)));
        assert!(o.is_late(t(31)));
        assert_eq!(o.time_to_promise(t(10)), TimeDelta::minutes(20));
    }

    #[test]
    fn new_order_validation() {
        let now = t(0);
        assert!(new_order(None).validate(now).is_ok());
        assert!(new_order(Some(t(60))).validate(now).is_ok());
        let e = new_order(Some(t(-10))).validate(now).unwrap_err();
        assert_eq!(
            (e.code(), e.field()),
            ("invalid_schedule", Some("scheduled_for"))
        );
        assert!(
            new_order(Some(t((MAX_BOOKING_AHEAD_DAYS * 24 + 1) * 60)))
                .validate(now)
                .is_err()
        );

        let mut n = new_order(None);
        n.notes = Some("x".repeat(NOTES_MAX_CHARS + 1));
        assert_eq!(n.validate(now).unwrap_err().field(), Some("notes"));
        let mut n = new_order(None);
        n.address.text = "  ".into();
        let e = n.validate(now).unwrap_err();
        assert_eq!((e.code(), e.field()), ("required", Some("address.text")));
        let mut n = new_order(None);
        n.contact.name = String::new();
        assert_eq!(n.validate(now).unwrap_err().field(), Some("contact.name"));
    }

    #[test]
    fn address_and_contact_validate_on_deserialise() {
        assert!(serde_json::from_str::<Address>(r#"{"text":" "}"#).is_err());
        let a: Address = serde_json::from_str(r#"{"text":" 福城大道 ","detail":""}"#).unwrap();
        assert_eq!(
            a,
            Address {
                text: "福城大道".into(),
                detail: None
            }
        );
        assert!(serde_json::from_str::<Contact>(r#"{"name":"王","phone":"123"}"#).is_err());
        assert!(serde_json::from_str::<Contact>(r#"{"name":"","phone":"13812345678"}"#).is_err());
        let c: Contact =
            serde_json::from_str(r#"{"name":"王","phone":"+86 13812345678"}"#).unwrap();
        assert_eq!(c.phone.as_str(), "13812345678");
    }

    #[test]
    fn order_json_shape() {
        let o = Order::place(new_order(None), t(0));
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["status"], "pending");
        assert_eq!(v["created_at"], "2025-03-01T09:00:00Z");
        assert_eq!(v["promised_by"], "2025-03-01T09:30:00Z");
        assert_eq!(
            v["location"],
            serde_json::json!({"lat": 29.39, "lng": 106.32})
        );
        assert_eq!(v["contact"]["phone"], "13812345678");
        assert_eq!(v["org_id"], "demo");
    }

    fn arb_status() -> impl Strategy<Value = OrderStatus> {
        prop::sample::select(STATES.to_vec())
    }

    prop_compose! {
        fn arb_time()(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) -> DateTime<Utc> {
            DateTime::from_timestamp(secs, nanos).unwrap()
        }
    }

    prop_compose! {
        fn arb_order()(
            lat in -90.0f64..=90.0,
            lng in -180.0f64..=180.0,
            phone in "1[3-9][0-9]{9}",
            name in "[a-zA-Z\u{4e00}-\u{4e20}]{1,20}",
            text in "[a-z0-9\u{4e00}-\u{4e20} ]{0,30}[a-z\u{4e00}]",
            detail in prop::option::of("[a-z0-9]{1,10}"),
            notes in prop::option::of(".{0,40}"),
            status in arb_status(),
            created in arb_time(),
            scheduled in prop::option::of(arb_time()),
            eta in prop::option::of(arb_time()),
            with_nurse in any::<bool>(),
            rating in prop::option::of((1u8..=5, prop::option::of("[a-z]{1,20}"))),
        ) -> Order {
            let mut o = Order::place(NewOrder {
                org_id: OrgId::from("demo"),
                resident_id: ResidentId::from("r"),
                service_code: "wound_care".into(),
                location: GeoPoint::new(lat, lng).unwrap(),
                address: Address::new(&text, detail.as_deref()).unwrap(),
                contact: Contact::new(&name, &phone).unwrap(),
                notes,
                scheduled_for: scheduled,
            }, created);
            o.status = status;
            o.eta = eta;
            o.nurse_id = with_nurse.then(NurseId::new);
            o.rating = rating.map(|(s, c)| Rating::new(s, c).unwrap());
            o
        }
    }

    proptest! {
        #[test]
        fn order_serde_round_trip(o in arb_order()) {
            let json = serde_json::to_string(&o).unwrap();
            let mut back: Order = serde_json::from_str(&json).unwrap();
            // Floats may come back one ULP off (see GeoPoint); everything else exactly.
            prop_assert!(back.location.approx_eq(&o.location));
            back.location = o.location;
            prop_assert_eq!(back, o);
        }

        #[test]
        fn status_serde_round_trip(s in arb_status()) {
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<OrderStatus>(&json).unwrap(), s);
            prop_assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }

        #[test]
        fn transition_never_leaves_a_terminal_state(
            steps in prop::collection::vec(arb_status(), 0..40),
        ) {
            let mut o = Order::place(new_order(None), t(0));
            let mut terminal_at: Option<OrderStatus> = None;
            for (i, next) in steps.into_iter().enumerate() {
                let before = o.status;
                let res = o.transition(next, t(i as i64 + 1));
                if let Some(end) = terminal_at {
                    prop_assert!(res.is_err());
                    prop_assert_eq!(o.status, end);
                } else if res.is_ok() {
                    prop_assert!(before.can_transition_to(next));
                    prop_assert_eq!(o.status, next);
                } else {
                    prop_assert_eq!(o.status, before);
                }
                if o.status.is_terminal() {
                    terminal_at.get_or_insert(o.status);
                }
            }
        }

        #[test]
        fn terminal_states_refuse_every_step(
            from in prop::sample::select(vec![Completed, Cancelled, Rejected]),
            to in arb_status(),
        ) {
            prop_assert!(!from.can_transition_to(to));
            prop_assert!(from.transition(to).is_err());
        }
    }
}
