//! The phone's frames (API.md, "Nurse — nurse-tracking"): what a phone may
//! send, what it gets, and the checks on a GPS fix.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_domain::{GeoPoint, OfferClosedReason, OrderStatus};

use crate::errors::TrackingError;
use crate::fleet::Fix;

/// A fix may be stamped at most this far in the future (phone clocks drift).
pub const MAX_CLOCK_AHEAD: TimeDelta = TimeDelta::seconds(60);

/// One GPS fix as a phone sends it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixIn {
    #[schema(minimum = -90, maximum = 90, example = 29.39)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180, example = 106.32)]
    pub lng: f64,
    /// Horizontal accuracy radius, metres; at most `tracking.max_accuracy_m`.
    #[schema(minimum = 0, example = 8.0)]
    pub accuracy_m: f64,
    /// When the phone took the fix (RFC 3339); not more than a minute ahead.
    pub ts: DateTime<Utc>,
}

impl FixIn {
    /// Checks ranges, accuracy and the clock; `field` prefixes the error's
    /// field. A fix older than `max_age` (the staleness window: it could
    /// not make the nurse a candidate, and a stale or absurd stamp such as
    /// 1970 must not enter the proof-of-visit trail) is refused too.
    pub fn validate(
        &self,
        now: DateTime<Utc>,
        max_accuracy_m: f64,
        max_age: TimeDelta,
        field: &str,
    ) -> Result<Fix, TrackingError> {
        let point = GeoPoint::new(self.lat, self.lng).map_err(|e| TrackingError::InvalidFix {
            field: format!("{field}lat"),
            message: e.to_string(),
        })?;
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return Err(TrackingError::InvalidFix {
                field: format!("{field}accuracy_m"),
                message: "accuracy_m must be a finite, non-negative number of metres".into(),
            });
        }
        if self.accuracy_m > max_accuracy_m {
            return Err(TrackingError::InvalidFix {
                field: format!("{field}accuracy_m"),
                message: format!("fixes less accurate than {max_accuracy_m} m are refused"),
            });
        }
        if self.ts > now + MAX_CLOCK_AHEAD {
            return Err(TrackingError::InvalidFix {
                field: format!("{field}ts"),
                message: "the fix is stamped more than a minute in the future".into(),
            });
        }
        if self.ts < now - max_age {
            return Err(TrackingError::InvalidFix {
                field: format!("{field}ts"),
                message: format!(
                    "the fix is older than {} s (the staleness window)",
                    max_age.num_seconds()
                ),
            });
        }
        Ok(Fix {
            point,
            accuracy_m: self.accuracy_m,
            at: self.ts,
        })
    }
}

/// Shift state as a phone says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShiftIn {
    On,
    Off,
}

/// A visit step a nurse reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProgressStep)]
pub enum Step {
    EnRoute,
    Arrived,
    Started,
    Completed,
}

impl Step {
    /// The order status the step moves to, and the one it must come from.
    pub fn transition(self) -> (OrderStatus, OrderStatus) {
        match self {
            Self::EnRoute => (OrderStatus::Assigned, OrderStatus::EnRoute),
            Self::Arrived => (OrderStatus::EnRoute, OrderStatus::Arrived),
            Self::Started => (OrderStatus::Arrived, OrderStatus::InService),
            Self::Completed => (OrderStatus::InService, OrderStatus::Completed),
        }
    }
}

/// What a phone sends over the socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Location {
        lat: f64,
        lng: f64,
        accuracy_m: f64,
        ts: DateTime<Utc>,
    },
    Locations {
        fixes: Vec<FixIn>,
    },
    Shift {
        state: ShiftIn,
    },
    Accept {
        offer_id: String,
    },
    Decline {
        offer_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Progress {
        order_id: String,
        step: Step,
        /// With `started`: who consented on site (the patient or a family member).
        #[serde(default)]
        consent_by: Option<String>,
        /// With `arrived`: where the phone is (else its latest fresh fix).
        #[serde(default)]
        location: Option<crate::safety::StepPosition>,
    },
    /// One-key alarm (answered by `ack` with the alarm's id and state).
    Sos {
        #[serde(default)]
        lat: Option<f64>,
        #[serde(default)]
        lng: Option<f64>,
        #[serde(default)]
        accuracy_m: Option<f64>,
        #[serde(default)]
        note: Option<String>,
    },
    /// "I am fine" on a visit (answered by `ack`).
    CheckIn {
        order_id: String,
    },
}

/// The frame types a phone may send.
pub const CLIENT_FRAME_TYPES: [&str; 8] = [
    "location",
    "locations",
    "shift",
    "accept",
    "decline",
    "progress",
    "sos",
    "check_in",
];

