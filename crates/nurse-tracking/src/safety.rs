//! Nurse safety and the visit checks (issue 17), the nurse's side:
//!
//! - **SOS**: `POST /v1/nurse/sos` or the `sos` frame, with or without a
//!   job, on or off shift (an alarm is never refused). Stored, then told to
//!   every coordinator of the organisation (an `alarm` feed frame) and to
//!   the nurse's phone (an `alarm` frame). A second SOS while one is
//!   unresolved answers that one (no duplicate alarms).
//! - **Check-in**: `POST /v1/nurse/orders/{id}/check-in` or the `check_in`
//!   frame, while at the door or in service; re-arms the lone-worker timer.
//! - **Arrival check**: `arrived` only within `safety.arrival_radius_m` of
//!   the address (widened by the fix's accuracy, capped), from a position
//!   sent with the step or the latest fresh fix; a coordinator's override
//!   lets one job's arrival through.
//! - **Completion check**: a visit completed in under half the service's
//!   duration is flagged for review.
//! - **The safety worker** ([`run`]): scans the database every
//!   `safety.scan_interval_ms` for alarms to escalate and visits whose
//!   phone must check in, missed its check-in or went silent. Claims are
//!   conditional updates, so with two instances each alarm is raised and
//!   escalated once.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;
use yixin_auth::NurseCaller;
use yixin_contracts::Broadcast;
use yixin_domain::safety::{
    Alarm, AlarmKind, ArrivalRule, first_check_in_due, is_short_visit, next_check_in_due,
};
use yixin_domain::{AlarmId, DomainError, GeoPoint, Order, OrderId, OrderStatus};
use yixin_platform::views::AlarmView;
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::VisitCheck;

use crate::NurseTracking;
use crate::errors::TrackingError;
use crate::frames::Step;
use crate::service::{NurseCtx, Tracker};

/// A position a phone sends with a step or an SOS.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepPosition {
    #[schema(minimum = -90, maximum = 90, example = 29.39)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180, example = 106.32)]
    pub lng: f64,
    /// Horizontal accuracy radius, metres (0 when not given).
    #[serde(default)]
    #[schema(minimum = 0, example = 8.0)]
    pub accuracy_m: Option<f64>,
}

impl StepPosition {
    fn validate(&self, max_accuracy_m: f64) -> Result<(GeoPoint, f64), TrackingError> {
        let point = GeoPoint::new(self.lat, self.lng).map_err(|e| TrackingError::InvalidFix {
            field: "location.lat".into(),
            message: e.to_string(),
        })?;
        let accuracy = self.accuracy_m.unwrap_or(0.0);
        if !accuracy.is_finite() || accuracy < 0.0 || accuracy > max_accuracy_m {
            return Err(TrackingError::InvalidFix {
                field: "location.accuracy_m".into(),
                message: format!("accuracy_m must be between 0 and {max_accuracy_m} metres"),
            });
        }
        Ok((point, accuracy))
    }
}

/// `POST /v1/nurse/sos`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SosRequest {
    /// Where she is; without it, her latest known fix.
    #[serde(default)]
    pub location: Option<StepPosition>,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// A check-in's answer: when the phone will be asked next.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckInView {
    pub order_id: String,
    pub next_check_in_due: DateTime<Utc>,
}

/// What an alarm's raising or a check-in answers over the socket.
pub type SosOutcome = (AlarmView, bool);

fn secs(v: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(v).unwrap_or(i64::MAX / 1_000))
}

