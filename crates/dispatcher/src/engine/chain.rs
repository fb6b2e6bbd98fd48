//! Chained offers in the engine (the rules: `yixin_dispatch_core::chain`).
//!
//! - **The book.** Every few seconds the chain loop reads every nurse's
//!   current visit (with its arrival and start) and keeps, per nurse, where
//!   the visit is and when it is predicted to end, and whether she already
//!   holds a next job.
//! - **Candidates.** A nurse of the book without a next job, whose visit
//!   ends within the horizon, near the order, passing the same candidate
//!   rule as a free nurse but for her job (on shift, present with a fresh
//!   fix, skills and credentials, no live offer, not excluded) is a
//!   candidate with `free_at` = the predicted end and her ETA counted from
//!   the visit's location. The offer says so (`Offer::free_at`); the claim
//!   makes the order her next job.
//! - **Overrun.** The same loop checks each next job: when the current
//!   visit runs so late that the next promise is at risk, the next job is
//!   taken back (conditional on it still being the next job as read), the
//!   nurse is told, and the order waits for dispatch again.
//! - Next jobs whose current job ended in a race with their claim are
//!   promoted to current.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use yixin_contracts::{dispatch_channel, nurse_channel, status_changed};
use yixin_dispatch_core::chain::{NextJob, Visit, predicted_end};
use yixin_dispatch_core::{Need, eligibility};
use yixin_domain::{GeoPoint, NurseId, OrderId, OrderStatus};
use yixin_store::{CurrentVisit, StoreError};

use super::Engine;
use crate::scoring::Candidate;

/// How often the book is refreshed and next jobs are checked.
pub const CHAIN_CHECK: Duration = Duration::from_secs(5);

/// One nurse's current visit as chaining sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusyNurse {
    pub nurse: NurseId,
    pub order: OrderId,
    /// Where the visit is: her position when it ends.
    pub location: GeoPoint,
    pub visit: Visit,
    /// Holds a next job already.
    pub has_next: bool,
}

