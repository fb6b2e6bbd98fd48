//! Offers: one order proposed to one nurse, with a deadline to answer.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{NurseId, OfferId, OrderId};

/// Default time a nurse has to answer an offer (`dispatch.offer_ttl_secs`).
pub const DEFAULT_OFFER_TTL_SECS: i64 = 30;
/// Longest decline reason, in characters.
pub const DECLINE_REASON_MAX_CHARS: usize = 200;

/// Where an offer is in its short life. Only `open` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Waiting for the nurse's answer.
    Open,
    /// The nurse took it (the order claim is a separate, atomic step in the store).
    Accepted,
    /// The nurse said no.
    Declined,
    /// The deadline passed without an answer.
    Expired,
    /// Called back: the order was taken by someone else or cancelled.
    Withdrawn,
}

impl OfferStatus {
    /// Every status.
    pub const ALL: [OfferStatus; 5] = [
        Self::Open,
        Self::Accepted,
        Self::Declined,
        Self::Expired,
        Self::Withdrawn,
    ];

    /// The snake_case name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl fmt::Display for OfferStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OfferStatus {
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

/// Why a nurse's offer was closed without their answer (the `offer_closed` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferClosedReason {
    /// The deadline passed.
    Expired,
    /// Another nurse got the order.
    Taken,
    /// The order was cancelled.
    Cancelled,
}

impl OfferClosedReason {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Taken => "taken",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OfferClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OfferClosedReason {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "expired" => Ok(Self::Expired),
            "taken" => Ok(Self::Taken),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(DomainError::InvalidStatus {
                field: "reason",
                value: s.chars().take(32).collect(),
            }),
        }
    }
}

/// An order proposed to one nurse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub order_id: OrderId,
    pub nurse_id: NurseId,
    pub status: OfferStatus,
    pub created_at: DateTime<Utc>,
    /// The answer must come strictly before this instant.
    pub expires_at: DateTime<Utc>,
    /// Estimated minutes for the nurse to reach the door.
    pub eta_min: u32,
    /// Distance from the nurse to the order, metres.
    pub distance_m: u32,
    /// When the nurse accepted or declined; also set when the offer expires
    /// or is withdrawn, so it is the moment the offer closed.
    pub answered_at: Option<DateTime<Utc>>,
    pub decline_reason: Option<String>,
    /// The credentials that qualified the nurse for this order's service
    /// when the offer was made (the dispatch gate's answer).
    #[serde(default)]
    pub qualified_by: Option<crate::credentials::Qualification>,
    /// A **chained** offer: the nurse is finishing a visit, predicted to end
    /// at this time; her travel (`eta_min`) starts then, and the order, if
    /// she wins it, becomes her next job (`Order::chained_after`). `None`
    /// for an offer to a free nurse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_at: Option<DateTime<Utc>>,
}

impl Offer {
    /// An open offer made at `now`, answerable for `ttl`.
    pub fn new(
        order_id: OrderId,
        nurse_id: NurseId,
        now: DateTime<Utc>,
        ttl: TimeDelta,
        eta_min: u32,
        distance_m: u32,
    ) -> Offer {
        Offer {
            id: OfferId::new(),
            order_id,
            nurse_id,
            status: OfferStatus::Open,
            created_at: now,
            expires_at: now + ttl,
            eta_min,
            distance_m,
            answered_at: None,
            decline_reason: None,
            qualified_by: None,
            free_at: None,
        }
    }

    /// When the nurse would be at the door: her travel from `free_at` (or
    /// from when the offer was made, for a free nurse).
    pub fn arrival(&self) -> DateTime<Utc> {
        self.free_at
            .map_or(self.created_at, |at| at.max(self.created_at))
            + TimeDelta::minutes(i64::from(self.eta_min))
    }

    /// Whether the offer chains onto the nurse's current visit.
    pub fn is_chained(&self) -> bool {
        self.free_at.is_some()
    }