impl Tracker {
    /// The nurse's latest fix no older than `max_age` (any age when `None`):
    /// this instance's fleet, or the shared board (another instance's
    /// phone socket), whichever is newer.
    pub(crate) async fn latest_position(
        &self,
        ctx: &NurseCtx,
        now: DateTime<Utc>,
        max_age: Option<TimeDelta>,
    ) -> Option<(GeoPoint, f64, DateTime<Utc>)> {
        let local = self
            .fleet_read()
            .get(&ctx.id)
            .and_then(|s| s.last_fix)
            .map(|f| (f.point, f.accuracy_m, f.at));
        let shared = match self.positions.latest(&[ctx.id.to_string()]).await {
            Ok(mut v) => v.pop().flatten().and_then(|r| {
                let at = DateTime::from_timestamp_millis(r.recorded_at_unix_ms)?;
                Some((GeoPoint::new(r.lat, r.lng).ok()?, r.accuracy_m, at))
            }),
            Err(e) => {
                tracing::debug!(nurse_id = %ctx.id, error = %e, "shared position not read");
                None
            }
        };
        let newest = match (local, shared) {
            (Some(a), Some(b)) => Some(if b.2 > a.2 { b } else { a }),
            (a, b) => a.or(b),
        };
        newest.filter(|p| max_age.is_none_or(|age| now - p.2 <= age))
    }

