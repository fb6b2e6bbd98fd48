//! The work streams: `orders` (`OrderCreated`) and `offers` (a decline or
//! a lapse → the next candidate), read through the consumer group
//! [`DISPATCHER_GROUP`] so several instances share them; and the database
//! rediscovery of orders that still wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use yixin_contracts::{DISPATCHER_GROUP, Envelope, Event, Message, pb};
use yixin_domain::{NurseId, OrderId, OrderStatus};

use super::Engine;

impl Engine {
    pub(super) async fn consume(
        self: Arc<Self>,
        stream: &'static str,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            match self.queue.ensure_group(stream, DISPATCHER_GROUP).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "consumer group not ready; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
        let mut last_reclaim = Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let read = tokio::select! {
                r = self.queue.read(stream, DISPATCHER_GROUP, &self.consumer, 128, Duration::from_millis(500)) => r,
                _ = shutdown.changed() => return,
            };
            let mut deliveries = match read {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "reading work failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
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
                    Err(e) => tracing::warn!(stream, error = %e, "reclaim failed"),
                }
            }
            if deliveries.is_empty() {
                continue;
            }
            let mut work = Vec::new();
            for d in &deliveries {
                let Some(event) = event_of(&d.payload) else {
                    continue;
                };
                self.note_engagement(&event);
                if let Some(order) = work_in(&event) {
                    work.push(order);
                }
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
    }

    /// Keeps this instance's fleet knowing who holds an offer or a job, from
    /// the work streams, so candidates skip engaged nurses without asking
    /// the database. Only a hint: with several instances each sees part of
    /// the stream, so the database still has the last word (engaged nurses
    /// are dropped after the read, and the offer itself is conditional).
    fn note_engagement(&self, event: &Event) {
        let fleet = || self.fleet.write().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::OfferAnswered(e) => {
                if let Ok(nurse) = e.nurse_id.parse().map(NurseId) {
                    fleet().set_offer(nurse, None);
                }
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
                    return;
                };
                let mut fleet = fleet();
                if to.has_nurse() {
                    fleet.set_job(nurse, Some((order, to)));
                } else if fleet
                    .get(&nurse)
                    .and_then(|n| n.job)
                    .is_some_and(|(held, _)| held == order)
                {
                    fleet.set_job(nurse, None);
                }
            }
            _ => {}
        }
    }

    /// Orders the database says still need a nurse (at start and every 30 s).
    pub(super) async fn rediscover(&self) {
        match self
            .store
            .orders_with_status(&OrderStatus::NEEDS_NURSE, 5_000)
            .await
        {
            Ok(orders) => {
                let now = Utc::now();
                self.decide(|d| {
                    for o in &orders {
                        d.order_waiting(o.id, now);
                    }
                });
                self.wake.notify_one();
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
fn work_in(event: &Event) -> Option<OrderId> {
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
