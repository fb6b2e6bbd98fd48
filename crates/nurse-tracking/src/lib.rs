//! nurse-tracking: the nurse's phone connection (WebSocket and its HTTP
//! equivalents), position ingest and presence, offers pushed to phones and
//! the nurse's answers and visit steps.
//!
//! Owns the `/v1/nurse` routes. Never shows an address before a nurse has
//! won the job. The WebSocket, the position index and the offer flow are the
//! nurse-tracking issue's work; this crate so far only knows how to mount
//! itself.

use std::sync::Arc;

use yixin_platform::Mount;
use yixin_store::Store;

/// What the service needs, built once by the binary.
#[derive(Clone)]
pub struct NurseTracking {
    pub store: Store,
}

impl NurseTracking {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The routes and app data of this service (none yet).
    pub fn mount(self) -> Mount {
        let data = actix_web::web::Data::new(self);
        Arc::new(move |cfg| {
            cfg.app_data(data.clone());
        })
    }
}
