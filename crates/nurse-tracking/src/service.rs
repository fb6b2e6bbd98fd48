//! What a nurse can do, the same over the socket and over HTTP: send fixes,
//! go on or off shift, answer offers, report visit steps, and see their live
//! offer and current job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_auth::Claims;
use yixin_contracts::Event;
use yixin_contracts::pb;
use yixin_domain::{
    NurseId, Offer, OfferClosedReason, OfferId, OfferStatus, Order, OrderId, OrderStatus, OrgId,
    ShiftState, VisitRecord,
};
use yixin_platform::config::TrackingSettings;
use yixin_queue::{PositionBoard, PositionRecord, Queue};
use yixin_store::{ClaimLost, ClaimOutcome, LocationFix, Store, StoreError};

use crate::errors::TrackingError;
use crate::fleet::{Fix, FixOutcome, Fleet};
use crate::frames::{
    AddressView, AssignedView, ContactView, FixIn, OfferView, PatientView, ServiceName, Step,
};
use yixin_contracts::{
    FLEET_CHANNEL, NURSES_STREAM, OfferDetails, coarse_area, envelope, offer_answered,
    offer_details, status_changed,
};

/// The authenticated nurse, checked against the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NurseCtx {
    pub id: NurseId,
    pub org: OrgId,
}

/// What became of a batch of fixes.
#[derive(Debug, Default, Clone, PartialEq, Serialize, ToSchema)]
pub struct IngestReport {
    /// Now in the index.
    pub accepted: usize,
    /// Not newer than the latest fix: ignored.
    pub ignored: usize,
    /// Refused, with why.
    pub refused: Vec<RefusedFix>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RefusedFix {
    pub index: usize,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
}

/// Fixes waiting for the next write to Redis and the database.
#[derive(Default)]
pub(crate) struct Pending {
    pub latest: HashMap<NurseId, PositionRecord>,
    pub trail: Vec<(PositionRecord, LocationFix)>,
}

/// The nurse-tracking core shared by every connection and request.
pub struct Tracker {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub positions: Arc<dyn PositionBoard>,
    pub settings: TrackingSettings,
    /// Arrival radius, alarms and the lone-worker timer.
    pub safety: yixin_platform::config::SafetySettings,
    pub(crate) fleet: Arc<RwLock<Fleet>>,
    pub(crate) pending: Mutex<Pending>,
}

impl Tracker {
    pub(crate) fn fleet_read(&self) -> std::sync::RwLockReadGuard<'_, Fleet> {
        self.fleet.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn fleet_write(&self) -> std::sync::RwLockWriteGuard<'_, Fleet> {
        self.fleet.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the token's nurse against the roster (cached in the fleet once
    /// seen) and loads their job and live offer the first time.
    ///
    /// The token's `sub` is the roster id, or the nurse's `external_id` (the
    /// organisation's identity provider's own subject): this is the one
    /// place a token becomes a nurse, for the socket and HTTP alike.
    pub async fn resolve(&self, claims: &Claims) -> Result<NurseCtx, TrackingError> {
        let org = OrgId::from(claims.org.as_str());
        let parsed = uuid::Uuid::parse_str(&claims.sub).map(NurseId).ok();
        if let Some(id) = parsed
            && let Some(state) = self.fleet_read().get(&id)
        {
            if state.org != org {
                return Err(TrackingError::NotOnRoster);
            }
            if !state.active {
                return Err(TrackingError::Deactivated);
            }
            return Ok(NurseCtx { id, org });
        }
        let by_id = match parsed {
            Some(id) => self
                .store
                .get_nurse_with_credentials(id)
                .await
                .map_err(TrackingError::store)?
                .filter(|n| n.org_id == org),
            None => None,
        };
        let nurse = match by_id {
            Some(nurse) => nurse,
            None => {
                let known = self
                    .store
                    .nurse_by_external_id(&org, &claims.sub)
                    .await
                    .map_err(TrackingError::store)?
                    .ok_or(TrackingError::NotOnRoster)?;
                // With the credentials the fleet's gate needs.
                self.store
                    .get_nurse_with_credentials(known.id)
                    .await
                    .map_err(TrackingError::store)?
                    .ok_or(TrackingError::NotOnRoster)?
            }
        };
        let id = nurse.id;
        if let Some(state) = self.fleet_read().get(&id) {
            // Known by its roster id already: the fleet's state is current.
            if !state.active {
                return Err(TrackingError::Deactivated);
            }
            return Ok(NurseCtx { id, org });
        }
        if !nurse.active {
            return Err(TrackingError::Deactivated);
        }
        let job = self
            .store
            .active_order_for_nurse(id)
            .await
            .map_err(TrackingError::store)?;
        let offer = self
            .store
            .live_offer_for_nurse(id, Utc::now())
            .await
            .map_err(TrackingError::store)?;
        let mut fleet = self.fleet_write();
        fleet.register(&nurse);
        fleet.set_job(id, job.map(|o| (o.id, o.status)));
        fleet.set_offer(id, offer.map(|o| (o.id, o.expires_at)));
        Ok(NurseCtx { id, org })
    }