    /// Open and before its deadline.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.status == OfferStatus::Open && now < self.expires_at
    }

    /// The nurse takes the order. `offer_expired` past the deadline,
    /// `offer_not_open` if already closed.
    pub fn accept(&mut self, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.check_answerable(now)?;
        self.close(OfferStatus::Accepted, now);
        Ok(())
    }

    /// The nurse says no. Same errors as [`Offer::accept`]; a blank reason is
    /// none, a long one is cut to [`DECLINE_REASON_MAX_CHARS`] (a nurse's
    /// "no" must never fail on its wording).
    pub fn decline(
        &mut self,
        now: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<(), DomainError> {
        self.check_answerable(now)?;
        self.close(OfferStatus::Declined, now);
        self.decline_reason = reason
            .map(|r| {
                r.trim()
                    .chars()
                    .take(DECLINE_REASON_MAX_CHARS)
                    .collect::<String>()
            })
            .filter(|r| !r.is_empty());
        Ok(())
    }

    /// The deadline has passed without an answer. `offer_still_live` before the
    /// deadline, `offer_not_open` if already closed.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.check_open()?;
        if now < self.expires_at {
            return Err(DomainError::OfferStillLive { offer_id: self.id });
        }
        self.close(OfferStatus::Expired, now);
        Ok(())
    }

    /// Calls the offer back (order taken elsewhere or cancelled); `offer_not_open` if closed.
    pub fn withdraw(&mut self, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.check_open()?;
        self.close(OfferStatus::Withdrawn, now);
        Ok(())
    }

    fn check_open(&self) -> Result<(), DomainError> {
        if self.status == OfferStatus::Open {
            Ok(())
        } else {
            Err(DomainError::OfferNotOpen {
                offer_id: self.id,
                status: self.status,
            })
        }
    }

    fn check_answerable(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.check_open()?;
        if now >= self.expires_at {
            return Err(DomainError::OfferExpired { offer_id: self.id });
        }
        Ok(())
    }

    fn close(&mut self, status: OfferStatus, now: DateTime<Utc>) {
        self.status = status;
        self.answered_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = DEFAULT_OFFER_TTL_SECS;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_740_000_000 + s, 0).unwrap()
    }

    fn offer() -> Offer {
        Offer::new(
            OrderId::new(),
            NurseId::new(),
            t(0),
            TimeDelta::seconds(DEFAULT_OFFER_TTL_SECS),
            12,
            3_400,
        )
    }

    #[test]
    fn new_offer_is_open_until_its_deadline() {
        let o = offer();
        assert_eq!(o.status, OfferStatus::Open);
        assert_eq!(o.expires_at, t(TTL));
        assert!(o.is_live(t(0)));
        assert!(o.is_live(t(TTL - 1)));
        assert!(!o.is_live(t(TTL)));
    }

    #[test]
    fn accept_in_time() {
        let mut o = offer();
        o.accept(t(10)).unwrap();
        assert_eq!(o.status, OfferStatus::Accepted);
        assert_eq!(o.answered_at, Some(t(10)));
        assert!(!o.is_live(t(11)));
        let e = o.accept(t(11)).unwrap_err();
        assert_eq!(e.code(), "offer_not_open");
        assert!(o.decline(t(11), None).is_err());
        assert!(o.withdraw(t(11)).is_err());
    }

    #[test]
    fn accept_too_late_is_offer_expired() {
        let mut o = offer();
        let e = o.accept(t(TTL)).unwrap_err();
        assert_eq!(e.code(), "offer_expired");
        assert_eq!(o.status, OfferStatus::Open);
        let e = o.decline(t(TTL + 1), None).unwrap_err();
        assert_eq!(e.code(), "offer_expired");
    }

    #[test]
    fn decline_keeps_a_tidy_reason() {
        let mut o = offer();
        o.decline(t(5), Some("  太远了 ".into())).unwrap();
        assert_eq!(o.status, OfferStatus::Declined);
        assert_eq!(o.decline_reason.as_deref(), Some("太远了"));

        let mut o = offer();
        o.decline(t(5), Some("x".repeat(1000))).unwrap();
        assert_eq!(o.decline_reason.as_ref().unwrap().len(), 200);

        let mut o = offer();
        o.decline(t(5), Some("   ".into())).unwrap();
        assert_eq!(o.decline_reason, None);
    }

    #[test]
    fn expire_only_after_the_deadline() {
        let mut o = offer();
        assert_eq!(o.expire(t(TTL - 1)).unwrap_err().code(), "offer_still_live");
        o.expire(t(TTL)).unwrap();
        assert_eq!(o.status, OfferStatus::Expired);
        assert_eq!(o.answered_at, Some(t(TTL)));
        assert_eq!(o.expire(t(TTL + 1)).unwrap_err().code(), "offer_not_open");
    }

    #[test]
    fn withdraw_an_open_offer() {
        let mut o = offer();
        o.withdraw(t(3)).unwrap();
        assert_eq!(o.status, OfferStatus::Withdrawn);
        assert!(o.accept(t(4)).is_err());
    }

    #[test]
    fn names_and_json() {
        for s in OfferStatus::ALL {
            assert_eq!(s.as_str().parse::<OfferStatus>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("OPEN".parse::<OfferStatus>().is_err());
        for r in [
            OfferClosedReason::Expired,
            OfferClosedReason::Taken,
            OfferClosedReason::Cancelled,
        ] {
            assert_eq!(r.as_str().parse::<OfferClosedReason>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        let o = offer();
        let back: Offer = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }
}