    /// The arrival check of `arrived` (see the module doc): the distance
    /// when it was measured, `None` when a coordinator overrode it.
    pub(crate) async fn check_arrival(
        &self,
        ctx: &NurseCtx,
        order: &Order,
        sent: Option<StepPosition>,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, TrackingError> {
        let overridden = self
            .store
            .visit_check(order.id)
            .await
            .map_err(TrackingError::store)?
            .is_some_and(|c| c.arrival_override_at.is_some());
        let position = match sent {
            Some(p) => Some(p.validate(self.settings.max_accuracy_m)?),
            None => self
                .latest_position(ctx, now, Some(secs(self.safety.fix_max_age_secs)))
                .await
                .map(|(p, a, _)| (p, a)),
        };
        let rule = ArrivalRule {
            radius_m: self.safety.arrival_radius_m,
            max_widening_m: self.safety.arrival_max_widening_m,
        };
        match position {
            Some((point, accuracy)) => match rule.check(point, accuracy, order.location) {
                Ok(d) => Ok(Some(d)),
                Err(_) if overridden => Ok(None),
                Err(e) => Err(TrackingError::Clinical(e)),
            },
            None if overridden => Ok(None),
            None => Err(TrackingError::Clinical(DomainError::PositionUnknown)),
        }
    }

    /// What a visit step starts or ends of the safety checks, once the step
    /// is committed. Failures are logged: the step itself stands.
    pub(crate) async fn after_step(
        &self,
        ctx: &NurseCtx,
        order: &Order,
        step: Step,
        distance_m: Option<u32>,
        now: DateTime<Utc>,
    ) {
        let result = match step {
            Step::EnRoute => Ok(()),
            Step::Arrived => {
                let duration = self.duration_min(order).await;
                let due = first_check_in_due(now, duration, secs(self.safety.check_in_grace_secs));
                self.store
                    .record_arrival(order.id, &ctx.org, ctx.id, now, due, distance_m)
                    .await
            }
            Step::Started => self.store.record_visit_started(order.id, now).await,
            Step::Completed => match self.store.visit_check(order.id).await {
                Ok(check) => {
                    let duration = self.duration_min(order).await;
                    let short = check
                        .and_then(|c| c.started_at.or(c.arrived_at))
                        .filter(|from| is_short_visit(*from, now, duration))
                        .map(|from| u32::try_from((now - from).num_minutes()).unwrap_or(0));
                    if short.is_some() {
                        tracing::info!(order_id = %order.id, nurse_id = %ctx.id, "short visit flagged for review");
                    }
                    self.store.close_visit(order.id, now, short).await
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            tracing::warn!(order_id = %order.id, error = %e, "visit checks not recorded");
        }
    }

    /// The service's expected duration (30 minutes if unknown).
    async fn duration_min(&self, order: &Order) -> u32 {
        match self.store.catalog().await {
            Ok(c) => c
                .service(&order.service_code)
                .map(|s| s.duration_min)
                .unwrap_or(30),
            Err(_) => 30,
        }
    }

    /// Raises an SOS (see the module doc). `true` with a new alarm, `false`
    /// with the nurse's SOS that is still unresolved.
    pub async fn sos(
        &self,
        ctx: &NurseCtx,
        location: Option<StepPosition>,
        note: Option<&str>,
    ) -> Result<SosOutcome, TrackingError> {
        let now = Utc::now();
        let position = match location {
            Some(p) => Some(p.validate(self.settings.max_accuracy_m)?),
            None => self
                .latest_position(ctx, now, None)
                .await
                .map(|(p, a, _)| (p, a)),
        };
        let open = self
            .store
            .nurse_open_alarms(ctx.id)
            .await
            .map_err(TrackingError::store)?;
        if let Some(existing) = open.iter().find(|a| a.kind == AlarmKind::Sos) {
            return Ok((AlarmView::from(existing), false));
        }
        let job = self
            .store
            .active_order_for_nurse(ctx.id)
            .await
            .map_err(TrackingError::store)?
            .map(|o| o.id);
        let alarm = Alarm::raise(
            ctx.org.clone(),
            ctx.id,
            job,
            AlarmKind::Sos,
            position.map(|p| p.0),
            position.map(|p| p.1),
            note,
            now,
        )
        .map_err(TrackingError::Clinical)?;
        self.store
            .insert_alarm(&alarm)
            .await
            .map_err(TrackingError::store)?;
        tracing::warn!(alarm_id = %alarm.id, nurse_id = %ctx.id, org = %ctx.org, "SOS raised");
        metrics::counter!("nurse_alarms_total", "kind" => "sos").increment(1);
        self.tell_alarm(&alarm, now).await;
        Ok((AlarmView::from(&alarm), true))
    }

    /// Tells the organisation's coordinators and the nurse's phone.
    pub(crate) async fn tell_alarm(&self, alarm: &Alarm, now: DateTime<Utc>) {
        for b in yixin_contracts::safety::alarm_changed(alarm, now) {
            self.send(&b).await;
        }
    }

    async fn send(&self, b: &Broadcast) {
        if let Err(e) = self.queue.broadcast(&b.channel, &b.payload).await {
            tracing::warn!(channel = %b.channel, error = %e, "safety event not broadcast");
        }
    }

    /// The nurse checks in on her visit: the timer re-arms.
    pub async fn check_in(
        &self,
        ctx: &NurseCtx,
        order_id: OrderId,
    ) -> Result<CheckInView, TrackingError> {
        let order = self
            .store
            .get_order(order_id)
            .await
            .map_err(TrackingError::store)?
            .filter(|o| o.nurse_id == Some(ctx.id))
            .ok_or(TrackingError::JobNotFound)?;
        if !matches!(order.status, OrderStatus::Arrived | OrderStatus::InService) {
            return Err(TrackingError::StepOutOfOrder {
                step: "check_in",
                current: order.status.as_str().to_owned(),
            });
        }
        let now = Utc::now();
        let next = next_check_in_due(now, secs(self.safety.check_in_grace_secs));
        self.store
            .record_check_in(order_id, now, next)
            .await
            .map_err(TrackingError::store)?;
        Ok(CheckInView {
            order_id: order_id.to_string(),
            next_check_in_due: next,
        })
    }

    /// The nurse's unresolved alarms, newest first.
    pub async fn my_alarms(&self, ctx: &NurseCtx) -> Result<Vec<AlarmView>, TrackingError> {
        Ok(self
            .store
            .nurse_open_alarms(ctx.id)
            .await
            .map_err(TrackingError::store)?
            .iter()
            .map(AlarmView::from)
            .collect())
    }
}

async fn nurse(svc: &NurseTracking, caller: &NurseCaller) -> Result<NurseCtx, ApiError> {
    let ctx = svc.tracker.resolve(&caller.0).await?;
    svc.tracker.fleet_write().seen(ctx.id, Utc::now());
    Ok(ctx)
}

/// One-key alarm: tells every coordinator of the organisation at once
/// (and, unacknowledged after `safety.escalate_after_secs`, the
/// organisation's escalation webhook). 201 with the new alarm; 200 with the
/// nurse's SOS that is still unresolved.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    request_body = SosRequest,
    responses(
        (status = 201, body = AlarmView),
        (status = 200, description = "An SOS of hers is still unresolved: that one", body = AlarmView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/v1/nurse/sos")]
pub async fn post_sos(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    body: Option<JsonBody<SosRequest>>,
) -> Result<HttpResponse, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let body = body.map(JsonBody::into_inner).unwrap_or_default();
    let (view, new) = svc
        .tracker
        .sos(&ctx, body.location, body.note.as_deref())
        .await?;
    Ok(if new {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// The nurse's unresolved alarms (what her app shows as raised or acknowledged).
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses((status = 200, body = [AlarmView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/nurse/alarms")]
pub async fn get_my_alarms(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
) -> Result<web::Json<Vec<AlarmView>>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    Ok(web::Json(svc.tracker.my_alarms(&ctx).await?))
}

/// Checks in on the visit (at the door or in service): the lone-worker
/// timer re-arms for `safety.check_in_grace_secs`.
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = CheckInView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`step_out_of_order`: not at the door or in service", body = ErrorBody),
    )
)]
#[post("/v1/nurse/orders/{id}/check-in")]
pub async fn post_check_in(
    caller: NurseCaller,
    svc: web::Data<NurseTracking>,
    id: web::Path<String>,
) -> Result<web::Json<CheckInView>, ApiError> {
    let ctx = nurse(&svc, &caller).await?;
    let order = id
        .parse()
        .map(OrderId)
        .map_err(|_| ApiError::from(TrackingError::JobNotFound))?;
    Ok(web::Json(svc.tracker.check_in(&ctx, order).await?))
}

// ---- the safety worker ----

/// What the escalation webhook receives (signed like every webhook:
/// `X-Yixin-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).
#[derive(Debug, Serialize)]
struct Escalation<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    org_id: &'a str,
    alarm: &'a AlarmView,
    nurse_name: Option<String>,
    nurse_phone: Option<String>,
}

/// Scans for alarms to escalate and visits to check until `shutdown`.
pub(crate) async fn run(tracker: Arc<Tracker>, mut shutdown: watch::Receiver<bool>) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_millis(
            tracker.safety.escalation_timeout_ms.max(1),
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "safety worker: no HTTP client; escalation off");
            return;
        }
    };
    let every = Duration::from_millis(tracker.safety.scan_interval_ms.max(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = escalate_due(&tracker, &http).await {
            tracing::warn!(error = %e, "safety worker: alarms not scanned");
        }
        if let Err(e) = scan_visits(&tracker).await {
            tracing::warn!(error = %e, "safety worker: visits not scanned");
        }
    }
}

/// Claims each alarm due for escalation and sends it (in the background,
/// with retries), recording the outcome on the alarm.
async fn escalate_due(
    tracker: &Arc<Tracker>,
    http: &reqwest::Client,
) -> Result<(), yixin_store::StoreError> {
    let now = Utc::now();
    let lease_expired_by = now - escalation_lease(&tracker.safety);
    let due = tracker
        .store
        .alarms_to_escalate(
            now - secs(tracker.safety.escalate_after_secs),
            lease_expired_by,
            50,
        )
        .await?;
    for alarm in due {
        if !tracker
            .store
            .claim_alarm_escalation(alarm.id, now, lease_expired_by)
            .await?
        {
            continue; // another instance has it, or it was acknowledged
        }
        let tracker = tracker.clone();
        let http = http.clone();
        tokio::spawn(async move { deliver(&tracker, &http, alarm).await });
    }
    Ok(())
}

/// How long a claim on an alarm's escalation holds: the longest a delivery
/// can take (every try timing out, with the pauses between tries) plus a
/// margin of [`ESCALATION_LEASE_MARGIN_MS`]. A claim older than this with no
/// recorded outcome belonged to an instance that died mid-delivery, and the
/// next scan claims it again, so an alarm is never left unescalated.
pub fn escalation_lease(s: &yixin_platform::config::SafetySettings) -> chrono::Duration {
    let attempts = u64::from(s.escalation_attempts.max(1));
    let ms = attempts
        .saturating_mul(s.escalation_timeout_ms)
        .saturating_add((attempts - 1).saturating_mul(s.escalation_retry_ms))
        .saturating_add(ESCALATION_LEASE_MARGIN_MS);
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
}

/// Slack on top of the longest delivery before a claim counts as abandoned.
pub const ESCALATION_LEASE_MARGIN_MS: u64 = 10_000;

async fn deliver(tracker: &Tracker, http: &reqwest::Client, mut alarm: Alarm) {
    let s = &tracker.safety;
    let (Some(url), Some(secret)) = (
        s.escalation_url(alarm.org_id.as_str()),
        s.escalation_secret.as_ref(),
    ) else {
        tracing::error!(alarm_id = %alarm.id, org = %alarm.org_id, "alarm unacknowledged and no escalation webhook configured");
        record(tracker, &mut alarm, "no_endpoint", 0).await;
        return;
    };
    let nurse = tracker.store.get_nurse(alarm.nurse_id).await.ok().flatten();
    let view = AlarmView::from(&alarm);
    let body = match serde_json::to_vec(&Escalation {
        kind: "alarm_escalated",
        org_id: alarm.org_id.as_str(),
        alarm: &view,
        nurse_name: nurse.as_ref().map(|n| n.name.clone()),
        nurse_phone: nurse.as_ref().map(|n| n.phone.as_str().to_owned()),
    }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(alarm_id = %alarm.id, error = %e, "escalation not encoded");
            return;
        }
    };
    let attempts = s.escalation_attempts.max(1);
    for attempt in 1..=attempts {
        let t = Utc::now().timestamp();
        let signature = yixin_signin::sender::sign(secret.expose_secret().as_bytes(), t, &body);
        let sent = http
            .post(url)
            .header("Content-Type", "application/json")
            .header(yixin_signin::sender::SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::warn!(alarm_id = %alarm.id, attempt, "alarm escalated to the organisation's webhook");
                record(tracker, &mut alarm, "delivered", attempt).await;
                return;
            }
            Ok(r) => {
                tracing::warn!(alarm_id = %alarm.id, attempt, status = r.status().as_u16(), "escalation refused")
            }
            Err(e) => {
                tracing::warn!(alarm_id = %alarm.id, attempt, error = %e.without_url(), "escalation not sent")
            }
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(s.escalation_retry_ms)).await;
        }
    }
    tracing::error!(alarm_id = %alarm.id, "escalation failed after every try");
    record(tracker, &mut alarm, "failed", attempts).await;
}

