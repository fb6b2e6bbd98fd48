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
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use yixin_auth::{NurseCaller, authenticate};
use yixin_domain::{OfferClosedReason, OfferId, OrderId, OrderStatus, ShiftState};
use yixin_platform::{ApiError, ErrorBody};
use yixin_proto::{Event, decode_envelope};
use yixin_queue::Subscription;

use crate::NurseTracking;
use crate::errors::TrackingError;
use crate::frames::{ClientFrame, FixIn, OfferView, ServerFrame, ShiftIn};
use crate::notify::{connection_channel, for_nurse, nurse_channel};
use crate::service::{NurseCtx, Tracker};

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Close code telling an old connection a newer one replaced it.
pub const CLOSE_REPLACED: u16 = 4001;
/// Close code telling a phone its nurse was deactivated.
pub const CLOSE_DEACTIVATED: u16 = 4003;
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
        ApiError::Unavailable(format!("offers cannot be delivered now: {e}"))
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
    let (response, session, stream) = actix_ws::handle(&req, payload)
        .map_err(|e| ApiError::bad_request("websocket_required", e.to_string()))?;
    let max = tracker.settings.max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
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
        bucket: TokenBucket::new(
            tracker.settings.frames_per_second,
            tracker.settings.frames_burst,
        ),
        tracker,
        ctx,
        offer: None,
        offer_watch: None,
        job: None,
        job_watch: None,
        shutdown: svc.shutdown.clone(),
    };
    actix_web::rt::spawn(connection.run(session, stream, events, control));
    Ok(response)
}

/// A per-connection token bucket: `rate` frames a second sustained, `burst` at once.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            rate: f64::from(rate.max(1)),
            burst,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
    bucket: TokenBucket,
    offer: Option<HeldOffer>,
    offer_watch: Option<Subscription>,
    job: Option<OrderId>,
    job_watch: Option<Subscription>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

enum Input {
    Client(Option<Result<AggregatedMessage, ProtocolError>>),
    NurseEvent(Option<Vec<u8>>),
    Control(Option<Vec<u8>>),
    OrderEvent(Vec<u8>),
    OfferDeadline,
    Heartbeat,
    Stop,
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

async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn close(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.to_owned()),
    })
}

impl Connection {
    async fn run(
        mut self,
        mut session: actix_ws::Session,
        mut stream: actix_ws::AggregatedMessageStream,
        mut events: Subscription,
        mut control: Subscription,
    ) {
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
        let reason = match self.greet(&mut session).await {
            Ok(()) => {
                self.serve(&mut session, &mut stream, &mut events, &mut control)
                    .await
            }
            Err(()) => None,
        };
        self.tracker
            .fleet_write()
            .disconnected(nurse, self.id, Utc::now());
        metrics::gauge!("nurse_connections").decrement(1.0);
        let _ = session.close(reason).await;
    }

