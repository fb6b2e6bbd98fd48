//! Background work of nurse-tracking: writes coalesced latest positions to
//! the shared board (Redis) a few times a second, the sampled trail to the
//! bounded stream and, in batches, to the database (proof of visit); tells
//! the resident where an en-route nurse is; ages presence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use yixin_contracts::Event;
use yixin_contracts::pb;
use yixin_domain::{NurseId, OrderStatus};
use yixin_store::LocationFix;

use crate::service::{Pending, Tracker};
use yixin_contracts::{FLEET_CHANNEL, envelope, order_channel};

/// The trail buffer never holds more than this; past it the oldest rows are
/// dropped (and counted) rather than growing without bound while the
/// database is away.
const TRAIL_BUFFER_MAX: usize = 200_000;
/// How often the buffered trail goes to the database.
const TRAIL_WRITE_EVERY: Duration = Duration::from_secs(1);
/// How often presence is aged.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A resident's live feed gets an en-route nurse's position at most this often.
const LIVE_POSITION_EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn run(tracker: Arc<Tracker>, mut shutdown: watch::Receiver<bool>) {
    let flush_every = Duration::from_millis(tracker.settings.flush_interval_ms.max(10));
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trail_buffer: Vec<LocationFix> = Vec::new();
    let mut last_trail_write = Instant::now();
    let mut last_sweep = Instant::now();
    let mut live_sent: HashMap<NurseId, Instant> = HashMap::new();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            changed = shutdown.changed() => changed.is_err() || *shutdown.borrow(),
        };
        flush(&tracker, &mut trail_buffer, &mut live_sent).await;
        if stopping
            || last_trail_write.elapsed() >= TRAIL_WRITE_EVERY
            || trail_buffer.len() >= 1_000
        {
            write_trail(&tracker, &mut trail_buffer).await;
            last_trail_write = Instant::now();
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            let swept = tracker.fleet_write().sweep(Utc::now());
            if !swept.stale.is_empty() || !swept.gone.is_empty() {
                tracing::debug!(
                    stale = swept.stale.len(),
                    gone = swept.gone.len(),
                    "presence aged"
                );
            }
            live_sent.retain(|_, t| t.elapsed() < LIVE_POSITION_EVERY * 10);
            last_sweep = Instant::now();
        }
        if stopping {
            break;
        }
    }
    tracing::debug!("nurse-tracking writer stopped");
}

async fn flush(
    tracker: &Tracker,
    trail_buffer: &mut Vec<LocationFix>,
    live_sent: &mut HashMap<NurseId, Instant>,
) {
    let batch = std::mem::take(&mut *tracker.pending.lock().unwrap_or_else(|p| p.into_inner()));
    let Pending { latest, trail } = batch;
    if latest.is_empty() && trail.is_empty() {
        return;
    }
    let records: Vec<_> = latest.values().cloned().collect();
    let (trail_records, trail_rows): (Vec<_>, Vec<_>) = trail.into_iter().unzip();
    if let Err(e) = tracker.positions.record(&records, &trail_records).await {
        // Latest positions are state, not history: the next fix rewrites them.
        tracing::warn!(error = %e, nurses = records.len(), "latest positions not shared this round");
        metrics::counter!("nurse_position_flush_failures_total").increment(1);
    }
    // The fleet feed: every dispatcher instance keeps its candidate index
    // from it, whichever instance holds the phones.
    let feed = envelope(
        Event::NurseLocations(pb::NurseLocations {
            fixes: records
                .iter()
                .map(|r| pb::NurseLocation {
                    nurse_id: r.nurse_id.clone(),
                    org_id: r.org_id.clone(),
                    lat: r.lat,
                    lng: r.lng,
                    accuracy_m: r.accuracy_m,
                    recorded_at_unix_ms: r.recorded_at_unix_ms,
                    order_id: None,
                    eta_unix_ms: None,
                })
                .collect(),
        }),
        Utc::now(),
    );
    if let Err(e) = tracker.queue.broadcast(FLEET_CHANNEL, &feed).await {
        tracing::debug!(error = %e, "fleet feed not sent this round");
    }
    trail_buffer.extend(trail_rows);
    if trail_buffer.len() > TRAIL_BUFFER_MAX {
        let excess = trail_buffer.len() - TRAIL_BUFFER_MAX;
        trail_buffer.drain(..excess);
        metrics::counter!("nurse_trail_dropped_total").increment(excess as u64);
        tracing::warn!(dropped = excess, "trail buffer full: oldest fixes dropped");
    }
    // En-route nurses: the resident's live feed.
    let en_route: Vec<_> = {
        let fleet = tracker.fleet_read();
        latest
            .iter()
            .filter_map(|(id, rec)| {
                let (order, status) = fleet.get(id)?.job?;
                (status == OrderStatus::EnRoute).then(|| (*id, order, rec.clone()))
            })
            .collect()
    };
    for (nurse, order, rec) in en_route {
        if live_sent
            .get(&nurse)
            .is_some_and(|t| t.elapsed() < LIVE_POSITION_EVERY)
        {
            continue;
        }
        live_sent.insert(nurse, Instant::now());
        let now = Utc::now();
        let event = envelope(
            Event::NurseLocation(pb::NurseLocation {
                nurse_id: rec.nurse_id,
                org_id: rec.org_id,
                lat: rec.lat,
                lng: rec.lng,
                accuracy_m: rec.accuracy_m,
                recorded_at_unix_ms: rec.recorded_at_unix_ms,
                order_id: Some(order.to_string()),
                eta_unix_ms: None,
            }),
            now,
        );
        if let Err(e) = tracker.queue.broadcast(&order_channel(order), &event).await {
            tracing::debug!(%order, error = %e, "live position not sent");
        }
    }
}

async fn write_trail(tracker: &Tracker, trail_buffer: &mut Vec<LocationFix>) {
    if trail_buffer.is_empty() {
        return;
    }
    while !trail_buffer.is_empty() {
        let n = trail_buffer.len().min(1_000);
        if let Err(e) = tracker.store.append_locations(&trail_buffer[..n]).await {
            tracing::warn!(error = %e, rows = trail_buffer.len(), "trail not written; retrying");
            return;
        }
        // Written rows leave the buffer at once, so a later failure never
        // writes them twice.
        trail_buffer.drain(..n);
        metrics::counter!("nurse_trail_rows_total").increment(n as u64);
    }
}