impl ClientFrame {
    /// Parses a text frame. Not JSON, not an object or no `type` →
    /// `bad_frame`; a type we do not know → `unknown_frame`; a known type
    /// with wrong fields → `invalid_frame` naming the problem.
    pub fn parse(text: &str) -> Result<Self, TrackingError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| TrackingError::BadFrame(format!("not JSON: {e}")))?;
        let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
            return Err(TrackingError::BadFrame(
                "a frame is a JSON object with a string `type`".into(),
            ));
        };
        if !CLIENT_FRAME_TYPES.contains(&kind) {
            let kind: String = kind.chars().filter(|c| !c.is_control()).take(32).collect();
            return Err(TrackingError::UnknownFrame(kind));
        }
        if let Some(field) = yixin_platform::extract::control_character_field(text.as_bytes()) {
            return Err(TrackingError::ControlCharacter { field });
        }
        serde_json::from_value(value).map_err(|e| TrackingError::InvalidFrame(e.to_string()))
    }
}

// One schema each, shared with the residents' and coordinators' views.
pub use yixin_platform::views::{AddressView, ContactView, Location};

/// A service in words, as a phone shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceName {
    #[schema(example = "wound_care")]
    pub code: String,
    /// The catalogue's Chinese name (the code if the service is unknown).
    #[schema(example = "普通伤口护理")]
    pub name_zh: String,
    #[schema(example = "Wound care")]
    pub name_en: String,
}

impl ServiceName {
    /// The names as an offer event carries them; a name missing from the
    /// event (an older producer, an unknown service) falls back to the code.
    pub fn new(code: String, name_zh: String, name_en: String) -> Self {
        let or_code = |name: String| if name.is_empty() { code.clone() } else { name };
        Self {
            name_zh: or_code(name_zh),
            name_en: or_code(name_en),
            code,
        }
    }
}

/// An offer as the nurse sees it: a coarse area, never the address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = NurseOffer)]
pub struct OfferView {
    pub offer_id: String,
    pub order_id: String,
    pub service_code: String,
    /// The service in words.
    pub service: ServiceName,
    pub distance_m: u32,
    pub eta_min: u32,
    /// An H3 cell (resolution 7, about 5 km²) around the order (for
    /// machines; a phone shows `place`).
    pub area: String,
    /// The name of the service area the order is in (never the address,
    /// never a cell id); null when the order is in no named area.
    #[schema(example = "双福街道 Shuangfu")]
    pub place: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// Risk flags of the intake answers (question codes, e.g.
    /// `anticoagulants`, `infectious_disease`): what to know before accepting.
    #[serde(default)]
    pub flags: Vec<String>,
    /// A chained offer: won, it becomes the nurse's **next** job, started
    /// when her current visit ends (`eta_min` counts from then).
    #[serde(default)]
    pub chained: bool,
    /// With `chained`: when her current visit is predicted to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_at: Option<DateTime<Utc>>,
}

/// The address, contact and exact place: only for the nurse who won the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssignedView {
    pub order_id: String,
    pub service_code: String,
    /// The job's order status (`assigned`, `en_route`, …).
    #[schema(value_type = yixin_platform::views::OrderStatusName, example = "assigned")]
    pub status: OrderStatus,
    pub address: AddressView,
    pub contact: ContactView,
    pub location: Location,
    pub notes: Option<String>,
    pub promised_by: DateTime<Utc>,
    /// Risk flags of the intake answers.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The intake answers by question code.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub answers: std::collections::BTreeMap<String, serde_json::Value>,
    /// The doctor's order the visit is based on, where the service needs one.
    #[serde(default)]
    pub doctor_order_ref: Option<String>,
    /// Who the visit is for, when the resident named a household member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientView>,
    /// Her **next** job (a chained one): it waits for her current visit to
    /// end, and takes no visit step until then; it becomes current (an
    /// `assigned` frame with `next` false) when that visit is completed.
    #[serde(default)]
    pub next: bool,
}

/// The patient of a job, as the nurse needs to know them before the door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PatientView {
    pub name: String,
    /// `male` or `female`.
    pub sex: String,
    pub birth_year: i32,
    /// Known conditions and allergies, as the family wrote them.
    pub conditions: Option<String>,
    pub allergies: Option<String>,
}

/// What the server sends to a phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Offer(OfferView),
    Assigned(AssignedView),
    OfferClosed {
        offer_id: String,
        reason: OfferClosedReason,
    },
    OrderCancelled {
        order_id: String,
    },
    /// Her next job was taken back (her current visit overran so its
    /// promise was at risk) and is offered to another nurse.
    OrderReassigned {
        order_id: String,
        reason: String,
    },
    /// A request (shift, decline, progress) was applied. Extension of API.md
    /// so a phone knows its step counted.
    Ack {
        request: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// One of the nurse's alarms was raised, acknowledged, resolved or escalated.
    Alarm {
        alarm_id: String,
        /// `sos`, `missed_check_in` or `silent_phone`.
        kind: String,
        /// `open`, `acknowledged` or `resolved`.
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
        at: Option<DateTime<Utc>>,
    },
    /// The lone-worker timer ran out: check in on this visit by `by`.
    CheckInDue {
        order_id: String,
        by: Option<DateTime<Utc>>,
    },
    /// Where to wait for the next hour's demand (the nurse may ignore it).
    Suggestion {
        location: Location,
        cell: String,
        expected_orders: f64,
        distance_m: u32,
        reason: String,
        until: DateTime<Utc>,
    },
    /// The suggestion no longer holds.
    SuggestionCleared {
        reason: String,
    },
}

