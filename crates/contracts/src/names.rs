//! Stream, group and channel names: the one place each is spelled.

use std::fmt::Display;

/// Work stream of order events: `OrderCreated` (from the outbox) and
/// `OrderStatusChanged`. The dispatchers consume it as [`DISPATCHER_GROUP`].
pub const ORDERS_STREAM: &str = "orders";
/// Work stream of offer events: `OfferMade` and `OfferAnswered` (a decline
/// or a lapse sends the order to the next nurse).
pub const OFFERS_STREAM: &str = "offers";
/// Stream of nurses' shift changes.
pub const NURSES_STREAM: &str = "nurses";
/// Consumer group of the dispatcher instances on the work streams.
pub const DISPATCHER_GROUP: &str = "dispatcher";

/// Pub/sub: batches of latest fixes (`NurseLocations`) and shift changes
/// (`NurseShiftChanged`), for every dispatcher's fleet and the dashboards.
pub const FLEET_CHANNEL: &str = "fleet";
/// Pub/sub: a roster change, the payload is the nurse's id (UTF-8).
pub const ROSTER_CHANNEL: &str = "roster";
/// Pub/sub: who holds an offer or a job, for every dispatcher instance
/// (the work streams' consumer group gives each instance only part of
/// them): the outbox relay repeats here each `OfferMade`, `OfferAnswered`
/// and `OrderStatusChanged` naming a nurse (protobuf `Envelope`s).
pub const ENGAGEMENT_CHANNEL: &str = "engagement";

/// Work stream of one dispatch region (sharded dispatch, `dispatch.regions`
/// set): the outbox relay publishes each `OrderCreated` here instead of to
/// [`ORDERS_STREAM`], and only the region's lease holder reads it (as
/// [`DISPATCHER_GROUP`]). `region` is the coarse H3 cell of
/// [`region_of`](crate::region_of). The `{r:<cell>}` part is a Redis
/// Cluster hash tag: the stream, its consumer group and its dead-letter
/// stream (`<stream>:dead`, which keeps the tag) hash to one slot.
pub fn region_orders_stream(region: &str) -> String {
    format!("{ORDERS_STREAM}:{{r:{region}}}")
}

/// Pub/sub: the organisation's events for the coordinators' live feed
/// (protobuf `Envelope`s: orders created and changed, offers).
pub fn dispatch_channel(org: &str) -> String {
    format!("dispatch:{org}")
}

/// Pub/sub: one order's changes, for the resident's live feed (the
/// payload is a protobuf `Envelope` or a bare wake-up).
pub fn order_channel(order: impl Display) -> String {
    format!("order:{order}")
}

/// Pub/sub: events for one nurse's phone, whichever instance holds its socket.
pub fn nurse_channel(nurse: impl Display) -> String {
    format!("nurse:{nurse}")
}

/// Pub/sub: a new connection of a nurse tells older ones to close.
pub fn connection_channel(nurse: impl Display) -> String {
    format!("nurse-conn:{nurse}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_distinct_per_kind() {
        let id = "0193b7a0-0000-7000-8000-000000000001";
        let names = [
            dispatch_channel(id),
            order_channel(id),
            nurse_channel(id),
            connection_channel(id),
        ];
        for (i, a) in names.iter().enumerate() {
            assert!(a.ends_with(id));
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(ORDERS_STREAM, OFFERS_STREAM);
        assert_eq!(
            region_orders_stream("8440a6dffffffff"),
            "orders:{r:8440a6dffffffff}"
        );
        assert_ne!(FLEET_CHANNEL, ROSTER_CHANNEL);
        assert_ne!(ENGAGEMENT_CHANNEL, FLEET_CHANNEL);
        assert_ne!(ENGAGEMENT_CHANNEL, ROSTER_CHANNEL);
    }
}
