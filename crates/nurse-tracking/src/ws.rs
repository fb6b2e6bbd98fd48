//! `GET /v1/nurse/ws`: the nurse's phone connection.
//!
//! One JSON object per text frame (API.md). The newest connection of a nurse
//! wins: on connect it announces itself on `nurse-conn:{id}`, and any older
//! connection (on this instance or another) closes with 4001. Offers and
//! their closing arrive on `nurse:{id}` from whichever instance made them;
//! the connection also follows its offer's and its job's order channel, so
//! a cancellation or another nurse's win reaches the phone at once.
//!
//! Nothing a phone sends can take the service down: a malformed or unknown
//! frame gets an `error` frame and the socket stays open; a frame larger
//! than `tracking.max_frame_bytes` closes it with 1009; a flood past the
//! per-connection rate closes it with 1008 (policy violation).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::Session;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use yixin_auth::{NurseCaller, authenticate};
use yixin_contracts::{Event, decode_envelope};
use yixin_domain::{OfferClosedReason, OfferId, OrderId, OrderStatus, ShiftState};
use yixin_platform::ws::{self, WsHandler, WsLimits, WsResult, WsStop};
use yixin_platform::{ApiError, ErrorBody};
use yixin_queue::Subscription;

use crate::NurseTracking;
use crate::errors::TrackingError;
use crate::frames::{ClientFrame, FixIn, OfferView, ServerFrame, ServiceName, ShiftIn};
use crate::notify::for_nurse;
use crate::service::{NurseCtx, Tracker};
use yixin_contracts::{connection_channel, nurse_channel, order_channel};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Close code telling an old connection a newer one replaced it.
pub const CLOSE_REPLACED: u16 = ws::REPLACED;
/// Close code telling a phone its nurse was deactivated.
pub const CLOSE_DEACTIVATED: u16 = ws::DEACTIVATED;
/// Announced on a nurse's connection channel when they are deactivated.
pub const DEACTIVATED: &str = "deactivated";

/// The nurse's phone socket (token as `?token=` or the Authorization header).
#[utoipa::path(
    tag = "nurse",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "WebSocket: offers, assignments and closings; the phone sends locations, shift, answers and steps (frames in `/asyncapi.json`)"),
        (status = 400, description = "`websocket_required`: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, description = "Offers cannot be delivered now (the queue is down)", body = ErrorBody),
    )
)]
#[get("/v1/nurse/ws")]
pub async fn nurse_ws(
    req: HttpRequest,
    payload: web::Payload,
    svc: web::Data<NurseTracking>,
) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&req)?;
    claims
        .require_role(NurseCaller::ROLE)
        .map_err(ApiError::from)?;
    let tracker = svc.tracker.clone();
    let ctx = tracker.resolve(&claims).await?;
    let unavailable = |e: yixin_queue::QueueError| {
        ApiError::BackendUnavailable(format!("offers cannot be delivered now: {e}"))
    };
    // Subscribe before the upgrade, so nothing sent meanwhile is missed.
    let events = tracker
        .queue
        .subscribe(&nurse_channel(ctx.id))
        .await
        .map_err(unavailable)?;
    let control = tracker
        .queue
        .subscribe(&connection_channel(ctx.id))
        .await
        .map_err(unavailable)?;
    // A Redis outage loses what was published meanwhile: on recovery the
    // socket sends its job and live offer again.
    let tracker_queue_status = tracker.queue.pubsub_status();
    let seen_generation = tracker_queue_status.borrow().generation;
    let settings = &tracker.settings;
    let limits = WsLimits {
        ping_interval: Duration::from_secs(settings.heartbeat_secs.max(1)),
        pong_timeout: Duration::from_secs(settings.client_timeout_secs.max(1)),
        max_frame_bytes: settings.max_frame_bytes,
        messages_per_second: settings.frames_per_second,
        burst: settings.frames_burst,
    };
    let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let connection = Connection {
        // Announced to older connections; ordered by when the socket opened,
        // so an older connection's late announcement never closes a newer one.
        token: format!(
            "{:020}:{}:{id:020}",
            Utc::now().timestamp_nanos_opt().unwrap_or(0),
            svc.instance
        ),
        id,
        tracker,
        ctx,
        sub: claims.sub.clone(),
        from: yixin_platform::http::client_addr(&req),
        offer: None,
        offer_watch: None,
        job: None,
        job_watch: None,
        events,
        control,
        seen_generation,
        pubsub: tracker_queue_status,
    };
    ws::serve(
        &req,
        payload,
        limits,
        Some(svc.shutdown.clone()),
        connection,
    )
}