impl ServerFrame {
    pub fn error(e: &TrackingError) -> Self {
        Self::Error {
            code: e.code().to_owned(),
            message: e.to_string(),
            field: e.field(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    fn fix(lat: f64, lng: f64, acc: f64, ahead_s: i64) -> FixIn {
        FixIn {
            lat,
            lng,
            accuracy_m: acc,
            ts: now() + TimeDelta::seconds(ahead_s),
        }
    }

    #[test]
    fn a_good_fix_passes() {
        let f = fix(29.3, 106.25, 12.0, -3)
            .validate(now(), 500.0, TimeDelta::seconds(60), "")
            .unwrap();
        assert_eq!(f.point.lat(), 29.3);
        assert_eq!(f.at, now() - TimeDelta::seconds(3));
    }

    #[test]
    fn bad_fixes_are_refused_naming_the_field() {
        let field = |f: FixIn| {
            f.validate(now(), 500.0, TimeDelta::seconds(60), "fixes[2].")
                .unwrap_err()
                .field()
        };
        assert_eq!(
            field(fix(91.0, 106.0, 5.0, 0)).as_deref(),
            Some("fixes[2].lat")
        );
        assert_eq!(
            field(fix(29.0, 181.0, 5.0, 0)).as_deref(),
            Some("fixes[2].lat")
        );
        assert_eq!(
            field(fix(f64::NAN, 106.0, 5.0, 0)).as_deref(),
            Some("fixes[2].lat")
        );
        assert_eq!(
            field(fix(29.0, 106.0, -1.0, 0)).as_deref(),
            Some("fixes[2].accuracy_m")
        );
        assert_eq!(
            field(fix(29.0, 106.0, 501.0, 0)).as_deref(),
            Some("fixes[2].accuracy_m")
        );
        assert_eq!(
            field(fix(29.0, 106.0, f64::INFINITY, 0)).as_deref(),
            Some("fixes[2].accuracy_m")
        );
        assert_eq!(
            field(fix(29.0, 106.0, 5.0, 61)).as_deref(),
            Some("fixes[2].ts")
        );
        assert!(
            fix(29.0, 106.0, 5.0, 60)
                .validate(now(), 500.0, TimeDelta::seconds(60), "")
                .is_ok()
        );
        // Older than the staleness window, or absurd: refused.
        assert_eq!(
            field(fix(29.0, 106.0, 5.0, -61)).as_deref(),
            Some("fixes[2].ts")
        );
        for absurd in [
            "1970-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T00:00:00Z",
        ] {
            let f = FixIn {
                ts: absurd.parse().unwrap(),
                ..fix(29.0, 106.0, 5.0, 0)
            };
            assert_eq!(field(f).as_deref(), Some("fixes[2].ts"), "{absurd}");
        }
        assert!(
            fix(29.0, 106.0, 5.0, -60)
                .validate(now(), 500.0, TimeDelta::seconds(60), "")
                .is_ok()
        );
    }

    #[test]
    fn frames_parse_and_errors_say_what_is_wrong() {
        assert!(matches!(
            ClientFrame::parse(r#"{"type":"shift","state":"on"}"#),
            Ok(ClientFrame::Shift { state: ShiftIn::On })
        ));
        assert!(matches!(
            ClientFrame::parse(
                r#"{"type":"location","lat":29.3,"lng":106.2,"accuracy_m":5,"ts":"2026-11-23T10:00:00Z"}"#
            ),
            Ok(ClientFrame::Location { .. })
        ));
        assert_eq!(ClientFrame::parse("{nope").unwrap_err().code(), "bad_frame");
        assert_eq!(ClientFrame::parse("[1,2]").unwrap_err().code(), "bad_frame");
        assert_eq!(
            ClientFrame::parse(r#"{"type":7}"#).unwrap_err().code(),
            "bad_frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"teleport"}"#)
                .unwrap_err()
                .code(),
            "unknown_frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"shift","state":"maybe"}"#)
                .unwrap_err()
                .code(),
            "invalid_frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"accept"}"#)
                .unwrap_err()
                .code(),
            "invalid_frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"progress","order_id":"x","step":"teleported"}"#)
                .unwrap_err()
                .code(),
            "invalid_frame"
        );
    }

    #[test]
    fn steps_follow_the_order_state_machine() {
        for step in [Step::EnRoute, Step::Arrived, Step::Started, Step::Completed] {
            let (from, to) = step.transition();
            assert!(from.can_transition_to(to), "{step:?}");
        }
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let f = ServerFrame::OfferClosed {
            offer_id: "o".into(),
            reason: OfferClosedReason::Taken,
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"type":"offer_closed","offer_id":"o","reason":"taken"})
        );
        let f = ServerFrame::OrderCancelled {
            order_id: "x".into(),
        };
        assert_eq!(serde_json::to_value(&f).unwrap()["type"], "order_cancelled");
    }
}