impl Engine {
    /// Chain candidates for an order (see the module doc): none when
    /// chaining is off or nobody's visit ends soon enough.
    pub(super) async fn chain_candidates(
        &self,
        to: GeoPoint,
        need: &Need,
        radius_m: f64,
        keep: usize,
        excluded: &HashSet<NurseId>,
        free: &[Candidate],
    ) -> Vec<Candidate> {
        if !self.chain.enabled() {
            return Vec::new();
        }
        let now = Utc::now();
        let mut near: Vec<NearVisit> = {
            let book = self.chain_book.read().unwrap_or_else(|p| p.into_inner());
            let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
            book.values()
                .filter(|b| !excluded.contains(&b.nurse))
                .filter(|b| !free.iter().any(|c| c.nurse_id == b.nurse))
                .filter_map(|b| {
                    let free_at = self.chain.free_at(&b.visit, usize::from(b.has_next), now)?;
                    let distance = b.location.distance_m(&to);
                    if distance > radius_m {
                        return None;
                    }
                    let state = fleet.get(&b.nurse)?;
                    // The candidate rule, her job set aside.
                    let facts = state.facts(need);
                    let facts = yixin_dispatch_core::NurseFacts {
                        has_job: false,
                        ..facts
                    };
                    eligibility(&facts).ok()?;
                    Some(NearVisit {
                        distance_m: distance,
                        nurse: b.nurse,
                        at: b.location,
                        free_at,
                        visit_s: u32::try_from(b.visit.duration.num_seconds()).ok(),
                    })
                })
                .collect()
        };
        if near.is_empty() {
            return Vec::new();
        }
        near.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.nurse.cmp(&b.nurse))
        });
        near.truncate(keep);
        let from: Vec<GeoPoint> = near.iter().map(|n| n.at).collect();
        let etas = match self.eta.etas(&from, to).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "no ETA for the chain candidates");
                return Vec::new();
            }
        };
        let ids: Vec<NurseId> = near.iter().map(|n| n.nurse).collect();
        let since = yixin_domain::OrgTimeZone::default().start_of_day(now);
        let standing = self
            .store
            .offer_record(&ids, since)
            .await
            .unwrap_or_default();
        near.iter()
            .zip(etas)
            .filter_map(|(n, eta)| {
                let eta = eta?;
                let (answered, accepted) = standing.get(&n.nurse).copied().unwrap_or((0, 0));
                Some(Candidate {
                    nurse_id: n.nurse,
                    eta_s: eta.seconds,
                    distance_m: eta.distance_m,
                    jobs_today: accepted,
                    offers_answered: answered,
                    offers_accepted: accepted,
                    free_at: Some(n.free_at),
                    preferred: false,
                    // The risk policy's spread of when she is free scales
                    // with the visit's length, as in the simulator.
                    visit_s: n.visit_s,
                })
            })
            .collect()
    }

    /// When the nurse an offer goes to is free, if it is a chained offer:
    /// she is on a visit (the book) without a next job, and the arrival
    /// the decision counted includes a wait for it (`arrival` later than
    /// the travel alone from `now`).
    pub(super) fn chained_free_at(
        &self,
        nurse: NurseId,
        arrival: DateTime<Utc>,
        eta_min: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !self.chain.enabled() || arrival <= now + chrono::TimeDelta::minutes(i64::from(eta_min))
        {
            return None;
        }
        let book = self.chain_book.read().unwrap_or_else(|p| p.into_inner());
        let busy = book.get(&nurse)?;
        self.chain
            .free_at(&busy.visit, usize::from(busy.has_next), now)
    }

    /// The chain loop: refreshes the book, checks next jobs for overruns
    /// and promotes orphaned next jobs, every [`CHAIN_CHECK`].
    pub(super) async fn chain_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if !self.chain.enabled() {
            // Nothing to do, but a next job left from before (chaining just
            // switched off) must still move on when its current job ends.
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHAIN_CHECK * 6) => {}
                    _ = shutdown.changed() => return,
                }
                self.promote_orphans().await;
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHAIN_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.check_chains().await {
                tracing::warn!(error = %e, "chained jobs not checked");
            }
            self.promote_orphans().await;
        }
    }

    /// One round of the chain loop (also called by tests through the loop).
    async fn check_chains(&self) -> Result<(), StoreError> {
        let visits = self.store.current_visits().await?;
        let catalog = self.catalog().await?;
        let now = Utc::now();
        let mut book = HashMap::new();
        let mut at_risk = Vec::new();
        for v in &visits {
            let Some(nurse) = v.order.nurse_id else {
                continue;
            };
            let duration = catalog
                .service(&v.order.service_code)
                .map_or(60, |s| s.duration_min);
            let visit = visit_of(v, duration);
            book.insert(
                nurse,
                BusyNurse {
                    nurse,
                    order: v.order.id,
                    location: v.order.location,
                    visit,
                    has_next: v.next.is_some(),
                },
            );
            if let (Some(next), Some(end)) = (&v.next, predicted_end(&visit, now)) {
                at_risk.push((v.order.location, next.clone(), end));
            }
        }
        *self.chain_book.write().unwrap_or_else(|p| p.into_inner()) = book;
        for (from, next, end) in at_risk {
            let eta = match self.eta.etas(&[from], next.location).await {
                Ok(e) => e.into_iter().next().flatten().map(|e| e.seconds),
                Err(e) => {
                    tracing::warn!(error = %e, "no ETA for a next job");
                    None
                }
            };
            let Some(eta_s) = eta else { continue };
            let job = NextJob {
                promised_by: next.promised_by,
                committed: next.eta,
            };
            if self.chain.at_risk(&job, end, eta_s, now) {
                self.take_back(next.id, end).await?;
            }
        }
        Ok(())
    }

    /// Takes a next job back from its nurse and lets dispatch offer it again.
    async fn take_back(&self, id: OrderId, current_end: DateTime<Utc>) -> Result<(), StoreError> {
        let Some((order, version)) = self.store.get_order_versioned(id).await? else {
            return Ok(());
        };
        let Some(nurse) = order.nurse_id else {
            return Ok(());
        };
        if order.chained_after.is_none() || order.status != OrderStatus::Assigned {
            return Ok(());
        }
        let now = Utc::now();
        let mut after = order.clone();
        after.status = OrderStatus::Pending;
        after.nurse_id = None;
        after.eta = None;
        after.chained_after = None;
        let event = status_changed(&after, OrderStatus::Assigned, now);
        match self
            .store
            .take_back_next(id, version, now, Some(event.clone()))
            .await
        {
            Ok(_) => {}
            Err(StoreError::StaleState { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        metrics::counter!("dispatch_chain_taken_back_total").increment(1);
        tracing::warn!(order_id = %id, nurse_id = %nurse, current_end = %current_end, promised_by = %order.promised_by, "next job taken back: the current visit overran");
        // Her phone: the event naming her (the order's own event no longer
        // does), which her socket turns into `order_reassigned`.
        let mut hers = after.clone();
        hers.nurse_id = Some(nurse);
        let told = status_changed(&hers, OrderStatus::Assigned, now);
        let _ = self
            .queue
            .broadcast(&nurse_channel(nurse), &told.payload)
            .await;
        let _ = self
            .queue
            .broadcast(&dispatch_channel(order.org_id.as_str()), &event.payload)
            .await;
        let _ = self
            .queue
            .broadcast(&yixin_contracts::order_channel(id), &event.payload)
            .await;
        self.chain_book
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .values_mut()
            .filter(|b| b.nurse == nurse)
            .for_each(|b| b.has_next = false);
        self.decide(|d| d.order_waiting(id, Utc::now()));
        self.wake.notify_one();
        Ok(())
    }

    /// Next jobs whose current job ended in a race with their claim become
    /// current; their nurse's phone is told (an `assigned` event).
    async fn promote_orphans(&self) {
        let promoted = match self.store.promote_orphaned_next(Utc::now()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "orphaned next jobs not promoted");
                return;
            }
        };
        for (id, nurse) in promoted {
            if let Ok(Some(order)) = self.store.get_order(id).await {
                let event = status_changed(&order, OrderStatus::Assigned, Utc::now());
                let _ = self
                    .queue
                    .broadcast(&nurse_channel(nurse), &event.payload)
                    .await;
            }
        }
    }
}

/// Nurses who accepted an offer of `order` and no longer hold it (a next
/// job taken back, a nurse who dropped out before leaving).
pub fn lost_after_winning(
    order: &yixin_domain::Order,
    offers: &[yixin_domain::Offer],
) -> Vec<NurseId> {
    offers
        .iter()
        .filter(|o| o.status == yixin_domain::OfferStatus::Accepted)
        .filter(|o| order.nurse_id != Some(o.nurse_id))
        .map(|o| o.nurse_id)
        .collect()
}

/// The core's view of a current visit.
pub fn visit_of(v: &CurrentVisit, duration_min: u32) -> Visit {
    Visit {
        arrived_at: v.arrived_at,
        started_at: v.started_at,
        eta: v.order.eta,
        ..Visit::new(v.order.status, duration_min)
    }
}

/// A nurse on a visit near an order, before her ETA is asked for.
struct NearVisit {
    distance_m: f64,
    nurse: NurseId,
    /// Where her visit is: her ETA counts from there.
    at: GeoPoint,
    /// The visit's predicted end.
    free_at: DateTime<Utc>,
    /// The visit's catalogue length, s.
    visit_s: Option<u32>,
}
