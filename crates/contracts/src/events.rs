//! Event builders: each event shape is made here, once, and wrapped in the
//! one [`Envelope`] every stream and channel carries.

use chrono::{DateTime, Utc};
use yixin_domain::{
    Catalog, GeoPoint, NurseId, Offer, OfferClosedReason, OfferId, Order, OrderId, OrderStatus,
    ServiceArea,
};
use yixin_proto::events::v1 as pb;
use yixin_proto::{Envelope, Event, Message};

use crate::names::{OFFERS_STREAM, ORDERS_STREAM, dispatch_channel, nurse_channel, order_channel};

/// An event to publish on a work stream, written to the outbox in the same
/// transaction as the change it reports (the relay publishes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// The stream the relay publishes it to (e.g. [`ORDERS_STREAM`]).
    pub topic: String,
    /// The encoded [`Envelope`].
    pub payload: Vec<u8>,
}

/// Whether the relay repeats an event on
/// [`ENGAGEMENT_CHANNEL`](crate::ENGAGEMENT_CHANNEL): it changes who holds an
/// offer or a job (an offer made or answered, an order status change that
/// names a nurse), or puts an order back to waiting.
pub fn is_engagement(event: &Event) -> bool {
    match event {
        Event::OfferMade(_) | Event::OfferAnswered(_) => true,
        Event::OrderStatusChanged(e) => {
            e.nurse_id.is_some() || e.to == OrderStatus::Pending.as_str()
        }
        _ => false,
    }
}

/// An event for a pub/sub channel (fire and forget: a phone or a feed that
/// misses it catches up by reading state on reconnect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub channel: String,
    /// The encoded [`Envelope`].
    pub payload: Vec<u8>,
}

/// Wraps an event in the envelope (a UUIDv7 event id and the time) and encodes it.
pub fn envelope(event: Event, at: DateTime<Utc>) -> Vec<u8> {
    Envelope::wrap(
        uuid::Uuid::now_v7().to_string(),
        at.timestamp_millis(),
        event,
    )
    .encode_to_vec()
}

/// The coarse area shown with an offer: the resolution-7 H3 cell (about
/// 5 km²) around the order, never the address.
pub fn coarse_area(point: GeoPoint) -> String {
    h3o::LatLng::new(point.lat(), point.lng())
        .map(|ll| ll.to_cell(h3o::Resolution::Seven).to_string())
        .unwrap_or_default()
}

/// What an offer tells its nurse beyond the offer itself: the service in
/// words and a coarse place (the service area's name, never the address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferDetails {
    pub service_name_zh: String,
    pub service_name_en: String,
    /// The name of the service area the order is in; empty if none.
    pub place: String,
}

/// The [`OfferDetails`] of `order`, from the catalogue and the
/// organisation's service areas (the first area containing the order).
pub fn offer_details(catalog: &Catalog, areas: &[ServiceArea], order: &Order) -> OfferDetails {
    let service = catalog.service(&order.service_code);
    OfferDetails {
        service_name_zh: service.map(|s| s.name_zh.clone()).unwrap_or_default(),
        service_name_en: service.map(|s| s.name_en.clone()).unwrap_or_default(),
        place: areas
            .iter()
            .find(|a| a.org_id == order.org_id && a.contains(&order.location))
            .map(|a| a.name.clone())
            .unwrap_or_default(),
    }
}

/// `OrderCreated` for the orders stream: what the dispatcher needs to find
/// a nurse without reading the order back.
pub fn order_created(order: &Order, required_skills: Vec<String>) -> NewOutboxMessage {
    let event = Event::OrderCreated(pb::OrderCreated {
        order_id: order.id.to_string(),
        org_id: order.org_id.as_str().to_owned(),
        service_code: order.service_code.clone(),
        lat: order.location.lat(),
        lng: order.location.lng(),
        created_at_unix_ms: order.created_at.timestamp_millis(),
        promised_by_unix_ms: order.promised_by.timestamp_millis(),
        required_skills,
    });
    NewOutboxMessage {
        topic: ORDERS_STREAM.to_owned(),
        payload: envelope(event, order.created_at),
    }
}

/// `OrderStatusChanged` for the orders stream (`order` as it is after the
/// change, `from` what it was).
pub fn status_changed(order: &Order, from: OrderStatus, at: DateTime<Utc>) -> NewOutboxMessage {
    NewOutboxMessage {
        topic: ORDERS_STREAM.to_owned(),
        payload: envelope(
            Event::OrderStatusChanged(pb::OrderStatusChanged {
                order_id: order.id.to_string(),
                org_id: order.org_id.as_str().to_owned(),
                from: from.as_str().to_owned(),
                to: order.status.as_str().to_owned(),
                nurse_id: order.nurse_id.map(|n| n.to_string()),
                eta_unix_ms: order.eta.map(|t| t.timestamp_millis()),
                at_unix_ms: at.timestamp_millis(),
            }),
            at,
        ),
    }
}

