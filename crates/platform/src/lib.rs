//! The HTTP platform every service runs on: typed configuration, telemetry,
//! the one error type and its JSON body, health/readiness/metrics/OpenAPI
//! endpoints, request limits, graceful shutdown and the one WebSocket
//! driver ([`ws`]).
//!
//! It knows nothing of orders or nurses: services mount themselves on it.
//! Only the views several services show alike ([`views`]) live here, so the
//! document has one schema of each.

pub mod config;
pub mod error;

pub use config::Settings;
pub use error::{ApiError, ErrorBody};
pub mod extract;
pub mod http;
pub mod limiter;
pub mod request_id;
pub mod telemetry;
pub mod views;
pub mod web;
pub mod workers;
pub mod ws;

pub use extract::{JsonBody, OptionalJsonBody};
pub use http::{Mount, Readiness, ReadinessCheck};
pub use workers::{WorkerHandle, Workers};
pub use ws::{WsHandler, WsLimits, WsResult, WsStop};