    /// Validates and indexes fixes (oldest first, so a batch ends at its
    /// newest); they reach Redis and the trail with the next flush.
    pub fn ingest(
        &self,
        ctx: &NurseCtx,
        fixes: &[FixIn],
        prefix: &str,
    ) -> Result<IngestReport, TrackingError> {
        if fixes.len() > self.settings.max_fixes_per_batch {
            return Err(TrackingError::TooManyFixes {
                max: self.settings.max_fixes_per_batch,
            });
        }
        let now = Utc::now();
        let max_age = chrono::TimeDelta::seconds(
            i64::try_from(self.settings.stale_after_secs).unwrap_or(i64::MAX / 1000),
        );
        let mut report = IngestReport::default();
        let mut valid: Vec<Fix> = Vec::with_capacity(fixes.len());
        for (i, f) in fixes.iter().enumerate() {
            match f.validate(now, self.settings.max_accuracy_m, max_age, "") {
                Ok(fix) => valid.push(fix),
                // The batch path is named only for refused fixes: accepted
                // ones (nearly all) allocate nothing.
                Err(e) => report.refused.push(RefusedFix {
                    index: i,
                    code: e.code().to_owned(),
                    field: e.field().map(|field| {
                        if prefix.is_empty() {
                            field
                        } else {
                            format!("{prefix}[{i}].{field}")
                        }
                    }),
                    message: e.to_string(),
                }),
            }
        }
        if valid.is_empty() {
            metrics::counter!("nurse_fixes_total", "outcome" => "refused")
                .increment(report.refused.len() as u64);
            return Ok(report);
        }
        valid.sort_by_key(|f| f.at);
        let mut indexed = Vec::with_capacity(valid.len());
        {
            let mut fleet = self.fleet_write();
            for fix in &valid {
                match fleet.apply_fix(ctx.id, *fix) {
                    FixOutcome::Indexed {
                        cell,
                        previous_cell,
                        first,
                        trail,
                    } => indexed.push((*fix, cell, previous_cell, first, trail)),
                    FixOutcome::Older | FixOutcome::Unknown => report.ignored += 1,
                }
            }
        }
        let indexed_at = Utc::now();
        let latency = metrics::histogram!("nurse_fix_to_index_seconds");
        for (fix, ..) in &indexed {
            let secs = (indexed_at - fix.at).num_microseconds().unwrap_or(0) as f64 / 1e6;
            latency.record(secs.max(0.0));
        }
        report.accepted = indexed.len();
        metrics::counter!("nurse_fixes_total", "outcome" => "accepted")
            .increment(report.accepted as u64);
        if report.ignored > 0 {
            metrics::counter!("nurse_fixes_total", "outcome" => "ignored")
                .increment(report.ignored as u64);
        }
        if !report.refused.is_empty() {
            metrics::counter!("nurse_fixes_total", "outcome" => "refused")
                .increment(report.refused.len() as u64);
        }
        let Some(&(last, last_cell, ..)) = indexed.last() else {
            return Ok(report);
        };
        let nurse_id = ctx.id.to_string();
        let org_id = ctx.org.as_str().to_owned();
        let record = |fix: &Fix, cell: h3o::CellIndex| PositionRecord {
            nurse_id: nurse_id.clone(),
            org_id: org_id.clone(),
            lat: fix.point.lat(),
            lng: fix.point.lng(),
            accuracy_m: fix.accuracy_m,
            recorded_at_unix_ms: fix.at.timestamp_millis(),
            cell: u64::from(cell),
            previous_cell: None,
            cell_changed: false,
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // What the shared board last saw of this nurse's cell: kept from the
        // first unflushed move, so membership leaves the right set.
        let (mut previous, mut cell_changed) = pending
            .latest
            .get(&ctx.id)
            .map(|r| (r.previous_cell, r.cell_changed))
            .unwrap_or((None, false));
        for (fix, cell, previous_cell, first, trail) in &indexed {
            cell_changed |= *first || previous_cell.is_some();
            if previous.is_none() {
                previous = previous_cell.map(u64::from);
            }
            if *trail {
                pending.trail.push((
                    record(fix, *cell),
                    LocationFix {
                        nurse_id: ctx.id,
                        location: fix.point,
                        accuracy_m: fix.accuracy_m,
                        recorded_at: fix.at,
                        received_at: now,
                    },
                ));
            }
        }
        pending.latest.insert(
            ctx.id,
            PositionRecord {
                previous_cell: previous,
                cell_changed,
                ..record(&last, last_cell)
            },
        );
        Ok(report)
    }

    /// On or off shift. Off is refused during a job; a live offer is declined.
    pub async fn set_shift(&self, ctx: &NurseCtx, state: ShiftState) -> Result<(), TrackingError> {
        let (job, offer) = {
            let fleet = self.fleet_read();
            let s = fleet.get(&ctx.id);
            (s.and_then(|s| s.job), s.and_then(|s| s.offer))
        };
        if state == ShiftState::Off {
            if job.is_some() {
                return Err(TrackingError::ShiftOffWithJob);
            }
            if let Some((offer_id, _)) = offer {
                match self
                    .decline(ctx, offer_id, Some("went off shift".into()))
                    .await
                {
                    Ok(()) | Err(TrackingError::OfferClosed(_) | TrackingError::OfferNotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.store
            .set_shift(&ctx.org, ctx.id, state)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => TrackingError::NotOnRoster,
                other => TrackingError::store(other),
            })?;
        let cell = {
            let mut fleet = self.fleet_write();
            let cell = fleet
                .get(&ctx.id)
                .and_then(|s| s.last_fix)
                .and_then(|f| crate::fleet::cell_at(f.point));
            fleet.set_shift(ctx.id, state);
            cell
        };
        if state == ShiftState::Off {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .latest
                .remove(&ctx.id);
            if let Err(e) = self
                .positions
                .forget(&ctx.id.to_string(), ctx.org.as_str(), cell.map(u64::from))
                .await
            {
                tracing::warn!(nurse_id = %ctx.id, error = %e, "could not clear the shared position");
            }
        }
        let now = Utc::now();
        let event = envelope(
            Event::NurseShiftChanged(pb::NurseShiftChanged {
                nurse_id: ctx.id.to_string(),
                org_id: ctx.org.as_str().to_owned(),
                on: state == ShiftState::On,
                at_unix_ms: now.timestamp_millis(),
            }),
            now,
        );
        if let Err(e) = self.queue.publish(NURSES_STREAM, &event).await {
            tracing::warn!(nurse_id = %ctx.id, error = %e, "shift change not published");
        }
        if let Err(e) = self.queue.broadcast(FLEET_CHANNEL, &event).await {
            tracing::warn!(nurse_id = %ctx.id, error = %e, "shift change not announced to dispatchers");
        }
        Ok(())
    }

    /// Accepts an offer: the atomic claim. The winner gets the address.
    pub async fn accept(
        &self,
        ctx: &NurseCtx,
        offer_id: OfferId,
    ) -> Result<AssignedView, TrackingError> {
        let now = Utc::now();
        let outcome = self
            .store
            .claim_offer(
                offer_id,
                ctx.id,
                now,
                |order, from| Some(status_changed(order, from, now)),
                |offer| {
                    vec![offer_answered(
                        offer_id,
                        Some(offer.order_id),
                        ctx.id,
                        pb::offer_answered::Answer::Accepted,
                        None,
                        now,
                    )]
                },
            )
            .await
            .map_err(TrackingError::store)?;
        match outcome {
            ClaimOutcome::Won(order) => {
                let answered = offer_answered(
                    offer_id,
                    Some(order.id),
                    ctx.id,
                    pb::offer_answered::Answer::Accepted,
                    None,
                    now,
                );
                self.to_dashboard(ctx, &answered.payload).await;
                {
                    let mut fleet = self.fleet_write();
                    fleet.set_offer(ctx.id, None);
                    // A next job leaves her current one as her job.
                    if order.chained_after.is_none() {
                        fleet.set_job(ctx.id, Some((order.id, order.status)));
                    }
                }
                tracing::info!(order_id = %order.id, nurse_id = %ctx.id, "offer accepted: order assigned");
                Ok(self.job_view(&order).await)
            }
            ClaimOutcome::Lost(lost) => {
                self.forget_offer(ctx.id, offer_id);
                Err(match lost {
                    ClaimLost::NotFound => TrackingError::OfferNotFound,
                    ClaimLost::Expired => TrackingError::OfferClosed(OfferClosedReason::Expired),
                    ClaimLost::Taken => TrackingError::OfferClosed(OfferClosedReason::Taken),
                    ClaimLost::Cancelled => {
                        TrackingError::OfferClosed(OfferClosedReason::Cancelled)
                    }
                    ClaimLost::NurseBusy => TrackingError::NurseBusy,
                })
            }
        }
    }

    /// Declines an offer, before its deadline.
    pub async fn decline(
        &self,
        ctx: &NurseCtx,
        offer_id: OfferId,
        reason: Option<String>,
    ) -> Result<(), TrackingError> {
        let now = Utc::now();
        let mut offer = self
            .store
            .get_offer(offer_id)
            .await
            .map_err(TrackingError::store)?
            .filter(|o| o.nurse_id == ctx.id)
            .ok_or(TrackingError::OfferNotFound)?;
        if offer.decline(now, reason).is_err() {
            self.forget_offer(ctx.id, offer_id);
            return Err(TrackingError::OfferClosed(
                self.closed_reason(&offer, now).await?,
            ));
        }
        let answered = offer_answered(
            offer_id,
            Some(offer.order_id),
            ctx.id,
            pb::offer_answered::Answer::Declined,
            offer.decline_reason.clone(),
            now,
        );
        let answered_again = answered.payload.clone();
        let result = self
            .store
            .close_offer(
                offer_id,
                OfferStatus::Declined,
                now,
                offer.decline_reason.clone(),
                vec![answered],
            )
            .await;
        self.forget_offer(ctx.id, offer_id);
        match result {
            Ok(_) => {
                self.to_dashboard(ctx, &answered_again).await;
                Ok(())
            }
            Err(StoreError::StaleState { .. }) => {
                let current = self
                    .store
                    .get_offer(offer_id)
                    .await
                    .map_err(TrackingError::store)?
                    .ok_or(TrackingError::OfferNotFound)?;
                Err(TrackingError::OfferClosed(
                    self.closed_reason(&current, now).await?,
                ))
            }
            Err(StoreError::NotFound) => Err(TrackingError::OfferNotFound),
            Err(e) => Err(TrackingError::store(e)),
        }
    }

    /// Tells the organisation's coordinators (their live feed).
    async fn to_dashboard(&self, ctx: &NurseCtx, event: &[u8]) {
        if let Err(e) = self
            .queue
            .broadcast(&yixin_contracts::dispatch_channel(ctx.org.as_str()), event)
            .await
        {
            tracing::debug!(nurse_id = %ctx.id, error = %e, "dashboard not told");
        }
    }

    /// Why a nurse's offer is no longer answerable.
    async fn closed_reason(
        &self,
        offer: &Offer,
        now: DateTime<Utc>,
    ) -> Result<OfferClosedReason, TrackingError> {
        if offer.status == OfferStatus::Expired
            || (offer.status == OfferStatus::Open && now >= offer.expires_at)
        {
            return Ok(OfferClosedReason::Expired);
        }
        let order = self
            .store
            .get_order(offer.order_id)
            .await
            .map_err(TrackingError::store)?;
        Ok(match order {
            Some(o) if o.status == OrderStatus::Cancelled => OfferClosedReason::Cancelled,
            _ => OfferClosedReason::Taken,
        })
    }

    fn forget_offer(&self, nurse: NurseId, offer_id: OfferId) {
        let mut fleet = self.fleet_write();
        if fleet
            .get(&nurse)
            .and_then(|s| s.offer)
            .is_some_and(|(id, _)| id == offer_id)
        {
            fleet.set_offer(nurse, None);
        }
    }

    /// A visit step of the nurse's own job, in order. Repeating the step
    /// the job is already at answers the job as it is.
    ///
    /// Clinical rules: `started` needs `consent_by` (who consented on
    /// site; 422 `consent_required`), `completed` needs a submitted visit
    /// record (422 `record_required`, naming the required fields).
    pub async fn progress(
        &self,
        ctx: &NurseCtx,
        order_id: OrderId,
        step: Step,
        consent_by: Option<String>,
    ) -> Result<AssignedView, TrackingError> {
        self.progress_at(ctx, order_id, step, consent_by, None)
            .await
    }

    /// [`Tracker::progress`] with the phone's position sent with the step
    /// (`arrived` is checked against the address: see [`crate::safety`]).
    pub async fn progress_at(
        &self,
        ctx: &NurseCtx,
        order_id: OrderId,
        step: Step,
        consent_by: Option<String>,
        position: Option<crate::safety::StepPosition>,
    ) -> Result<AssignedView, TrackingError> {
        let (from, to) = step.transition();
        let order = self.own_job(ctx, order_id).await?;
        if order.status == to {
            return Ok(self.job_view(&order).await);
        }
        if order.chained_after.is_some() {
            // A next job waits for the current visit to end.
            return Err(TrackingError::StepOutOfOrder {
                step: step_name(step),
                current: "next".to_owned(),
            });
        }
        if order.status != from {
            return Err(TrackingError::StepOutOfOrder {
                step: step_name(step),
                current: order.status.as_str().to_owned(),
            });
        }
        let now = Utc::now();
        let mut next = order.clone();
        next.status = to;
        let mut change = yixin_store::OrderTransition::new(order_id, vec![from], to, now);
        let mut distance_m = None;
        match step {
            Step::Started => {
                let name = yixin_domain::clinical::check_consent_by(consent_by.as_deref())
                    .map_err(TrackingError::Clinical)?;
                next.clinical.consent_by = Some(name);
                change.clinical = Some(next.clinical.clone());
            }
            Step::Completed => self.check_record_submitted(&order).await?,
            Step::Arrived => {
                distance_m = self.check_arrival(ctx, &order, position, now).await?;
            }
            Step::EnRoute => {}
        }
        change.outbox = Some(status_changed(&next, from, now));
        let done = match self.store.transition_order(change).await {
            Ok(done) => done,
            Err(StoreError::StaleState { current }) => {
                return Err(TrackingError::StepOutOfOrder {
                    step: step_name(step),
                    current,
                });
            }
            Err(e) => return Err(TrackingError::store(e)),
        };
        let job = (done.status != OrderStatus::Completed).then_some((done.id, done.status));
        self.fleet_write().set_job(ctx.id, job);
        self.after_step(ctx, &done, step, distance_m, now).await;
        if done.status == OrderStatus::Completed {
            self.next_becomes_current(ctx, now).await;
        }
        tracing::info!(order_id = %done.id, nurse_id = %ctx.id, status = %done.status, "visit step");
        Ok(self.job_view(&done).await)
    }

    /// `record_required` (naming the form's required fields) unless the
    /// order has a submitted visit record.
    async fn check_record_submitted(&self, order: &Order) -> Result<(), TrackingError> {
        let submitted = self
            .store
            .latest_visit_record(order.id)
            .await
            .map_err(TrackingError::store)?;
        if submitted.is_some() {
            return Ok(());
        }
        let catalog = self.store.catalog().await.map_err(TrackingError::store)?;
        let mut missing = catalog
            .service(&order.service_code)
            .map(|s| s.clinical.required_record_fields())
            .unwrap_or_default();
        if missing.is_empty() {
            missing.push("values".to_owned());
        }
        Err(TrackingError::Clinical(
            yixin_domain::DomainError::RecordRequired { missing },
        ))
    }

    /// Submits a version of the visit record of the nurse's own job (in
    /// service, or completed: then it is an amendment). Checked against the
    /// service's form; the first submission is version 1, each later one
    /// the next version. Nothing submitted is ever changed.
    pub async fn submit_record(
        &self,
        ctx: &NurseCtx,
        order_id: OrderId,
        values: &std::collections::BTreeMap<String, serde_json::Value>,
        notes: Option<&str>,
    ) -> Result<VisitRecord, TrackingError> {
        let order = self.own_job(ctx, order_id).await?;
        if !matches!(
            order.status,
            OrderStatus::InService | OrderStatus::Completed
        ) {
            return Err(TrackingError::StepOutOfOrder {
                step: "record",
                current: order.status.as_str().to_owned(),
            });
        }
        let catalog = self.store.catalog().await.map_err(TrackingError::store)?;
        let service = catalog.service(&order.service_code).ok_or_else(|| {
            TrackingError::Internal(anyhow::anyhow!("order of an unknown service"))
        })?;
        let (values, notes) = service
            .clinical
            .check_record(values, notes)
            .map_err(TrackingError::Clinical)?;
        let record = VisitRecord {
            order_id,
            version: 0,
            org_id: order.org_id.clone(),
            nurse_id: ctx.id,
            service_code: order.service_code.clone(),
            values,
            notes,
            submitted_at: Utc::now(),
        };
        let saved = self
            .store
            .append_visit_record(record)
            .await
            .map_err(TrackingError::store)?;
        tracing::info!(order_id = %order_id, nurse_id = %ctx.id, version = saved.version, "visit record submitted");
        Ok(saved)
    }

    async fn own_job(&self, ctx: &NurseCtx, order_id: OrderId) -> Result<Order, TrackingError> {
        self.store
            .get_order(order_id)
            .await
            .map_err(TrackingError::store)?
            .filter(|o| o.nurse_id == Some(ctx.id))
            .ok_or(TrackingError::JobNotFound)
    }

    /// The nurse's live offer, as the phone shows it.
    pub async fn live_offer(&self, ctx: &NurseCtx) -> Result<Option<OfferView>, TrackingError> {
        let Some(offer) = self
            .store
            .live_offer_for_nurse(ctx.id, Utc::now())
            .await
            .map_err(TrackingError::store)?
        else {
            return Ok(None);
        };
        let order = self
            .store
            .get_order(offer.order_id)
            .await
            .map_err(TrackingError::store)?;
        self.fleet_write()
            .set_offer(ctx.id, Some((offer.id, offer.expires_at)));
        let Some(order) = order else {
            return Ok(None);
        };
        let (catalog, areas) = tokio::join!(
            self.store.catalog(),
            self.store.service_areas(&order.org_id)
        );
        let details = offer_details(
            &catalog.map_err(TrackingError::store)?,
            &areas.map_err(TrackingError::store)?,
            &order,
        );
        Ok(Some(offer_view(&offer, &order, &details)))
    }

    /// The nurse's current job, with what they need to get there.
    pub async fn current_job(&self, ctx: &NurseCtx) -> Result<Option<AssignedView>, TrackingError> {
        let job = self
            .store
            .active_order_for_nurse(ctx.id)
            .await
            .map_err(TrackingError::store)?;
        self.fleet_write()
            .set_job(ctx.id, job.as_ref().map(|o| (o.id, o.status)));
        Ok(match job {
            Some(order) => Some(self.job_view(&order).await),
            None => None,
        })
    }

    /// The nurse's jobs: her current job, then her next job (a chained one),
    /// each if any.
    pub async fn jobs(&self, ctx: &NurseCtx) -> Result<Vec<AssignedView>, TrackingError> {
        let (current, next) = self
            .store
            .jobs_for_nurse(ctx.id)
            .await
            .map_err(TrackingError::store)?;
        self.fleet_write()
            .set_job(ctx.id, current.as_ref().map(|o| (o.id, o.status)));
        let mut out = Vec::with_capacity(2);
        for order in current.iter().chain(next.iter()) {
            out.push(self.job_view(order).await);
        }
        Ok(out)
    }

    /// Her visit is over: the next job (promoted by the store in the same
    /// transaction) is her current job now; every socket of hers is told
    /// (an `assigned` event on her channel).
    async fn next_becomes_current(&self, ctx: &NurseCtx, now: DateTime<Utc>) {
        let current = match self.store.active_order_for_nurse(ctx.id).await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(nurse_id = %ctx.id, error = %e, "next job not read");
                return;
            }
        };
        let Some(order) = current else {
            return;
        };
        self.fleet_write()
            .set_job(ctx.id, Some((order.id, order.status)));
        let event = status_changed(&order, order.status, now);
        if let Err(e) = self
            .queue
            .broadcast(&yixin_contracts::nurse_channel(ctx.id), &event.payload)
            .await
        {
            tracing::warn!(nurse_id = %ctx.id, error = %e, "next job not pushed; the phone reads it from its jobs");
        }
        tracing::info!(order_id = %order.id, nurse_id = %ctx.id, "next job is now the current one");
    }

    /// The job as its nurse sees it, with the patient the resident named.
    /// A failed patient read is logged and leaves the patient out: the job
    /// itself must still reach the nurse.
    async fn job_view(&self, order: &Order) -> AssignedView {
        let mut view = assigned_view(order);
        match self.store.order_patient(order.id.0).await {
            Ok(patient) => {
                view.patient = patient.map(|p| PatientView {
                    name: p.name,
                    sex: p.sex,
                    birth_year: p.birth_year,
                    conditions: p.conditions,
                    allergies: p.allergies,
                });
            }
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "the job's patient not read");
            }
        }
        view
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::EnRoute => "en_route",
        Step::Arrived => "arrived",
        Step::Started => "started",
        Step::Completed => "completed",
    }
}

