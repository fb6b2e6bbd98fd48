//! Lapsed offers: expired by whichever instance sees them first (a
//! conditional update), and the order goes to the next nurse. Also ages the
//! fleet (fixes go stale, lapsed offer hints are forgotten).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use yixin_contracts::{dispatch_channel, offer_answered, offer_closed_to_nurse, pb};
use yixin_dispatch_core::Command;
use yixin_domain::{Offer, OfferClosedReason, OfferStatus};
use yixin_store::{NewOutboxMessage, StoreError};

use super::Engine;

impl Engine {
    pub(super) async fn expiry_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
            self.push_again().await;
            if last_sweep.elapsed() >= Duration::from_secs(5) {
                // Fixes age into staleness here too (the feed only brings
                // new ones), and lapsed offer hints are forgotten; hints of
                // engagement the database denies are dropped.
                last_sweep = Instant::now();
                self.fleet
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .sweep(Utc::now());
                self.resync_engagement().await;
            }
            let now = Utc::now();
            let lapsed = match self.store.lapsed_offers(now, 200).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "lapsed offers not read");
                    continue;
                }
            };
            let expire = self.decide(|d| d.expire(&lapsed, now));
            for command in expire {
                let Command::Expire { offer, .. } = command else {
                    continue;
                };
                if let Some(offer) = lapsed.iter().find(|o| o.id == offer) {
                    self.expire(offer).await;
                }
            }
        }
    }

    /// Closes one lapsed offer; its order waits again.
    async fn expire(&self, offer: &Offer) {
        let now = Utc::now();
        let answered = expired_event(offer, now);
        match self
            .store
            .close_offer(offer.id, OfferStatus::Expired, now, None, vec![answered])
            .await
        {
            Ok(closed) => {
                let push = offer_closed_to_nurse(&closed, OfferClosedReason::Expired, now);
                let _ = yixin_queue::send(self.queue.as_ref(), &push).await;
                self.fleet
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_offer(closed.nurse_id, None);
                self.decide(|d| d.order_waiting(closed.order_id, Utc::now()));
                // She is free again: the orders waiting may go to her now.
                self.nurse_freed();
                if let Ok(Some(order)) = self.store.get_order(closed.order_id).await {
                    let event = expired_event(&closed, now);
                    let _ = self
                        .queue
                        .broadcast(&dispatch_channel(order.org_id.as_str()), &event.payload)
                        .await;
                }
            }
            // Answered or expired by someone else meanwhile.
            Err(StoreError::StaleState { .. }) => {}
            Err(e) => tracing::warn!(offer_id = %offer.id, error = %e, "offer not expired"),
        }
    }
}

/// `OfferAnswered` for a lapsed offer.
fn expired_event(offer: &Offer, at: DateTime<Utc>) -> NewOutboxMessage {
    offer_answered(
        offer.id,
        Some(offer.order_id),
        offer.nurse_id,
        pb::offer_answered::Answer::Expired,
        None,
        at,
    )
}