/// `OfferAnswered` for the offers stream (the dispatcher offers the next
/// nurse on a decline or a lapse).
pub fn offer_answered(
    offer_id: OfferId,
    order_id: Option<OrderId>,
    nurse: NurseId,
    answer: pb::offer_answered::Answer,
    reason: Option<String>,
    at: DateTime<Utc>,
) -> NewOutboxMessage {
    NewOutboxMessage {
        topic: OFFERS_STREAM.to_owned(),
        payload: envelope(
            Event::OfferAnswered(pb::OfferAnswered {
                offer_id: offer_id.to_string(),
                order_id: order_id.map(|o| o.to_string()).unwrap_or_default(),
                nurse_id: nurse.to_string(),
                answer: answer as i32,
                reason: reason.unwrap_or_default(),
                at_unix_ms: at.timestamp_millis(),
            }),
            at,
        ),
    }
}

/// `OfferMade` of an offer of `order`, for the offers stream (the same
/// payload goes to the nurse's phone and the coordinators' feed).
pub fn offer_made(offer: &Offer, order: &Order, details: &OfferDetails) -> NewOutboxMessage {
    NewOutboxMessage {
        topic: OFFERS_STREAM.to_owned(),
        payload: envelope(
            Event::OfferMade(pb::OfferMade {
                offer_id: offer.id.to_string(),
                order_id: offer.order_id.to_string(),
                nurse_id: offer.nurse_id.to_string(),
                expires_at_unix_ms: offer.expires_at.timestamp_millis(),
                eta_min: offer.eta_min,
                distance_m: offer.distance_m,
                area: coarse_area(order.location),
                service_code: order.service_code.clone(),
                service_name_zh: details.service_name_zh.clone(),
                service_name_en: details.service_name_en.clone(),
                place: details.place.clone(),
                flags: order.clinical.flags.clone(),
                free_at_unix_ms: offer.free_at.map(|t| t.timestamp_millis()),
            }),
            offer.created_at,
        ),
    }
}

/// `OfferClosed`: an offer is gone (lapsed, taken by someone else, or the
/// order was cancelled).
pub fn offer_closed(offer: &Offer, reason: OfferClosedReason, at: DateTime<Utc>) -> Vec<u8> {
    envelope(
        Event::OfferClosed(pb::OfferClosed {
            offer_id: offer.id.to_string(),
            nurse_id: offer.nurse_id.to_string(),
            reason: match reason {
                OfferClosedReason::Expired => pb::offer_closed::Reason::Expired,
                OfferClosedReason::Taken => pb::offer_closed::Reason::Taken,
                OfferClosedReason::Cancelled => pb::offer_closed::Reason::Cancelled,
            } as i32,
        }),
        at,
    )
}

/// The offer, pushed to its nurse's phone.
pub fn offer_to_nurse(offer: &Offer, order: &Order, details: &OfferDetails) -> Broadcast {
    Broadcast {
        channel: nurse_channel(offer.nurse_id),
        payload: offer_made(offer, order, details).payload,
    }
}

/// Tells the offer's nurse it is closed.
pub fn offer_closed_to_nurse(
    offer: &Offer,
    reason: OfferClosedReason,
    at: DateTime<Utc>,
) -> Broadcast {
    Broadcast {
        channel: nurse_channel(offer.nurse_id),
        payload: offer_closed(offer, reason, at),
    }
}

