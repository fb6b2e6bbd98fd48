//! Events of the demand forecast and repositioning (issue 18): a
//! suggestion of where an idle nurse might wait for the next hour's demand,
//! and its withdrawal, both to the nurse's phone.

use chrono::{DateTime, Utc};
use yixin_domain::{GeoPoint, NurseId, OrgId};
use yixin_proto::Event;
use yixin_proto::events::v1 as pb;

use crate::events::{Broadcast, envelope};
use crate::names::nurse_channel;

/// The one reason a suggestion is made: where the next hour's expected
/// orders are best reached.
pub const SUGGESTION_REASON: &str = "next_hour_demand";

/// Why a suggestion was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearedReason {
    /// She got an offer or a job.
    Engaged,
    /// She went off shift (or stale, or offline).
    OffShift,
    /// The forecast no longer points anywhere worth the move.
    Withdrawn,
}

impl ClearedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engaged => "engaged",
            Self::OffShift => "off_shift",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// A waiting spot suggested to one nurse.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingSpot {
    pub to: GeoPoint,
    /// The resolution-7 H3 cell of `to`.
    pub cell: String,
    /// Orders expected next hour within reach of `to`.
    pub expected_orders: f64,
    pub until: DateTime<Utc>,
    /// Straight-line metres from her last fix to `to`.
    pub distance_m: u32,
}

/// The suggestion, pushed to its nurse's phone.
pub fn suggestion_to_nurse(
    nurse: NurseId,
    org: &OrgId,
    spot: &WaitingSpot,
    at: DateTime<Utc>,
) -> Broadcast {
    Broadcast {
        channel: nurse_channel(nurse),
        payload: envelope(
            Event::RepositionSuggested(pb::RepositionSuggested {
                nurse_id: nurse.to_string(),
                org_id: org.as_str().to_owned(),
                lat: spot.to.lat(),
                lng: spot.to.lng(),
                cell: spot.cell.clone(),
                expected_orders: spot.expected_orders,
                reason: SUGGESTION_REASON.to_owned(),
                until_unix_ms: spot.until.timestamp_millis(),
                distance_m: spot.distance_m,
            }),
            at,
        ),
    }
}

/// Tells the nurse's phone her suggestion no longer holds.
pub fn suggestion_cleared(
    nurse: NurseId,
    org: &OrgId,
    reason: ClearedReason,
    at: DateTime<Utc>,
) -> Broadcast {
    Broadcast {
        channel: nurse_channel(nurse),
        payload: envelope(
            Event::SuggestionCleared(pb::SuggestionCleared {
                nurse_id: nurse.to_string(),
                org_id: org.as_str().to_owned(),
                reason: reason.as_str().to_owned(),
            }),
            at,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yixin_proto::decode_envelope;

    #[test]
    fn a_suggestion_goes_to_its_nurse_with_its_spot() {
        let nurse = NurseId(uuid::Uuid::now_v7());
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let spot = WaitingSpot {
            to: GeoPoint::new(29.4, 106.3).unwrap(),
            cell: "8740a6e4cffffff".into(),
            expected_orders: 1.5,
            until: at + chrono::TimeDelta::minutes(30),
            distance_m: 2_000,
        };
        let b = suggestion_to_nurse(nurse, &OrgId::from("demo"), &spot, at);
        assert_eq!(b.channel, nurse_channel(nurse));
        let Some(Event::RepositionSuggested(e)) = decode_envelope(&b.payload).unwrap().event else {
            panic!("not a suggestion");
        };
        assert_eq!(e.nurse_id, nurse.to_string());
        assert_eq!((e.lat, e.lng), (29.4, 106.3));
        assert_eq!(e.until_unix_ms, spot.until.timestamp_millis());
        assert_eq!(e.reason, SUGGESTION_REASON);
        let c = suggestion_cleared(nurse, &OrgId::from("demo"), ClearedReason::Engaged, at);
        let Some(Event::SuggestionCleared(e)) = decode_envelope(&c.payload).unwrap().event else {
            panic!("not a clearing");
        };
        assert_eq!(e.reason, "engaged");
    }
}