/// The offer as its nurse sees it.
pub fn offer_view(offer: &Offer, order: &Order, details: &OfferDetails) -> OfferView {
    OfferView {
        offer_id: offer.id.to_string(),
        order_id: order.id.to_string(),
        service_code: order.service_code.clone(),
        service: ServiceName::new(
            order.service_code.clone(),
            details.service_name_zh.clone(),
            details.service_name_en.clone(),
        ),
        place: (!details.place.is_empty()).then(|| details.place.clone()),
        distance_m: offer.distance_m,
        eta_min: offer.eta_min,
        area: coarse_area(order.location),
        expires_at: offer.expires_at,
        flags: order.clinical.flags.clone(),
        chained: offer.is_chained(),
        free_at: offer.free_at,
    }
}

impl Tracker {
    /// Records in the audit trail, in one statement, that the nurse was
    /// shown the address and phone of each of `order_ids` (`via`: `ws`,
    /// `http_accept`, `http_jobs`, `http_jobs_today`, `http_progress`); a
    /// failure is logged, never the nurse's problem.
    pub async fn audit_reads(
        &self,
        ctx: &NurseCtx,
        sub: &str,
        order_ids: &[&str],
        from: Option<String>,
        via: &str,
    ) {
        let at = Utc::now();
        let entries: Vec<yixin_store::AuditEntry> = order_ids
            .iter()
            .map(|order_id| yixin_store::AuditEntry {
                org: ctx.org.clone(),
                actor_sub: sub.to_owned(),
                actor_role: "nurse".to_owned(),
                action: yixin_store::audit_action::READ_ADDRESS.to_owned(),
                subject_kind: "order".to_owned(),
                subject_id: (*order_id).to_owned(),
                client_addr: from.clone(),
                detail: Some(format!("nurse {} via {via}", ctx.id)),
                at,
            })
            .collect();
        if let Err(e) = self.store.audit_many(&entries).await {
            tracing::error!(nurse_id = %ctx.id, ?order_ids, error = %e, "address read not audited");
        }
    }
}

pub fn assigned_view(order: &Order) -> AssignedView {
    AssignedView {
        order_id: order.id.to_string(),
        service_code: order.service_code.clone(),
        status: order.status,
        address: AddressView {
            text: order.address.text.clone(),
            detail: order.address.detail.clone(),
        },
        contact: ContactView {
            name: order.contact.name.clone(),
            phone: order.contact.phone.as_str().to_owned(),
        },
        location: order.location.into(),
        notes: order.notes.clone(),
        promised_by: order.promised_by,
        flags: order.clinical.flags.clone(),
        answers: order.clinical.answers.clone(),
        doctor_order_ref: order.clinical.doctor_order_ref.clone(),
        patient: None,
        next: order.chained_after.is_some(),
    }
}