    /// A phone that (re)connects gets its live offer and current job again.
    async fn greet(&mut self, session: &mut actix_ws::Session) -> Result<(), ()> {
        match self.tracker.current_job(&self.ctx).await {
            Ok(Some(job)) => {
                if let Ok(id) = job.order_id.parse().map(OrderId) {
                    self.watch_job(id).await;
                }
                send(session, &ServerFrame::Assigned(job)).await?;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(nurse_id = %self.ctx.id, error = %e, "current job not read"),
        }
        match self.tracker.live_offer(&self.ctx).await {
            Ok(Some(offer)) => self.hold_offer(session, offer).await?,
            Ok(None) => {}
            Err(e) => tracing::warn!(nurse_id = %self.ctx.id, error = %e, "live offer not read"),
        }
        Ok(())
    }

    async fn serve(
        &mut self,
        session: &mut actix_ws::Session,
        stream: &mut actix_ws::AggregatedMessageStream,
        events: &mut Subscription,
        control: &mut Subscription,
    ) -> Option<CloseReason> {
        let settings = &self.tracker.settings;
        let timeout = Duration::from_secs(settings.client_timeout_secs.max(1));
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(settings.heartbeat_secs.max(1)));
        heartbeat.tick().await;
        let mut last_seen = Instant::now();
        let mut shutdown = self.shutdown.clone();
        loop {
            let deadline = self.offer.map(|o| o.expires_at);
            let input = tokio::select! {
                m = stream.recv() => Input::Client(m),
                e = events.next() => Input::NurseEvent(e),
                c = control.next() => Input::Control(c),
                e = next_of(&mut self.offer_watch) => Input::OrderEvent(e),
                e = next_of(&mut self.job_watch) => Input::OrderEvent(e),
                _ = until(deadline) => Input::OfferDeadline,
                _ = heartbeat.tick() => Input::Heartbeat,
                _ = stopping(&mut shutdown) => Input::Stop,
            };
            let result = match input {
                Input::Client(message) => match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        last_seen = Instant::now();
                        if !self.bucket.take_at(last_seen) {
                            metrics::counter!("nurse_ws_closed_total", "reason" => "flood")
                                .increment(1);
                            return close(CloseCode::Policy, "too many frames");
                        }
                        self.on_text(session, &text).await
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        last_seen = Instant::now();
                        if !self.bucket.take_at(last_seen) {
                            return close(CloseCode::Policy, "too many frames");
                        }
                        let e = TrackingError::BadFrame("frames are JSON text, not binary".into());
                        send(session, &ServerFrame::error(&e)).await
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        last_seen = Instant::now();
                        session.pong(&bytes).await.map_err(|_| ())
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {
                        last_seen = Instant::now();
                        Ok(())
                    }
                    Some(Ok(AggregatedMessage::Close(reason))) => return reason,
                    Some(Err(ProtocolError::Overflow)) => {
                        metrics::counter!("nurse_ws_closed_total", "reason" => "oversize")
                            .increment(1);
                        return close(CloseCode::Size, "frame too large");
                    }
                    Some(Err(_)) => return close(CloseCode::Protocol, "protocol error"),
                    None => return None,
                },
                Input::NurseEvent(Some(bytes)) => self.on_nurse_event(session, &bytes).await,
                Input::NurseEvent(None) | Input::Control(None) => {
                    return close(CloseCode::Restart, "event feed lost; reconnect");
                }
                Input::Control(Some(token)) if token == DEACTIVATED.as_bytes() => {
                    return close(
                        CloseCode::Other(CLOSE_DEACTIVATED),
                        "the nurse was deactivated",
                    );
                }
                Input::Control(Some(token)) => {
                    // Fixed-width fields: byte order is time order.
                    if token.as_slice() > self.token.as_bytes() {
                        return close(
                            CloseCode::Other(CLOSE_REPLACED),
                            "replaced by a newer connection",
                        );
                    }
                    Ok(())
                }
                Input::OrderEvent(bytes) => self.on_order_event(session, &bytes).await,
                Input::OfferDeadline => {
                    if let Some(held) = self.offer.take() {
                        self.offer_watch = None;
                        send(
                            session,
                            &ServerFrame::OfferClosed {
                                offer_id: held.offer_id.to_string(),
                                reason: OfferClosedReason::Expired,
                            },
                        )
                        .await
                    } else {
                        Ok(())
                    }
                }
                Input::Heartbeat => {
                    if last_seen.elapsed() > timeout {
                        return close(CloseCode::Away, "no answer to pings");
                    }
                    session.ping(b"").await.map_err(|_| ())
                }
                Input::Stop => return close(CloseCode::Restart, "server restarting"),
            };
            if result.is_err() {
                return None; // the socket is gone
            }
        }
    }

    async fn on_text(&mut self, session: &mut actix_ws::Session, text: &str) -> Result<(), ()> {
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
                        if let Ok(order) = job.order_id.parse().map(OrderId) {
                            self.watch_job(order).await;
                        }
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
            ClientFrame::Progress { order_id, step } => {
                let Ok(id) = order_id.parse().map(OrderId) else {
                    let e = TrackingError::InvalidId {
                        what: "order_id",
                        value: order_id.chars().take(64).collect(),
                    };
                    return send(session, &ServerFrame::error(&e)).await;
                };
                match tracker.progress(&ctx, id, step).await {
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
        session: &mut actix_ws::Session,
        report: Result<crate::service::IngestReport, TrackingError>,
    ) -> Result<(), ()> {
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

    async fn on_nurse_event(
        &mut self,
        session: &mut actix_ws::Session,
        bytes: &[u8],
    ) -> Result<(), ()> {
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
                    service_code: e.service_code,
                    distance_m: e.distance_m,
                    eta_min: e.eta_min,
                    area: e.area,
                    expires_at,
                };
                self.hold_offer(session, view).await
            }
            Event::OrderStatusChanged(e) if e.to == OrderStatus::Assigned.as_str() => {
                // Assigned by someone else (a coordinator): the phone gets the job.
                if self.job.is_some_and(|j| j.to_string() == e.order_id) {
                    return Ok(());
                }
                match self.tracker.current_job(&self.ctx).await {
                    Ok(Some(job)) if job.order_id == e.order_id => {
                        if let Ok(id) = job.order_id.parse().map(OrderId) {
                            self.watch_job(id).await;
                        }
                        send(session, &ServerFrame::Assigned(job)).await
                    }
                    Ok(_) => Ok(()),
                    Err(err) => {
                        tracing::warn!(nurse_id = %self.ctx.id, error = %err, "assigned job not read");
                        Ok(())
                    }
                }
            }
            Event::OfferClosed(e) => {
                let reason = match yixin_proto::events::v1::offer_closed::Reason::try_from(e.reason)
                {
                    Ok(yixin_proto::events::v1::offer_closed::Reason::Taken) => {
                        OfferClosedReason::Taken
                    }
                    Ok(yixin_proto::events::v1::offer_closed::Reason::Cancelled) => {
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
            _ => Ok(()),
        }
    }

    /// Changes of the offer's or the job's order.
    async fn on_order_event(
        &mut self,
        session: &mut actix_ws::Session,
        bytes: &[u8],
    ) -> Result<(), ()> {
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
        }
        Ok(())
    }

    async fn hold_offer(
        &mut self,
        session: &mut actix_ws::Session,
        view: OfferView,
    ) -> Result<(), ()> {
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
            .subscribe(&format!("order:{order_id}"))
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
            .subscribe(&format!("order:{order_id}"))
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

async fn parse_offer(session: &mut actix_ws::Session, raw: &str) -> Result<Option<OfferId>, ()> {
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

async fn send(session: &mut actix_ws::Session, frame: &ServerFrame) -> Result<(), ()> {
    let text = serde_json::to_string(frame).map_err(|_| ())?;
    session.text(text).await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10, 5);
        assert!((0..5).all(|_| b.take_at(start)));
        assert!(!b.take_at(start));
        // 100 ms later: one more token.
        assert!(b.take_at(start + Duration::from_millis(100)));
        assert!(!b.take_at(start + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..5).all(|_| b.take_at(later)));
        assert!(!b.take_at(later));
    }
}