async fn record(tracker: &Tracker, alarm: &mut Alarm, outcome: &str, attempts: u32) {
    let now = Utc::now();
    if let Err(e) = tracker
        .store
        .record_alarm_escalation(alarm.id, outcome, attempts, now)
        .await
    {
        tracing::warn!(alarm_id = %alarm.id, error = %e, "escalation outcome not recorded");
    }
    alarm.escalation = Some(outcome.to_owned());
    alarm.escalated_at = Some(now);
    // As it is now (a coordinator may have acknowledged it meanwhile).
    if let Ok(Some(current)) = tracker.store.org_alarm(&alarm.org_id, alarm.id).await {
        *alarm = current;
    }
    tracker.tell_alarm(alarm, now).await;
}

/// The lone-worker timer of every open visit: ask for a check-in when due,
/// raise `missed_check_in` when unanswered, `silent_phone` when the phone
/// has sent nothing for too long; close visits that ended elsewhere.
async fn scan_visits(tracker: &Tracker) -> Result<(), yixin_store::StoreError> {
    let s = &tracker.safety;
    let now = Utc::now();
    for check in tracker.store.open_visit_checks(500).await? {
        let order = tracker.store.get_order(check.order_id).await?;
        let at_the_visit = order.is_some_and(|o| {
            matches!(o.status, OrderStatus::Arrived | OrderStatus::InService)
                && o.nurse_id == Some(check.nurse_id)
        });
        if !at_the_visit {
            // Completed, cancelled or reassigned: no more timers.
            tracker.store.close_visit(check.order_id, now, None).await?;
            continue;
        }
        let ctx = NurseCtx {
            id: check.nurse_id,
            org: check.org_id.clone(),
        };
        // Ask for a check-in.
        if let Some(due) = check.check_in_due_at
            && check.check_in_asked_at.is_none()
            && due <= now
            && tracker
                .store
                .claim_check_in_ask(check.order_id, now)
                .await?
        {
            let by = now + secs(s.check_in_answer_secs);
            tracker
                .send(&yixin_contracts::safety::check_in_due(
                    check.order_id,
                    check.nurse_id,
                    &check.org_id,
                    by,
                    now,
                ))
                .await;
            tracing::info!(order_id = %check.order_id, nurse_id = %check.nurse_id, "check-in requested");
        }
        // No answer in time.
        if check.missed_alarm_at.is_none()
            && check
                .check_in_asked_at
                .is_some_and(|asked| now - asked >= secs(s.check_in_answer_secs))
            && tracker
                .store
                .claim_missed_check_in(check.order_id, now - secs(s.check_in_answer_secs), now)
                .await?
        {
            raise_auto(tracker, &ctx, &check, AlarmKind::MissedCheckIn, now).await?;
        }
        // A silent phone.
        if check.silent_alarm_at.is_none() {
            let last_fix = tracker.latest_position(&ctx, now, None).await.map(|p| p.2);
            let alive = [last_fix, check.last_check_in_at, check.arrived_at]
                .into_iter()
                .flatten()
                .max();
            if alive.is_some_and(|at| now - at >= secs(s.silent_after_secs))
                && tracker
                    .store
                    .claim_silent_phone(check.order_id, now)
                    .await?
            {
                raise_auto(tracker, &ctx, &check, AlarmKind::SilentPhone, now).await?;
            }
        }
    }
    Ok(())
}

