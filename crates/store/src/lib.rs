//! The storage layer of Yixin: the system of record.
//!
//! Owns every durable row of the platform (organisations, the service
//! catalogue, service areas, nurses, orders and their timeline, offers,
//! idempotency keys, the transactional outbox and the location trail)
//! behind one concrete [`Store`] on sea-orm, on PostgreSQL in production and
//! SQLite in the embedded default and tests. The schema is the
//! `yixin-migration` crate; [`Store::migrate`] runs it and seeds the catalogue.
//!
//! The guarantees that must hold across instances live here, in the
//! database: an order changes status only from the status its caller saw
//! (conditional updates, `StaleState` otherwise), an order or a nurse has at
//! most one open offer, a nurse at most one active order, a change and the
//! event announcing it commit together (outbox), a retried create makes one
//! order (idempotency keys).
//!
//! Must not touch: business rules (the state machine, scoring, validation
//! live in `yixin-domain`; rows come back through its constructors, a bad
//! row is `StoreError::Corrupt`), Redis, HTTP, or the clock beyond
//! bookkeeping columns (`updated_at` of nurses and ratings).

pub mod entity;

mod agents;
mod bookings;
mod cancel;
mod catalog;
mod chain;
mod convert;
mod credentials;
mod demand;
mod dispatch;
mod error;
mod household;
mod leases;
mod offers;
mod orders;
mod outbox;
mod records;
mod roster;
mod safety;
mod signin;
mod store;
mod tracking;
mod types;
mod webhooks;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use crate::agents::{PatientHome, agent_owner};
pub use crate::bookings::{Booking, PlannedShift};
pub use crate::cancel::{CANCELLED_OFFER_REASON, Cancelled};
pub use crate::chain::CurrentVisit;
pub use crate::credentials::{AuditEntry, AuditQuery, AuditRecord, audit_action, is_verified};
pub use crate::demand::PastOrder;
pub use crate::dispatch::DayOrder;
pub use crate::error::StoreError;
pub use crate::household::{HouseholdMember, SavedAddress};
pub use crate::leases::RegionLease;
pub use crate::outbox::OutboxClaim;
pub use crate::safety::VisitCheck;
pub use crate::signin::StoredCode;
pub use crate::store::{PoolOptions, Store};
pub use crate::tracking::{ClaimLost, ClaimOutcome, NurseStanding};
pub use crate::types::{
    CreateOrderOutcome, IdempotencyRecord, LocationFix, NewOutboxMessage, OrderCursor,
    OrderTransition, OutboxMessage,
};
pub use crate::webhooks::{
    DueDelivery, NewWebhookEndpoint, NotificationTemplates, Replay, WebhookDelivery,
    WebhookEndpoint, WebhookEndpointChange,
};
pub use sea_orm::{ConnAcquireErr, DatabaseBackend, DatabaseConnection, DbErr};