/// Who hears of a cancellation at once (the outbox relay repeats the
/// status event later, durably): the order's live feeds (the resident, and
/// an assigned nurse's socket, follow the order's channel), the
/// organisation's coordinators, and each nurse whose open offer was
/// withdrawn (`offer_closed` `cancelled`). Both cancel paths send these.
pub fn cancellation_broadcasts(
    order: &Order,
    status_event: &NewOutboxMessage,
    withdrawn: &[Offer],
    at: DateTime<Utc>,
) -> Vec<Broadcast> {
    let dispatch = dispatch_channel(order.org_id.as_str());
    let mut out = vec![
        Broadcast {
            channel: order_channel(order.id),
            payload: status_event.payload.clone(),
        },
        Broadcast {
            channel: dispatch.clone(),
            payload: status_event.payload.clone(),
        },
    ];
    for offer in withdrawn {
        let closed = offer_closed_to_nurse(offer, OfferClosedReason::Cancelled, at);
        out.push(Broadcast {
            channel: dispatch.clone(),
            payload: closed.payload.clone(),
        });
        out.push(closed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yixin_proto::decode_envelope;

    #[test]
    fn envelopes_carry_an_id_the_time_and_the_event() {
        let at = DateTime::from_timestamp_millis(1_740_000_000_000).unwrap();
        let bytes = envelope(
            Event::NurseShiftChanged(pb::NurseShiftChanged::default()),
            at,
        );
        let env = decode_envelope(&bytes).unwrap();
        assert_eq!(env.occurred_at_unix_ms, 1_740_000_000_000);
        assert!(uuid::Uuid::parse_str(&env.event_id).is_ok());
        assert_eq!(env.kind(), "nurse_shift_changed");
    }

    #[test]
    fn answers_go_to_the_offers_stream_and_say_which_order() {
        let order = OrderId::new();
        let msg = offer_answered(
            OfferId::new(),
            Some(order),
            NurseId::new(),
            pb::offer_answered::Answer::Declined,
            Some("太远了".into()),
            Utc::now(),
        );
        assert_eq!(msg.topic, OFFERS_STREAM);
        let Some(Event::OfferAnswered(e)) = decode_envelope(&msg.payload).unwrap().event else {
            panic!("not an answer");
        };
        assert_eq!(e.order_id, order.to_string());
        assert_eq!(e.reason, "太远了");
    }

    #[test]
    fn a_cancellation_reaches_the_order_the_coordinators_and_each_offered_nurse() {
        let order = Order::place(
            yixin_domain::NewOrder {
                org_id: yixin_domain::OrgId::from("demo"),
                resident_id: yixin_domain::ResidentId::from("r1"),
                service_code: "wound_care".into(),
                location: GeoPoint::new(29.39, 106.32).unwrap(),
                address: yixin_domain::Address::new("福城大道 1 号", None).unwrap(),
                contact: yixin_domain::Contact::new("王", "13812345678").unwrap(),
                notes: None,
                scheduled_for: None,
            },
            Utc::now(),
        );
        let offers: Vec<Offer> = (0..2)
            .map(|_| {
                Offer::new(
                    order.id,
                    NurseId::new(),
                    Utc::now(),
                    chrono::TimeDelta::seconds(30),
                    5,
                    900,
                )
            })
            .collect();
        let event = status_changed(&order, OrderStatus::Offered, Utc::now());
        let out = cancellation_broadcasts(&order, &event, &offers, Utc::now());
        let to = |ch: &str| out.iter().filter(|b| b.channel == ch).count();
        assert_eq!(to(&order_channel(order.id)), 1);
        // The status change and both closed offers.
        assert_eq!(to(&dispatch_channel("demo")), 3);
        for offer in &offers {
            let mine: Vec<_> = out
                .iter()
                .filter(|b| b.channel == nurse_channel(offer.nurse_id))
                .collect();
            assert_eq!(mine.len(), 1);
            let Some(Event::OfferClosed(e)) = decode_envelope(&mine[0].payload).unwrap().event
            else {
                panic!("not offer_closed");
            };
            assert_eq!(e.offer_id, offer.id.to_string());
            assert_eq!(e.reason, pb::offer_closed::Reason::Cancelled as i32);
        }
    }

    #[test]
    fn offer_details_name_the_service_and_the_area_not_the_address() {
        let org = yixin_domain::OrgId::from("demo");
        let order = Order::place(
            yixin_domain::NewOrder {
                org_id: org.clone(),
                resident_id: yixin_domain::ResidentId::from("r1"),
                service_code: "wound_care".into(),
                location: GeoPoint::new(29.39, 106.32).unwrap(),
                address: yixin_domain::Address::new("福城大道 1 号", None).unwrap(),
                contact: yixin_domain::Contact::new("王", "13812345678").unwrap(),
                notes: None,
                scheduled_for: None,
            },
            Utc::now(),
        );
        let catalog = Catalog::seed();
        let service = catalog.service("wound_care").unwrap();
        let area = ServiceArea::shuangfu_demo(org);
        assert!(area.contains(&order.location));
        let d = offer_details(&catalog, std::slice::from_ref(&area), &order);
        assert_eq!(d.service_name_zh, service.name_zh);
        assert_eq!(d.service_name_en, service.name_en);
        assert_eq!(d.place, area.name);
        // Another organisation's area is not named; no area: no place.
        let other = ServiceArea::shuangfu_demo(yixin_domain::OrgId::from("other"));
        assert_eq!(offer_details(&catalog, &[other], &order).place, "");
        let offer = Offer::new(
            order.id,
            NurseId::new(),
            Utc::now(),
            chrono::TimeDelta::seconds(30),
            5,
            900,
        );
        let made = offer_made(&offer, &order, &d);
        let Some(Event::OfferMade(e)) = decode_envelope(&made.payload).unwrap().event else {
            panic!("not offer_made");
        };
        assert_eq!(e.place, area.name);
        assert_eq!(e.service_name_zh, service.name_zh);
        assert!(!e.place.contains("福城大道"));
    }

    #[test]
    fn the_coarse_area_is_a_resolution_7_cell_not_the_point() {
        let area = coarse_area(GeoPoint::new(29.39, 106.32).unwrap());
        let cell: h3o::CellIndex = area.parse().unwrap();
        assert_eq!(cell.resolution(), h3o::Resolution::Seven);
    }
}
