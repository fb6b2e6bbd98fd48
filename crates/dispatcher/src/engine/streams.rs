//! The work streams: `orders` (`OrderCreated`) and `offers` (a decline or
//! a lapse → the next candidate), read through the consumer group
//! [`DISPATCHER_GROUP`] so several instances share them; and the database
//! rediscovery of orders that still wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use yixin_contracts::{DISPATCHER_GROUP, Envelope, Event, Message, pb};
use yixin_domain::{NurseId, OfferId, OrderId, OrderStatus};
use yixin_platform::WorkerHandle;
use yixin_queue::{Backoff, Delivery, QueueError};

use super::Engine;

impl Engine {
    /// Reads one work stream for as long as the engine runs: a failed read
    /// (Redis away) is retried with the reconnect back-off, forever; a
    /// consumer group that vanished (Redis restarted without its data) is
    /// created again; and after any such gap the database is asked which
    /// orders wait, since entries may have been lost with it.
    pub(super) async fn consume(
        self: Arc<Self>,
        stream: &'static str,
        health: WorkerHandle,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::reconnect();
        let mut group_ready = false;
        // Something may have been missed: re-read the waiting orders once
        // reading works again.
        let mut gap = false;
        let mut last_reclaim = Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if !group_ready {
                match self.queue.ensure_group(stream, DISPATCHER_GROUP).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        health.down(format!("reconnecting: {e}"));
                        gap = true;
                        let delay = backoff.next_delay();
                        tracing::warn!(stream, error = %e, retry_in = ?delay, "consumer group not ready; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return,
                        }
                        continue;
                    }
                }
            }
            let read = tokio::select! {
                r = self.queue.read(stream, DISPATCHER_GROUP, &self.consumer, 128, Duration::from_millis(500)) => r,
                _ = shutdown.changed() => return,
            };
            let mut deliveries = match read {
                Ok(d) => d,
                Err(QueueError::NoGroup { .. }) => {
                    tracing::warn!(
                        stream,
                        group = DISPATCHER_GROUP,
                        "consumer group vanished (Redis lost its data?); creating it again"
                    );
                    metrics::counter!("dispatch_groups_recreated_total", "stream" => stream)
                        .increment(1);
                    group_ready = false;
                    gap = true;
                    continue;
                }
                Err(e) => {
                    health.down(format!("reconnecting: {e}"));
                    gap = true;
                    let delay = backoff.next_delay();
                    tracing::warn!(stream, error = %e, retry_in = ?delay, "reading work failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            };
            if gap {
                gap = false;
                backoff.reset();
                health.up();
                tracing::info!(
                    stream,
                    "work stream readable again; re-reading waiting orders"
                );
                self.rediscover().await;
            }
            // Entries a dead instance read and never acknowledged.
            if last_reclaim.elapsed() > Duration::from_secs(10) {
                last_reclaim = Instant::now();
                match self
                    .queue
                    .reclaim(
                        stream,
                        DISPATCHER_GROUP,
                        &self.consumer,
                        Duration::from_secs(30),
                        128,
                    )
                    .await
                {
                    Ok(r) => deliveries.extend(r.deliveries),
                    Err(QueueError::NoGroup { .. }) => group_ready = false,
                    Err(e) => tracing::warn!(stream, error = %e, "reclaim failed"),
                }
            }
            self.take_deliveries(stream, deliveries).await;
        }
    }

    /// Takes a batch of work-stream entries: engagement noted, the orders
    /// they ask for queued, then acknowledged.
    pub(super) async fn take_deliveries(&self, stream: &str, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut work = Vec::new();
        let mut freed = false;
        for d in &deliveries {
            let Some(event) = event_of(&d.payload) else {
                continue;
            };
            freed |= self.note_engagement(&event);
            if let Some(order) = work_in(&event) {
                work.push(order);
            }
        }
        if freed {
            self.nurse_freed();
        }
        if !work.is_empty() {
            let now = Utc::now();
            self.decide(|d| {
                for order in work {
                    d.order_waiting(order, now);
                }
            });
            self.wake.notify_one();
        }
        let ids: Vec<_> = deliveries.into_iter().map(|d| d.id).collect();
        // Acknowledged once queued here: the database rediscovery
        // covers an instance dying before it dispatched them.
        if let Err(e) = self.queue.ack(stream, DISPATCHER_GROUP, &ids).await {
            tracing::warn!(stream, error = %e, "ack failed; entries will be redelivered");
        }
    }

    /// Keeps this instance's fleet knowing who holds an offer or a job, from
    /// the engagement channel (every instance hears every change) and the
    /// work streams, so candidates skip engaged nurses without asking the
    /// database. Only a hint: the database has the last word (engaged
    /// nurses are dropped after the read, the offer itself is conditional,
    /// and [`Self::resync_engagement`] clears hints the database denies).
    /// Returns whether a nurse came free (an offer declined or lapsed, a
    /// job ended): the orders waiting may have a candidate now.
    pub(super) fn note_engagement(&self, event: &Event) -> bool {
        let fleet = || self.fleet.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::OfferMade(e) => {
                if let (Ok(nurse), Ok(offer)) = (
                    e.nurse_id.parse().map(NurseId),
                    e.offer_id.parse().map(OfferId),
                ) && let Some(expires) = DateTime::from_timestamp_millis(e.expires_at_unix_ms)
                {
                    fleet().set_offer(nurse, Some((offer, expires)));
                }
                false
            }
            Event::OfferAnswered(e) => {
                let Ok(nurse) = e.nurse_id.parse().map(NurseId) else {
                    return false;
                };
                let mut fleet = fleet();
                // Only the offer it answers: a newer offer stays.
                let held = fleet.get(&nurse).and_then(|n| n.offer);
                if held.is_none_or(|(id, _)| id.to_string() == e.offer_id) {
                    fleet.set_offer(nurse, None);
                }
                e.answer != pb::offer_answered::Answer::Accepted as i32
            }
            Event::OrderStatusChanged(e) => {
                let (Some(nurse), Ok(order), Ok(to)) = (
                    e.nurse_id
                        .as_deref()
                        .and_then(|n| n.parse().ok())
                        .map(NurseId),
                    e.order_id.parse().map(OrderId),
                    e.to.parse::<OrderStatus>(),
                ) else {
                    return false;
                };
                let mut fleet = fleet();
                if to.has_nurse() {
                    fleet.set_job(nurse, Some((order, to)));
                    false
                } else if fleet
                    .get(&nurse)
                    .and_then(|n| n.job)
                    .is_some_and(|(held, _)| held == order)
                {
                    fleet.set_job(nurse, None);
                    true
                } else {
                    // Not known busy here, but her job ended all the same.
                    to.is_terminal() || to.is_dispatchable()
                }
            }
            _ => false,
        }
    }

    /// A nurse came free: every waiting order is due now, not after its
    /// retry back-off.
    pub(super) fn nurse_freed(&self) {
        metrics::counter!("dispatch_wakeups_total").increment(1);
        self.decide(|d| d.nurse_available(Utc::now()));
        self.wake.notify_one();
    }

    /// Asks the database about every nurse this instance believes holds an
    /// offer or a job, and forgets the beliefs it denies (an event this
    /// instance never heard: a lost broadcast, a pub/sub outage). Run every
    /// few seconds and after each reconnect.
    pub(super) async fn resync_engagement(&self) {
        let believed: Vec<NurseId> = {
            let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
            fleet.engaged_hints()
        };
        if believed.is_empty() {
            return;
        }
        let mut freed = 0usize;
        for chunk in believed.chunks(1_000) {
            let engaged = match self.store.engaged_nurses(chunk).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "engagement not re-read");
                    return;
                }
            };
            let mut fleet = self.fleet.write().unwrap_or_else(|p| p.into_inner());
            for id in chunk.iter().filter(|id| !engaged.contains(id)) {
                fleet.set_offer(*id, None);
                fleet.set_job(*id, None);
                freed += 1;
            }
        }
        if freed > 0 {
            metrics::counter!("dispatch_stale_engagement_cleared_total").increment(freed as u64);
            tracing::debug!(freed, "stale engagement hints cleared");
            self.nurse_freed();
        }
    }

    /// Orders the database says still need a nurse (at start, every 30 s,
    /// and after taking a region).
    pub(super) async fn rediscover(&self) {
        match self
            .store
            .orders_with_status(&OrderStatus::NEEDS_NURSE, 5_000)
            .await
        {
            Ok(orders) => {
                let now = Utc::now();
                // Sharded: only the regions served here (the others' holders
                // read them), and regions nobody knows yet made known.
                self.decide(|d| {
                    for o in orders.iter().filter(|o| self.serves(o.location)) {
                        d.order_waiting(o.id, now);
                    }
                });
                self.wake.notify_one();
                for region in self.unserved_regions(orders.iter().map(|o| o.location)) {
                    if let Err(e) = self.store.register_region(&region).await {
                        tracing::warn!(region, error = %e, "region not registered");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "waiting orders not read"),
        }
    }
}

/// The event of a work-stream entry, decoded once for every use of it.
fn event_of(payload: &[u8]) -> Option<Event> {
    Envelope::decode(payload).ok()?.event
}

/// The order a work-stream event asks us to (re)dispatch, if any.
pub(super) fn work_in(event: &Event) -> Option<OrderId> {
    let id = match event {
        Event::OrderCreated(e) => &e.order_id,
        Event::OfferAnswered(e)
            if e.answer == pb::offer_answered::Answer::Declined as i32
                || e.answer == pb::offer_answered::Answer::Expired as i32 =>
        {
            &e.order_id
        }
        // Back to waiting: e.g. a coordinator unassigned it.
        Event::OrderStatusChanged(e) if e.to == OrderStatus::Pending.as_str() => &e.order_id,
        _ => return None,
    };
    id.parse().map(OrderId).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work_of(payload: &[u8]) -> Option<OrderId> {
        event_of(payload).as_ref().and_then(work_in)
    }

    #[test]
    fn work_comes_from_created_orders_and_declined_or_lapsed_offers() {
        let order = OrderId::new();
        let wrap = |event| Envelope::wrap("e", 0, event).encode_to_vec();
        let created = wrap(Event::OrderCreated(pb::OrderCreated {
            order_id: order.to_string(),
            ..Default::default()
        }));
        assert_eq!(work_of(&created), Some(order));
        let declined = wrap(Event::OfferAnswered(pb::OfferAnswered {
            order_id: order.to_string(),
            answer: pb::offer_answered::Answer::Declined as i32,
            ..Default::default()
        }));
        assert_eq!(work_of(&declined), Some(order));
        let accepted = wrap(Event::OfferAnswered(pb::OfferAnswered {
            order_id: order.to_string(),
            answer: pb::offer_answered::Answer::Accepted as i32,
            ..Default::default()
        }));
        assert_eq!(work_of(&accepted), None);
        assert_eq!(work_of(b"garbage"), None);
    }
}
