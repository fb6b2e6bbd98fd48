//! Offers whose push to the phone failed (Redis away or not answering):
//! pushed again until one gets through, the offer closes or it lapses.
//!
//! The offer itself is already in the database, and a phone that connects
//! (or a nurse-tracking instance that resubscribes after an outage) reads it
//! from there. But a push that failed *after* nurse-tracking resubscribed —
//! the dispatcher's own Redis connection still reconnecting while pub/sub
//! is back — reaches nobody else: the nurse would only hear of the job when
//! it lapsed and went to the next nurse, 30 s later.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use yixin_contracts::Broadcast;
use yixin_domain::{OfferId, OfferStatus, OrderId};

use super::Engine;

/// One offer not yet pushed.
#[derive(Debug, Clone)]
pub(super) struct Unpushed {
    pub offer: OfferId,
    pub order: OrderId,
    pub expires_at: DateTime<Utc>,
    pub push: Broadcast,
}

/// The offers waiting for their push, oldest first.
#[derive(Debug, Default)]
pub(super) struct UnpushedOffers(Mutex<Vec<Unpushed>>);

impl UnpushedOffers {
    pub fn add(&self, unpushed: Unpushed) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(unpushed);
    }

    /// Takes those still live at `now` (the lapsed ones are dropped: the
    /// expiry loop closes them and the order moves on).
    fn take_live(&self, now: DateTime<Utc>) -> Vec<Unpushed> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *all)
            .into_iter()
            .filter(|u| u.expires_at > now)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Engine {
    /// Pushes again every offer whose push failed and that is still open.
    /// A push that reaches no socket counts as delivered: the phone reads
    /// its offer on (re)connecting.
    pub(super) async fn push_again(&self) {
        let pending = self.unpushed.take_live(Utc::now());
        let mut failed = Vec::new();
        for (i, u) in pending.iter().enumerate() {
            // Answered, taken or closed meanwhile: nothing to show her.
            match self.store.offers_for_order(u.order).await {
                Ok(offers) => {
                    if !offers
                        .iter()
                        .any(|o| o.id == u.offer && o.status == OfferStatus::Open)
                    {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::debug!(offer_id = %u.offer, error = %e, "offer not re-read; pushed again later");
                    failed.extend(pending[i..].iter().cloned());
                    break;
                }
            }
            match self
                .queue
                .broadcast_counted(&u.push.channel, &u.push.payload)
                .await
            {
                Ok(_) => {
                    metrics::counter!("dispatch_offers_pushed_again_total").increment(1);
                    tracing::info!(offer_id = %u.offer, order_id = %u.order, "offer pushed after an earlier push failed");
                }
                Err(e) => {
                    tracing::debug!(offer_id = %u.offer, error = %e, "offer still not pushed");
                    // Redis still away: the rest would fail the same way.
                    failed.extend(pending[i..].iter().cloned());
                    break;
                }
            }
        }
        for u in failed {
            self.unpushed.add(u);
        }
        metrics::gauge!("dispatch_offers_unpushed").set(self.unpushed.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn unpushed(expires_at: DateTime<Utc>) -> Unpushed {
        Unpushed {
            offer: OfferId::new(),
            order: OrderId::new(),
            expires_at,
            push: Broadcast {
                channel: "nurse:x".into(),
                payload: vec![1],
            },
        }
    }

    #[test]
    fn lapsed_offers_are_not_pushed_again() {
        let now = Utc::now();
        let list = UnpushedOffers::default();
        let live = unpushed(now + TimeDelta::seconds(10));
        list.add(unpushed(now - TimeDelta::seconds(1)));
        list.add(live.clone());
        let taken = list.take_live(now);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].offer, live.offer);
        assert_eq!(list.len(), 0, "taken off the list until put back");
    }
}
