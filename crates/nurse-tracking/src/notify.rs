//! Messages to a nurse's phone, whichever instance holds its socket: they go
//! through pub/sub (`nurse:{id}`), carrying protobuf envelopes (`proto/`).
//! The dispatcher uses these to push offers and close them.

use chrono::{DateTime, Utc};
use yixin_domain::{GeoPoint, NurseId, Offer, OfferClosedReason, Order};
use yixin_proto::events::v1 as pb;
use yixin_proto::{Envelope, Event, Message};
use yixin_queue::{Queue, QueueError};

/// The fleet feed: batches of latest fixes (`NurseLocations`) and shift
/// changes (`NurseShiftChanged`), for every dispatcher's candidate index.
pub const FLEET_CHANNEL: &str = "fleet";

/// The channel carrying events for one nurse's phone.
pub fn nurse_channel(id: impl std::fmt::Display) -> String {
    format!("nurse:{id}")
}

/// The channel on which a new connection tells older ones to close.
pub fn connection_channel(id: impl std::fmt::Display) -> String {
    format!("nurse-conn:{id}")
}

/// The coarse area shown with an offer: the resolution-7 H3 cell (about
/// 5 km²) around the order, never the address.
pub fn coarse_area(point: GeoPoint) -> String {
    h3o::LatLng::new(point.lat(), point.lng())
        .map(|ll| ll.to_cell(h3o::Resolution::Seven).to_string())
        .unwrap_or_default()
}

pub(crate) fn envelope(event: Event, at: DateTime<Utc>) -> Vec<u8> {
    Envelope::wrap(
        uuid::Uuid::now_v7().to_string(),
        at.timestamp_millis(),
        event,
    )
    .encode_to_vec()
}

/// The `OfferMade` event of an offer of `order`.
pub fn offer_made(offer: &Offer, order: &Order) -> Vec<u8> {
    envelope(
        Event::OfferMade(pb::OfferMade {
            offer_id: offer.id.to_string(),
            order_id: offer.order_id.to_string(),
            nurse_id: offer.nurse_id.to_string(),
            expires_at_unix_ms: offer.expires_at.timestamp_millis(),
            eta_min: offer.eta_min,
            distance_m: offer.distance_m,
            area: coarse_area(order.location),
            service_code: order.service_code.clone(),
        }),
        offer.created_at,
    )
}

/// The `OfferClosed` event telling a nurse an offer is gone.
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

/// Pushes an offer to its nurse's phone.
pub async fn push_offer(queue: &dyn Queue, offer: &Offer, order: &Order) -> Result<(), QueueError> {
    queue
        .broadcast(&nurse_channel(offer.nurse_id), &offer_made(offer, order))
        .await
}

/// Tells the nurse's phone the offer is closed.
pub async fn push_offer_closed(
    queue: &dyn Queue,
    offer: &Offer,
    reason: OfferClosedReason,
) -> Result<(), QueueError> {
    queue
        .broadcast(
            &nurse_channel(offer.nurse_id),
            &offer_closed(offer, reason, Utc::now()),
        )
        .await
}

/// Tells a nurse's phone about a change of their job made elsewhere (e.g.
/// a coordinator's manual assignment: the phone then gets `assigned`).
pub async fn push_job_change(
    queue: &dyn Queue,
    nurse: NurseId,
    event: &[u8],
) -> Result<(), QueueError> {
    queue.broadcast(&nurse_channel(nurse), event).await
}

/// Whether an event on a nurse's channel is for `nurse`.
pub(crate) fn for_nurse(event: &Event, nurse: NurseId) -> bool {
    let id = nurse.to_string();
    match event {
        Event::OfferMade(e) => e.nurse_id == id,
        Event::OfferClosed(e) => e.nurse_id == id,
        Event::OrderStatusChanged(e) => e.nurse_id.as_deref() == Some(id.as_str()),
        _ => false,
    }
}
