//! The domain core of Yixin, home-care nursing dispatch.
//!
//! Owns the vocabulary and the rules every service shares: identifiers,
//! validated values (positions, phone numbers, skills, ratings, service-area
//! polygons), the service catalogue and its seed data, the order state
//! machine and the 30-minute promise, nurses, and offers with their deadlines.
//! Every rule lives in a constructor or a method here, so an invalid value
//! cannot be built and every service applies the same rules.
//!
//! Must not touch: I/O of any kind: no database, Redis, HTTP, async runtime,
//! clock or environment. Callers pass `now` in; ids are the only thing made
//! here from ambient state (UUIDv7). Keep tokio, sea-orm, redis and actix out
//! of this crate's dependencies.
//!
//! Errors are one [`DomainError`], with a stable `code()` and the `field()` to blame.

pub mod agent;
pub mod area;
pub mod catalog;
pub mod clinical;
pub mod credentials;
pub mod error;
pub mod geo;
pub mod ids;
pub mod local_time;
pub mod nurse;
pub mod offer;
pub mod order;
pub mod phone;
pub mod safety;
pub mod webhooks;

pub use crate::agent::{Agent, AgentKind};
pub use crate::area::{GeoJsonPolygon, SHUANGFU_DEMO_AREA_ID, ServiceArea};
pub use crate::catalog::{Catalog, Category, Service, Skill};
pub use crate::clinical::{
    Admission, ConsentText, FieldType, IntakeQuestion, OnBehalfOf, OrderClinical, RecordField,
    ServiceClinical, VisitRecord,
};
pub use crate::credentials::{
    Certificate, Credentials, CredentialsInput, Requirements, Title, Verification,
};
pub use crate::error::DomainError;
pub use crate::geo::GeoPoint;
pub use crate::ids::{AlarmId, AreaId, NurseId, OfferId, OrderId, OrgId, ResidentId};
pub use crate::local_time::OrgTimeZone;
pub use crate::nurse::{Nurse, ShiftState, external_id};
pub use crate::offer::{DEFAULT_OFFER_TTL_SECS, Offer, OfferClosedReason, OfferStatus};
pub use crate::order::{
    Address, Contact, MAX_BOOKING_AHEAD_DAYS, NewOrder, Order, OrderStatus, PROMISE_MINUTES,
    Rating, TimelineEvent, check_booking_time, is_booking,
};
pub use crate::phone::PhoneNumber;