#[derive(Debug, Clone, Copy)]
struct HeldOffer {
    offer_id: OfferId,
    order_id: OrderId,
    expires_at: DateTime<Utc>,
}

struct Connection {
    tracker: Arc<Tracker>,
    ctx: NurseCtx,
    id: u64,
    token: String,
    /// The caller's `sub` and address, for the audit trail.
    sub: String,
    from: Option<String>,
    offer: Option<HeldOffer>,
    offer_watch: Option<Subscription>,
    job: Option<OrderId>,
    job_watch: Option<Subscription>,
    /// Offers and assignments for this nurse (`nurse:{id}`).
    events: Subscription,
    /// Newer connections and deactivation (`nurse-conn:{id}`).
    control: Subscription,
    /// The queue's pub/sub state: after a recovery, offers and closings
    /// published while it was down are lost, so the state is sent again.
    pubsub: tokio::sync::watch::Receiver<yixin_queue::PubSubStatus>,
    /// The last recovery this socket re-greeted after.
    seen_generation: u64,
}

/// What a nurse's socket waits for besides the phone.
enum NurseInput {
    NurseEvent(Vec<u8>),
    Control(Vec<u8>),
    OrderEvent(Vec<u8>),
    OfferDeadline,
    /// Pub/sub came back after an outage.
    Recovered,
}