async fn raise_auto(
    tracker: &Tracker,
    ctx: &NurseCtx,
    check: &VisitCheck,
    kind: AlarmKind,
    now: DateTime<Utc>,
) -> Result<(), yixin_store::StoreError> {
    let position = tracker.latest_position(ctx, now, None).await;
    let alarm = Alarm {
        id: AlarmId::new(),
        org_id: check.org_id.clone(),
        nurse_id: check.nurse_id,
        order_id: Some(check.order_id),
        kind,
        location: position.map(|p| p.0),
        accuracy_m: position.map(|p| p.1),
        note: None,
        raised_at: now,
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        resolution_note: None,
        escalated_at: None,
        escalation: None,
    };
    tracker.store.insert_alarm(&alarm).await?;
    tracing::warn!(alarm_id = %alarm.id, nurse_id = %ctx.id, kind = kind.as_str(), "automatic alarm raised");
    metrics::counter!("nurse_alarms_total", "kind" => kind.as_str()).increment(1);
    tracker.tell_alarm(&alarm, now).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escalation_lease_outlasts_the_longest_delivery() {
        let s = yixin_platform::config::SafetySettings {
            escalation_attempts: 3,
            escalation_timeout_ms: 5_000,
            escalation_retry_ms: 2_000,
            ..yixin_platform::config::SafetySettings::default()
        };
        // Three tries timing out and two pauses: 19 s, plus the margin.
        assert_eq!(
            escalation_lease(&s),
            chrono::Duration::milliseconds(19_000 + 10_000)
        );
        let one = yixin_platform::config::SafetySettings {
            escalation_attempts: 1,
            ..s
        };
        assert_eq!(
            escalation_lease(&one),
            chrono::Duration::milliseconds(15_000)
        );
    }
}
