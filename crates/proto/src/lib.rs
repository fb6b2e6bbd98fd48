//! Protobuf event payloads exchanged between Yixin services, generated from
//! `proto/yixin/events/v1/events.proto` at build time (protox + prost-build,
//! no system `protoc` needed).
//!
//! Owns only the wire format: the message types and encode/decode helpers.
//! Must not hold business rules or I/O; turning these messages into domain
//! values (and back) is the job of the adapters that publish and consume them.
//!
//! Encode with [`prost::Message::encode_to_vec`]; decode an [`Envelope`] with
//! [`decode_envelope`].

/// Generated protobuf types, by package.
pub mod events {
    /// Package `yixin.events.v1`.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/yixin.events.v1.rs"));
    }
}

pub use events::v1::Envelope;
pub use events::v1::envelope::Event;
pub use prost::{DecodeError, Message};

/// Decodes one [`Envelope`] from its protobuf bytes; malformed input is an error, never a panic.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, prost::DecodeError> {
    Envelope::decode(bytes)
}

impl Envelope {
    /// Wraps an event with its id and time.
    pub fn wrap(event_id: impl Into<String>, occurred_at_unix_ms: i64, event: Event) -> Self {
        Envelope {
            event_id: event_id.into(),
            occurred_at_unix_ms,
            event: Some(event),
        }
    }