async fn next_of(sub: &mut Option<Subscription>) -> Vec<u8> {
    match sub {
        Some(s) => match s.next().await {
            Some(m) => m,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<DateTime<Utc>>) {
    match deadline {
        Some(at) => {
            let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}

impl WsHandler for Connection {
    type Event = NurseInput;

    async fn open(&mut self, session: &mut Session) -> WsResult {
        let nurse = self.ctx.id;
        self.tracker.fleet_write().connected(nurse, self.id);
        metrics::gauge!("nurse_connections").increment(1.0);
        // Older connections of this nurse, anywhere, close now.
        if let Err(e) = self
            .tracker
            .queue
            .broadcast(&connection_channel(nurse), self.token.as_bytes())
            .await
        {
            tracing::warn!(nurse_id = %nurse, error = %e, "could not announce the new connection");
        }
        self.greet(session).await
    }

    async fn next_event(&mut self) -> Option<NurseInput> {
        let deadline = self.offer.map(|o| o.expires_at);
        tokio::select! {
            e = self.events.next() => e.map(NurseInput::NurseEvent),
            c = self.control.next() => c.map(NurseInput::Control),
            e = next_of(&mut self.offer_watch) => Some(NurseInput::OrderEvent(e)),
            e = next_of(&mut self.job_watch) => Some(NurseInput::OrderEvent(e)),
            () = until(deadline) => Some(NurseInput::OfferDeadline),
            _ = yixin_queue::recovered(&mut self.pubsub, &mut self.seen_generation) => Some(NurseInput::Recovered),
        }
    }

    async fn on_event(&mut self, session: &mut Session, input: NurseInput) -> WsResult {
        match input {
            NurseInput::NurseEvent(bytes) => self.on_nurse_event(session, &bytes).await,
            NurseInput::Control(token) if token == DEACTIVATED.as_bytes() => Err(WsStop::Close(
                CLOSE_DEACTIVATED,
                "the nurse was deactivated",
            )),
            NurseInput::Control(token) => {
                // Fixed-width fields: byte order is time order.
                if token.as_slice() > self.token.as_bytes() {
                    return Err(WsStop::Close(
                        CLOSE_REPLACED,
                        "replaced by a newer connection",
                    ));
                }
                Ok(())
            }
            NurseInput::OrderEvent(bytes) => self.on_order_event(session, &bytes).await,
            NurseInput::Recovered => self.regreet(session).await,
            NurseInput::OfferDeadline => {
                let Some(held) = self.offer.take() else {
                    return Ok(());
                };
                self.offer_watch = None;
                send(
                    session,
                    &ServerFrame::OfferClosed {
                        offer_id: held.offer_id.to_string(),
                        reason: OfferClosedReason::Expired,
                    },
                )
                .await
            }
        }
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) -> WsResult {
        self.on_frame(session, text).await
    }

    async fn on_binary(&mut self, session: &mut Session, _bytes: &[u8]) -> WsResult {
        let e = TrackingError::BadFrame("frames are JSON text, not binary".into());
        send(session, &ServerFrame::error(&e)).await
    }

    async fn closed(&mut self, code: Option<u16>) {
        self.tracker
            .fleet_write()
            .disconnected(self.ctx.id, self.id, Utc::now());
        metrics::gauge!("nurse_connections").decrement(1.0);
        let reason = match code {
            Some(ws::POLICY_VIOLATION) => "flood",
            Some(ws::MESSAGE_TOO_BIG) => "oversize",
            _ => return,
        };
        metrics::counter!("nurse_ws_closed_total", "reason" => reason).increment(1);
    }
}

impl Connection {
    /// The audit row for an `assigned` frame (address and phone shown).
    async fn audit_read(&self, order_id: &str) {
        self.tracker
            .audit_reads(&self.ctx, &self.sub, &[order_id], self.from.clone(), "ws")
            .await;
    }

    /// A phone that (re)connects gets its live offer, current job and next
    /// job again.
    async fn greet(&mut self, session: &mut Session) -> WsResult {
        match self.tracker.jobs(&self.ctx).await {
            Ok(jobs) => {
                for job in jobs {
                    if !job.next
                        && let Ok(id) = job.order_id.parse().map(OrderId)
                    {
                        self.watch_job(id).await;
                    }
                    self.audit_read(&job.order_id).await;
                    send(session, &ServerFrame::Assigned(job)).await?;
                }
            }
            Err(e) => tracing::warn!(nurse_id = %self.ctx.id, error = %e, "current job not read"),
        }
        match self.tracker.live_offer(&self.ctx).await {
            Ok(Some(offer)) => self.hold_offer(session, offer).await?,
            Ok(None) => {}
            Err(e) => tracing::warn!(nurse_id = %self.ctx.id, error = %e, "live offer not read"),
        }
        Ok(())
    }

    /// After a pub/sub outage: the job and live offer again (an offer made
    /// while this instance was not subscribed reaches the phone now), and
    /// `offer_closed` for a held offer that closed meanwhile.
    async fn regreet(&mut self, session: &mut Session) -> WsResult {
        let held = self.offer.take();
        self.offer_watch = None;
        metrics::counter!("nurse_socket_regreets_total").increment(1);
        self.greet(session).await?;
        if let Some(held) = held
            && self.offer.is_none_or(|o| o.offer_id != held.offer_id)
        {
            let reason = if held.expires_at <= Utc::now() {
                OfferClosedReason::Expired
            } else {
                OfferClosedReason::Taken
            };
            send(
                session,
                &ServerFrame::OfferClosed {
                    offer_id: held.offer_id.to_string(),
                    reason,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn on_frame(&mut self, session: &mut Session, text: &str) -> WsResult {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => return send(session, &ServerFrame::error(&e)).await,
        };
        let tracker = self.tracker.clone();
        let ctx = self.ctx.clone();
        match frame {
            ClientFrame::Location {
                lat,
                lng,
                accuracy_m,
                ts,
            } => {
                let fix = [FixIn {
                    lat,
                    lng,
                    accuracy_m,
                    ts,
                }];
                self.report_ingest(session, tracker.ingest(&ctx, &fix, ""))
                    .await
            }
            ClientFrame::Locations { fixes } => {
                self.report_ingest(session, tracker.ingest(&ctx, &fixes, "fixes"))
                    .await
            }
            ClientFrame::Shift { state } => {
                let state = match state {
                    ShiftIn::On => ShiftState::On,
                    ShiftIn::Off => ShiftState::Off,
                };
                match tracker.set_shift(&ctx, state).await {
                    Ok(()) => {
                        if state == ShiftState::Off {
                            self.drop_offer();
                        }
                        send(session, &ack("shift", None, Some(state.as_str()))).await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
            ClientFrame::Accept { offer_id } => {
                let Some(id) = parse_offer(session, &offer_id).await? else {
                    return Ok(());
                };
                match tracker.accept(&ctx, id).await {
                    Ok(job) => {
                        self.drop_offer();
                        // A next job: the socket keeps following the
                        // current one until it ends.
                        if !job.next
                            && let Ok(order) = job.order_id.parse().map(OrderId)
                        {
                            self.watch_job(order).await;
                        }
                        self.audit_read(&job.order_id).await;
                        send(session, &ServerFrame::Assigned(job)).await
                    }
                    Err(TrackingError::OfferClosed(reason)) => {
                        self.drop_offer_if(id);
                        send(session, &ServerFrame::OfferClosed { offer_id, reason }).await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
            ClientFrame::Decline { offer_id, reason } => {
                let Some(id) = parse_offer(session, &offer_id).await? else {
                    return Ok(());
                };
                match tracker.decline(&ctx, id, reason).await {
                    Ok(()) => {
                        self.drop_offer_if(id);
                        send(session, &ack("decline", Some(offer_id), Some("declined"))).await
                    }
                    Err(TrackingError::OfferClosed(reason)) => {
                        self.drop_offer_if(id);
                        send(session, &ServerFrame::OfferClosed { offer_id, reason }).await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
            ClientFrame::Sos {
                lat,
                lng,
                accuracy_m,
                note,
            } => {
                let location = match (lat, lng) {
                    (Some(lat), Some(lng)) => Some(crate::safety::StepPosition {
                        lat,
                        lng,
                        accuracy_m,
                    }),
                    _ => None,
                };
                match tracker.sos(&ctx, location, note.as_deref()).await {
                    Ok((alarm, _)) => {
                        send(session, &ack("sos", Some(alarm.id), Some(&alarm.state))).await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
            ClientFrame::CheckIn { order_id } => {
                let Ok(id) = order_id.parse().map(OrderId) else {
                    let e = TrackingError::InvalidId {
                        what: "order_id",
                        value: order_id.chars().take(64).collect(),
                    };
                    return send(session, &ServerFrame::error(&e)).await;
                };
                match tracker.check_in(&ctx, id).await {
                    Ok(_) => {
                        send(
                            session,
                            &ack("check_in", Some(order_id), Some("checked_in")),
                        )
                        .await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
            ClientFrame::Progress {
                order_id,
                step,
                consent_by,
                location,
            } => {
                let Ok(id) = order_id.parse().map(OrderId) else {
                    let e = TrackingError::InvalidId {
                        what: "order_id",
                        value: order_id.chars().take(64).collect(),
                    };
                    return send(session, &ServerFrame::error(&e)).await;
                };
                match tracker
                    .progress_at(&ctx, id, step, consent_by, location)
                    .await
                {
                    Ok(job) => {
                        if job.status == OrderStatus::Completed {
                            self.job = None;
                            self.job_watch = None;
                        }
                        send(
                            session,
                            &ack("progress", Some(order_id), Some(job.status.as_str())),
                        )
                        .await
                    }
                    Err(e) => send(session, &ServerFrame::error(&e)).await,
                }
            }
        }
    }

    async fn report_ingest(
        &mut self,
        session: &mut Session,
        report: Result<crate::service::IngestReport, TrackingError>,
    ) -> WsResult {
        match report {
            // Accepted fixes are not acknowledged: they are the bulk of the traffic.
            Ok(report) => {
                for refused in report.refused.iter().take(3) {
                    send(
                        session,
                        &ServerFrame::Error {
                            code: refused.code.clone(),
                            message: refused.message.clone(),
                            field: refused.field.clone(),
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            Err(e) => send(session, &ServerFrame::error(&e)).await,
        }
    }

    async fn on_nurse_event(&mut self, session: &mut Session, bytes: &[u8]) -> WsResult {
        let Some(event) = decode_envelope(bytes).ok().and_then(|e| e.event) else {
            tracing::debug!(nurse_id = %self.ctx.id, "undecodable event on the nurse channel");
            return Ok(());
        };
        if !for_nurse(&event, self.ctx.id) {
            return Ok(());
        }
        match event {
            Event::OfferMade(e) => {
                let Ok(expires_at) =
                    chrono::DateTime::from_timestamp_millis(e.expires_at_unix_ms).ok_or(())
                else {
                    return Ok(());
                };
                if expires_at <= Utc::now()
                    || self
                        .offer
                        .is_some_and(|o| o.offer_id.to_string() == e.offer_id)
                {
                    return Ok(()); // late, or a duplicate delivery
                }
                let view = OfferView {
                    offer_id: e.offer_id,
                    order_id: e.order_id,
                    service: ServiceName::new(
                        e.service_code.clone(),
                        e.service_name_zh,
                        e.service_name_en,
                    ),
                    service_code: e.service_code,
                    distance_m: e.distance_m,
                    eta_min: e.eta_min,
                    area: e.area,
                    place: (!e.place.is_empty()).then_some(e.place),
                    expires_at,
                    flags: e.flags,
                    chained: e.free_at_unix_ms.is_some(),
                    free_at: e
                        .free_at_unix_ms
                        .and_then(chrono::DateTime::from_timestamp_millis),
                };
                self.hold_offer(session, view).await
            }
            Event::OrderStatusChanged(e) if e.to == OrderStatus::Assigned.as_str() => {
                // Assigned by someone else (a coordinator): the phone gets the job.
                if self.job.is_some_and(|j| j.to_string() == e.order_id) {
                    return Ok(());
                }
                match self.tracker.jobs(&self.ctx).await {
                    Ok(jobs) => {
                        let Some(job) = jobs.into_iter().find(|j| j.order_id == e.order_id) else {
                            return Ok(());
                        };
                        // A next job is shown under the current one; the
                        // socket follows it once it is current.
                        if !job.next
                            && let Ok(id) = job.order_id.parse().map(OrderId)
                        {
                            self.watch_job(id).await;
                        }
                        self.audit_read(&job.order_id).await;
                        send(session, &ServerFrame::Assigned(job)).await
                    }
                    Err(err) => {
                        tracing::warn!(nurse_id = %self.ctx.id, error = %err, "assigned job not read");
                        Ok(())
                    }
                }
            }
            Event::OrderStatusChanged(e)
                if e.from == OrderStatus::Assigned.as_str()
                    && e.to == OrderStatus::Pending.as_str() =>
            {
                // Her next job taken back (the overrun rule).
                send(
                    session,
                    &ServerFrame::OrderReassigned {
                        order_id: e.order_id,
                        reason: "overrun".to_owned(),
                    },
                )
                .await
            }
            Event::OfferClosed(e) => {
                let reason = match yixin_contracts::pb::offer_closed::Reason::try_from(e.reason) {
                    Ok(yixin_contracts::pb::offer_closed::Reason::Taken) => {
                        OfferClosedReason::Taken
                    }
                    Ok(yixin_contracts::pb::offer_closed::Reason::Cancelled) => {
                        OfferClosedReason::Cancelled
                    }
                    _ => OfferClosedReason::Expired,
                };
                if let Ok(id) = e.offer_id.parse().map(OfferId) {
                    self.drop_offer_if(id);
                    self.tracker.fleet_write().set_offer(self.ctx.id, None);
                }
                send(
                    session,
                    &ServerFrame::OfferClosed {
                        offer_id: e.offer_id,
                        reason,
                    },
                )
                .await
            }
            Event::AlarmChanged(e) => {
                send(
                    session,
                    &ServerFrame::Alarm {
                        alarm_id: e.alarm_id,
                        kind: e.kind,
                        state: e.state,
                        order_id: e.order_id,
                        at: chrono::DateTime::from_timestamp_millis(e.at_unix_ms),
                    },
                )
                .await
            }
            Event::CheckInDue(e) => {
                send(
                    session,
                    &ServerFrame::CheckInDue {
                        order_id: e.order_id,
                        by: chrono::DateTime::from_timestamp_millis(e.by_unix_ms),
                    },
                )
                .await
            }
            Event::RepositionSuggested(e) => {
                let until = chrono::DateTime::from_timestamp_millis(e.until_unix_ms);
                // A late delivery of a suggestion that ran out is dropped;
                // so is one while she holds an offer or a job.
                let (Some(until), Ok(to)) = (until, yixin_domain::GeoPoint::new(e.lat, e.lng))
                else {
                    return Ok(());
                };
                if until <= Utc::now() || self.offer.is_some() || self.job.is_some() {
                    return Ok(());
                }
                send(
                    session,
                    &ServerFrame::Suggestion {
                        location: to.into(),
                        cell: e.cell,
                        expected_orders: e.expected_orders,
                        distance_m: e.distance_m,
                        reason: e.reason,
                        until,
                    },
                )
                .await
            }
            Event::SuggestionCleared(e) => {
                send(
                    session,
                    &ServerFrame::SuggestionCleared { reason: e.reason },
                )
                .await
            }
            _ => Ok(()),
        }
    }

    /// Changes of the offer's or the job's order.
    async fn on_order_event(&mut self, session: &mut Session, bytes: &[u8]) -> WsResult {
        let Some(Event::OrderStatusChanged(e)) = decode_envelope(bytes).ok().and_then(|e| e.event)
        else {
            return Ok(());
        };
        let me = self.ctx.id.to_string();
        if let Some(held) = self.offer
            && held.order_id.to_string() == e.order_id
        {
            let reason = if e.to == OrderStatus::Cancelled.as_str() {
                Some(OfferClosedReason::Cancelled)
            } else if e.nurse_id.as_deref().is_some_and(|n| n != me) {
                Some(OfferClosedReason::Taken)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.drop_offer();
                self.tracker.fleet_write().set_offer(self.ctx.id, None);
                send(
                    session,
                    &ServerFrame::OfferClosed {
                        offer_id: held.offer_id.to_string(),
                        reason,
                    },
                )
                .await?;
            }
        }
        if let Some(job) = self.job
            && job.to_string() == e.order_id
            && e.to == OrderStatus::Cancelled.as_str()
        {
            self.job = None;
            self.job_watch = None;
            self.tracker.fleet_write().set_job(self.ctx.id, None);
            send(
                session,
                &ServerFrame::OrderCancelled {
                    order_id: e.order_id,
                },
            )
            .await?;
            // Her next job, if she had one, is her current job now.
            if let Ok(jobs) = self.tracker.jobs(&self.ctx).await
                && let Some(job) = jobs.into_iter().find(|j| !j.next)
            {
                if let Ok(id) = job.order_id.parse().map(OrderId) {
                    self.watch_job(id).await;
                }
                self.audit_read(&job.order_id).await;
                send(session, &ServerFrame::Assigned(job)).await?;
            }
        }
        Ok(())
    }

    async fn hold_offer(&mut self, session: &mut Session, view: OfferView) -> WsResult {
        let (Ok(offer_id), Ok(order_id)) = (
            view.offer_id.parse().map(OfferId),
            view.order_id.parse().map(OrderId),
        ) else {
            return Ok(());
        };
        self.offer = Some(HeldOffer {
            offer_id,
            order_id,
            expires_at: view.expires_at,
        });
        self.tracker
            .fleet_write()
            .set_offer(self.ctx.id, Some((offer_id, view.expires_at)));
        self.offer_watch = self
            .tracker
            .queue
            .subscribe(&order_channel(order_id))
            .await
            .map_err(|e| tracing::warn!(%order_id, error = %e, "offer's order not followed"))
            .ok();
        send(session, &ServerFrame::Offer(view)).await
    }

    async fn watch_job(&mut self, order_id: OrderId) {
        self.job = Some(order_id);
        self.job_watch = self
            .tracker
            .queue
            .subscribe(&order_channel(order_id))
            .await
            .map_err(|e| tracing::warn!(%order_id, error = %e, "job's order not followed"))
            .ok();
    }

    fn drop_offer(&mut self) {
        self.offer = None;
        self.offer_watch = None;
    }

    fn drop_offer_if(&mut self, id: OfferId) {
        if self.offer.is_some_and(|o| o.offer_id == id) {
            self.drop_offer();
        }
    }
}

async fn parse_offer(session: &mut Session, raw: &str) -> Result<Option<OfferId>, WsStop> {
    match raw.parse().map(OfferId) {
        Ok(id) => Ok(Some(id)),
        Err(_) => {
            let e = TrackingError::InvalidId {
                what: "offer_id",
                value: raw.chars().take(64).collect(),
            };
            send(session, &ServerFrame::error(&e)).await.map(|()| None)
        }
    }
}

fn ack(request: &str, id: Option<String>, status: Option<&str>) -> ServerFrame {
    ServerFrame::Ack {
        request: request.to_owned(),
        id,
        status: status.map(str::to_owned),
    }
}

async fn send(session: &mut Session, frame: &ServerFrame) -> WsResult {
    ws::send_json(session, frame).await
}
