//! dispatcher: finds a qualified nurse for every order (candidates, ETA,
//! greedy and batch matching, offers, escalation) and serves the
//! coordinator API.
//!
//! Owns the `/v1/dispatch` routes and the order-dispatch consumer group.
//! Claims orders only through the store's conditional updates, so several
//! instances never double-book a nurse. The matching itself is the
//! dispatcher issue's work; this crate so far only knows how to mount
//! itself.

use std::sync::Arc;

use yixin_platform::Mount;
use yixin_store::Store;

/// What the service needs, built once by the binary.
#[derive(Clone)]
pub struct Dispatcher {
    pub store: Store,
}

impl Dispatcher {
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