    /// The event's kind as a short snake_case name (for logs and metrics),
    /// `"unknown"` when the envelope carries none (e.g. a newer sender's kind).
    pub fn kind(&self) -> &'static str {
        match &self.event {
            Some(Event::OrderCreated(_)) => "order_created",
            Some(Event::OfferMade(_)) => "offer_made",
            Some(Event::OfferAnswered(_)) => "offer_answered",
            Some(Event::OfferClosed(_)) => "offer_closed",
            Some(Event::OrderStatusChanged(_)) => "order_status_changed",
            Some(Event::NurseLocation(_)) => "nurse_location",
            Some(Event::NurseShiftChanged(_)) => "nurse_shift_changed",
            Some(Event::NurseLocations(_)) => "nurse_locations",
            Some(Event::AlarmChanged(_)) => "alarm_changed",
            Some(Event::CheckInDue(_)) => "check_in_due",
            Some(Event::RepositionSuggested(_)) => "reposition_suggested",
            Some(Event::SuggestionCleared(_)) => "suggestion_cleared",
            None => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::events::v1::*;
    use super::*;

    fn all_events() -> Vec<Event> {
        vec![
            Event::OrderCreated(OrderCreated {
                order_id: "0193b7a0-0000-7000-8000-000000000001".into(),
                org_id: "demo".into(),
                service_code: "wound_care".into(),
                lat: 29.39,
                lng: 106.32,
                created_at_unix_ms: 1_740_000_000_000,
                promised_by_unix_ms: 1_740_001_800_000,
                required_skills: vec!["wound_care".into(), "venipuncture".into()],
            }),
            Event::OfferMade(OfferMade {
                offer_id: "offer-1".into(),
                order_id: "order-1".into(),
                nurse_id: "nurse-1".into(),
                expires_at_unix_ms: 1_740_000_045_000,
                eta_min: 12,
                distance_m: 3_400,
                area: "8840a6e4c9fffff".into(),
                service_code: "wound_care".into(),
                service_name_zh: "普通伤口护理".into(),
                service_name_en: "Wound care".into(),
                place: "双凤街道".into(),
                flags: vec!["anticoagulants".into()],
                free_at_unix_ms: Some(1_740_000_600_000),
            }),
            Event::OfferAnswered(OfferAnswered {
                offer_id: "offer-1".into(),
                order_id: "order-1".into(),
                nurse_id: "nurse-1".into(),
                answer: offer_answered::Answer::Declined as i32,
                reason: "太远了".into(),
                at_unix_ms: 1_740_000_010_000,
            }),
            Event::OfferClosed(OfferClosed {
                offer_id: "offer-2".into(),
                nurse_id: "nurse-2".into(),
                reason: offer_closed::Reason::Taken as i32,
            }),
            Event::OrderStatusChanged(OrderStatusChanged {
                order_id: "order-1".into(),
                org_id: "demo".into(),
                from: "offered".into(),
                to: "assigned".into(),
                nurse_id: Some("nurse-1".into()),
                eta_unix_ms: Some(1_740_000_720_000),
                at_unix_ms: 1_740_000_011_000,
            }),
            Event::OrderStatusChanged(OrderStatusChanged {
                order_id: "order-1".into(),
                org_id: "demo".into(),
                from: "pending".into(),
                to: "escalated".into(),
                nurse_id: None,
                eta_unix_ms: None,
                at_unix_ms: 1_740_000_011_000,
            }),
            Event::NurseLocation(NurseLocation {
                nurse_id: "nurse-1".into(),
                org_id: "demo".into(),
                lat: 29.401,
                lng: 106.305,
                accuracy_m: 8.5,
                recorded_at_unix_ms: 1_740_000_012_000,
                order_id: Some("order-1".into()),
                eta_unix_ms: Some(1_740_000_600_000),
            }),
            Event::NurseShiftChanged(NurseShiftChanged {
                nurse_id: "nurse-1".into(),
                org_id: "demo".into(),
                on: true,
                at_unix_ms: 1_740_000_000_000,
            }),
            Event::RepositionSuggested(RepositionSuggested {
                nurse_id: "nurse-1".into(),
                org_id: "demo".into(),
                lat: 29.401,
                lng: 106.305,
                cell: "8740a6e4cffffff".into(),
                expected_orders: 2.5,
                reason: "next_hour_demand".into(),
                until_unix_ms: 1_740_003_600_000,
                distance_m: 2_400,
            }),
            Event::SuggestionCleared(SuggestionCleared {
                nurse_id: "nurse-1".into(),
                org_id: "demo".into(),
                reason: "engaged".into(),
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_an_envelope() {
        let events = all_events();
        let mut kinds: Vec<_> = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let env = Envelope::wrap(format!("evt-{i}"), 1_740_000_000_000 + i as i64, event);
            kinds.push(env.kind());
            let bytes = env.encode_to_vec();
            let back = decode_envelope(&bytes).unwrap();
            assert_eq!(back, env);
        }
        kinds.dedup();
        assert_eq!(
            kinds,
            [
                "order_created",
                "offer_made",
                "offer_answered",
                "offer_closed",
                "order_status_changed",
                "nurse_location",
                "nurse_shift_changed",
                "reposition_suggested",
                "suggestion_cleared",
            ]
        );
    }

    #[test]
    fn optional_fields_distinguish_unset_from_zero() {
        let with_zero = OrderStatusChanged {
            eta_unix_ms: Some(0),
            ..Default::default()
        };
        let back = OrderStatusChanged::decode(with_zero.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.eta_unix_ms, Some(0));
        let unset = OrderStatusChanged::default();
        let back = OrderStatusChanged::decode(unset.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.eta_unix_ms, None);
        assert_eq!(back.nurse_id, None);
    }

    #[test]
    fn enums_have_unspecified_zero_and_typed_accessors() {
        let a = OfferAnswered::default();
        assert_eq!(a.answer(), offer_answered::Answer::Unspecified);
        let c = OfferClosed {
            reason: offer_closed::Reason::Cancelled as i32,
            ..Default::default()
        };
        assert_eq!(c.reason(), offer_closed::Reason::Cancelled);
        assert_eq!(
            offer_closed::Reason::Expired.as_str_name(),
            "REASON_EXPIRED"
        );
        // An unknown enum number from a newer sender decodes, and reads as unspecified.
        let future = OfferClosed {
            reason: 99,
            ..Default::default()
        };
        let back = OfferClosed::decode(future.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.reason, 99);
        assert_eq!(back.reason(), offer_closed::Reason::Unspecified);
    }

    #[test]
    fn empty_envelope_is_valid_and_unknown() {
        let env = decode_envelope(&[]).unwrap();
        assert_eq!(env, Envelope::default());
        assert_eq!(env.kind(), "unknown");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let samples: [&[u8]; 5] = [
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            &[0x0a, 0x05, b'a'], // length says 5, only 1 byte follows
            &[0x52, 0x80],       // truncated varint length for order_created
            &[0x07],             // wire type 7 does not exist
            b"this is not a protobuf message!", // text
        ];
        for bytes in samples {
            assert!(decode_envelope(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every outcome is fine as long as decoding returns.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2_000usize {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_envelope(&bytes);
        }
    }
}
