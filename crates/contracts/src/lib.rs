//! The contracts between Yixin's services: every Redis stream, consumer
//! group and pub/sub channel name, the event envelope and every event
//! builder, defined once.
//!
//! Services talk through these and the adapters (store, queue), never
//! through each other: the dispatcher does not import nurse-tracking to
//! learn a channel name, and an `OrderStatusChanged` is built in one place.
//!
//! Owns names and payload shapes only. Must not touch: I/O (no queue, no
//! database, no async runtime) and business rules (those are `domain`'s).
//! The wire format itself (the protobuf messages) is `yixin-proto`,
//! re-exported here as [`pb`].

pub mod events;
pub mod names;
pub mod regions;
pub mod reposition;
pub mod safety;
pub mod webhooks;

pub use events::{
    Broadcast, NewOutboxMessage, OfferDetails, cancellation_broadcasts, coarse_area, envelope,
    is_engagement, offer_answered, offer_closed, offer_closed_to_nurse, offer_details, offer_made,
    offer_to_nurse, order_created, status_changed,
};
pub use names::*;
pub use regions::{REGION_RESOLUTIONS, is_region, region_of};
pub use yixin_proto::events::v1 as pb;
pub use yixin_proto::{DecodeError, Envelope, Event, Message, decode_envelope};
