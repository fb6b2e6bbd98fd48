//! `GET /v1/dispatch/live`: the coordinator's live feed (WebSocket; token
//! as `?token=` or the Authorization header).
//!
//! Frames, one JSON object per text frame, each with `type`:
//! - `hello` `{org, overview}` on connect (the overview as
//!   `GET /v1/dispatch/overview` answers it);
//! - `order` `{…DispatchOrder}` when an order is created or changes status
//!   (read again from the database, so it is complete and current);
//! - `alert` `{kind: "escalated", order_id, promised_by, eta, at}` when an
//!   order is escalated (no nurse can arrive in time);
//! - `offer` `{offer_id, order_id, nurse_id, status, reason?, expires_at?,
//!   eta_min?, distance_m?, at}` when an offer is made (`open`), answered
//!   (`accepted`, `declined`, `expired`) or closed (`expired`, `withdrawn`);
//! - `nurse_location` `{nurse_id, location, accuracy_m, at, order_id?}`, at
//!   most one per nurse per second;
//! - `nurse_shift` `{nurse_id, on, at}`;
//! - `alarm` `{…AlarmView}` when a nurse's alarm is raised, acknowledged,
//!   resolved or escalated (read again from the database).
//!
//! Sources: the organisation's dispatch channel ([`dispatch_channel`]:
//! orders and offers, published by whoever changes them, see
//! [`super::publish`]) and the fleet feed (positions and shifts of every
//! nurse, of which only the organisation's pass). The same event arriving
//! twice (e.g. from a coordinator's action and again from the outbox relay)
//! is sent once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::Session;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use yixin_auth::CoordinatorCaller;
use yixin_contracts::{Event, FLEET_CHANNEL, decode_envelope, dispatch_channel, pb};
use yixin_domain::{OfferId, OrderId, OrderStatus, OrgId};
use yixin_platform::ws::{self, WsHandler, WsLimits, WsResult};
use yixin_platform::{ApiError, ErrorBody};
use yixin_queue::Subscription;

use super::orders::{DispatchOrder, Location, one_detail};
use super::org_of;
use super::overview::{Overview, overview};
use crate::Dispatcher;

/// How often the server pings an idle socket.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// At most one `nurse_location` per nurse this often.
pub const LOCATION_EVERY: Duration = Duration::from_secs(1);
/// Event ids remembered to drop duplicates.
const SEEN_EVENTS: usize = 512;

/// The platform's stop signal, as app data: when registered, open feeds
/// close (1001 going away) as the platform stops instead of holding the
/// graceful shutdown until its timeout.
#[derive(Debug, Clone)]
pub struct LiveShutdown(pub watch::Receiver<bool>);

/// An offer's change, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferFrame {
    pub offer_id: String,
    pub order_id: String,
    pub nurse_id: String,
    /// `open`, `accepted`, `declined`, `expired` or `withdrawn`.
    pub status: String,
    /// A decline's reason, or why an offer was closed (`taken`, `cancelled`, `expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<u32>,
    pub at: Option<DateTime<Utc>>,
}

/// A frame of the coordinator's feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveFrame {
    Hello {
        org: String,
        overview: Box<Overview>,
    },
    Order(Box<DispatchOrder>),
    Alert {
        kind: &'static str,
        order_id: String,
        promised_by: DateTime<Utc>,
        eta: Option<DateTime<Utc>>,
        at: Option<DateTime<Utc>>,
    },
    Offer(OfferFrame),
    NurseLocation {
        nurse_id: String,
        location: Location,
        accuracy_m: f64,
        at: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
    },
    NurseShift {
        nurse_id: String,
        on: bool,
        at: Option<DateTime<Utc>>,
    },
    Alarm(Box<yixin_platform::views::AlarmView>),
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// The organisation's live feed.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "WebSocket: `hello`, then `order`, `alert`, `offer`, `nurse_location` and `nurse_shift` frames, as `/asyncapi.json` describes them"),
        (status = 400, description = "`websocket_required`: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, description = "Live updates unavailable (the queue is down)", body = ErrorBody),
    )
)]
#[get("/v1/dispatch/live")]
pub async fn live(
    req: HttpRequest,
    payload: web::Payload,
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<HttpResponse, ApiError> {
    let org = org_of(&caller);
    // Subscribe before reading the overview, so no change falls in between.
    let unavailable = |e: yixin_queue::QueueError| {
        ApiError::BackendUnavailable(format!("live updates unavailable: {e}"))
    };
    let events = svc
        .queue
        .subscribe(&dispatch_channel(org.as_str()))
        .await
        .map_err(unavailable)?;
    let fleet = svc
        .queue
        .subscribe(FLEET_CHANNEL)
        .await
        .map_err(unavailable)?;
    let hello = LiveFrame::Hello {
        org: org.as_str().to_owned(),
        overview: Box::new(overview(&svc, &org).await?),
    };
    let shutdown = req
        .app_data::<web::Data<LiveShutdown>>()
        .map(|s| s.0.clone());
    tracing::debug!(%org, coordinator = %caller.0.sub, "coordinator live feed opened");
    let socket = CoordinatorSocket {
        svc: svc.into_inner(),
        feed: Feed::new(org),
        hello: Some(hello),
        events,
        fleet,
    };
    let limits = WsLimits {
        ping_interval: HEARTBEAT,
        ..WsLimits::default()
    };
    ws::serve(&req, payload, limits, shutdown, socket)
}

/// One coordinator's socket: the feed's state and its two sources.
struct CoordinatorSocket {
    svc: Arc<Dispatcher>,
    feed: Feed,
    /// Sent on open.
    hello: Option<LiveFrame>,
    events: Subscription,
    fleet: Subscription,
}

/// A message of one of the feed's two sources.
enum Source {
    Dispatch(Vec<u8>),
    Fleet(Vec<u8>),
}

impl WsHandler for CoordinatorSocket {
    type Event = Source;

    async fn open(&mut self, session: &mut Session) -> WsResult {
        match self.hello.take() {
            Some(hello) => ws::send_json(session, &hello).await,
            None => Ok(()),
        }
    }

    async fn next_event(&mut self) -> Option<Source> {
        tokio::select! {
            e = self.events.next() => e.map(Source::Dispatch),
            e = self.fleet.next() => e.map(Source::Fleet),
        }
    }

    async fn on_event(&mut self, session: &mut Session, source: Source) -> WsResult {
        let frames = match source {
            Source::Dispatch(bytes) => self.feed.on_dispatch_event(&self.svc, &bytes).await,
            Source::Fleet(bytes) => self.feed.on_fleet_event(&bytes, Instant::now()),
        };
        for frame in frames {
            ws::send_json(session, &frame).await?;
        }
        Ok(())
    }
}

/// One socket's state: the organisation, recent event ids, and when each
/// nurse's position was last sent.
struct Feed {
    org: OrgId,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
    last_location: HashMap<String, Instant>,
}

impl Feed {
    fn new(org: OrgId) -> Self {
        Self {
            org,
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            last_location: HashMap::new(),
        }
    }

    /// Whether the event id was already handled (remembers it if not).
    fn duplicate(&mut self, event_id: &str) -> bool {
        if event_id.is_empty() {
            return false;
        }
        if self.seen_set.contains(event_id) {
            return true;
        }
        if self.seen.len() >= SEEN_EVENTS
            && let Some(old) = self.seen.pop_front()
        {
            self.seen_set.remove(&old);
        }
        self.seen.push_back(event_id.to_owned());
        self.seen_set.insert(event_id.to_owned());
        false
    }

    /// Frames for an event of the organisation's dispatch channel.
    async fn on_dispatch_event(&mut self, svc: &Dispatcher, bytes: &[u8]) -> Vec<LiveFrame> {
        let Ok(envelope) = decode_envelope(bytes) else {
            return Vec::new();
        };
        if self.duplicate(&envelope.event_id) {
            return Vec::new();
        }
        let Some(event) = envelope.event else {
            return Vec::new();
        };
        match event {
            Event::OrderCreated(e) => self.order_frames(svc, &e.order_id, None).await,
            Event::OrderStatusChanged(e) => {
                let alert = (e.to == OrderStatus::Escalated.as_str()).then(|| millis(e.at_unix_ms));
                self.order_frames(svc, &e.order_id, alert).await
            }
            Event::OfferMade(e) => vec![LiveFrame::Offer(OfferFrame {
                offer_id: e.offer_id,
                order_id: e.order_id,
                nurse_id: e.nurse_id,
                status: "open".to_owned(),
                reason: None,
                expires_at: millis(e.expires_at_unix_ms),
                eta_min: Some(e.eta_min),
                distance_m: Some(e.distance_m),
                at: millis(envelope.occurred_at_unix_ms),
            })],
            Event::OfferAnswered(e) => {
                let status = match e.answer() {
                    pb::offer_answered::Answer::Accepted => "accepted",
                    pb::offer_answered::Answer::Declined => "declined",
                    pb::offer_answered::Answer::Expired => "expired",
                    pb::offer_answered::Answer::Unspecified => return Vec::new(),
                };
                vec![LiveFrame::Offer(OfferFrame {
                    offer_id: e.offer_id,
                    order_id: e.order_id,
                    nurse_id: e.nurse_id,
                    status: status.to_owned(),
                    reason: (!e.reason.is_empty()).then_some(e.reason),
                    expires_at: None,
                    eta_min: None,
                    distance_m: None,
                    at: millis(e.at_unix_ms),
                })]
            }
            Event::OfferClosed(e) => {
                self.closed_offer_frames(svc, e, envelope.occurred_at_unix_ms)
                    .await
            }
            Event::NurseLocation(fix) => self
                .location_frame(fix, Instant::now())
                .into_iter()
                .collect(),
            Event::NurseLocations(batch) => batch
                .fixes
                .into_iter()
                .filter_map(|f| self.location_frame(f, Instant::now()))
                .collect(),
            Event::NurseShiftChanged(e) => self.shift_frame(e).into_iter().collect(),
            Event::AlarmChanged(e) => self.alarm_frame(svc, &e).await.into_iter().collect(),
            Event::CheckInDue(_) | Event::RepositionSuggested(_) | Event::SuggestionCleared(_) => {
                Vec::new()
            }
        }
    }

    /// The alarm as it is now, if it is the organisation's.
    async fn alarm_frame(&self, svc: &Dispatcher, e: &pb::AlarmChanged) -> Option<LiveFrame> {
        if e.org_id != self.org.as_str() {
            return None;
        }
        let id = e.alarm_id.parse().ok()?;
        match svc.store.org_alarm(&self.org, id).await {
            Ok(Some(a)) => Some(LiveFrame::Alarm(Box::new((&a).into()))),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(alarm_id = %e.alarm_id, error = %err, "coordinator feed: alarm not read");
                None
            }
        }
    }

    /// Frames for an event of the fleet feed (every organisation's nurses).
    fn on_fleet_event(&mut self, bytes: &[u8], now: Instant) -> Vec<LiveFrame> {
        let Some(event) = decode_envelope(bytes).ok().and_then(|e| e.event) else {
            return Vec::new();
        };
        match event {
            Event::NurseLocations(batch) => batch
                .fixes
                .into_iter()
                .filter_map(|f| self.location_frame(f, now))
                .collect(),
            Event::NurseLocation(fix) => self.location_frame(fix, now).into_iter().collect(),
            Event::NurseShiftChanged(e) => self.shift_frame(e).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn location_frame(&mut self, fix: pb::NurseLocation, now: Instant) -> Option<LiveFrame> {
        if fix.org_id != self.org.as_str() {
            return None;
        }
        if let Some(last) = self.last_location.get(&fix.nurse_id)
            && now.duration_since(*last) < LOCATION_EVERY
        {
            return None;
        }
        self.last_location.insert(fix.nurse_id.clone(), now);
        Some(LiveFrame::NurseLocation {
            nurse_id: fix.nurse_id,
            location: Location {
                lat: fix.lat,
                lng: fix.lng,
            },
            accuracy_m: fix.accuracy_m,
            at: millis(fix.recorded_at_unix_ms),
            order_id: fix.order_id,
        })
    }

    fn shift_frame(&mut self, e: pb::NurseShiftChanged) -> Option<LiveFrame> {
        if e.org_id != self.org.as_str() {
            return None;
        }
        if !e.on {
            self.last_location.remove(&e.nurse_id);
        }
        Some(LiveFrame::NurseShift {
            nurse_id: e.nurse_id,
            on: e.on,
            at: millis(e.at_unix_ms),
        })
    }

    /// The order as it is now (only if it is the organisation's), and an
    /// `escalated` alert when `alert_at` is given.
    async fn order_frames(
        &self,
        svc: &Dispatcher,
        raw_id: &str,
        alert_at: Option<Option<DateTime<Utc>>>,
    ) -> Vec<LiveFrame> {
        let Ok(id) = raw_id.parse().map(OrderId) else {
            return Vec::new();
        };
        let order = match svc.store.org_order(&self.org, id).await {
            Ok(Some(o)) => o,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(order_id = %id, error = %e, "coordinator feed: order not read");
                return Vec::new();
            }
        };
        let detail = match one_detail(svc, &order).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(order_id = %id, error = %e, "coordinator feed: order detail not read");
                return Vec::new();
            }
        };
        let mut frames = vec![LiveFrame::Order(Box::new(detail))];
        if let Some(at) = alert_at {
            frames.push(LiveFrame::Alert {
                kind: "escalated",
                order_id: order.id.to_string(),
                promised_by: order.promised_by,
                eta: order.eta,
                at,
            });
        }
        frames
    }

    /// `OfferClosed` names no order: the offer row does, and says whether
    /// it lapsed or was withdrawn.
    async fn closed_offer_frames(
        &self,
        svc: &Dispatcher,
        e: pb::OfferClosed,
        occurred_at_unix_ms: i64,
    ) -> Vec<LiveFrame> {
        let Ok(id) = e.offer_id.parse().map(OfferId) else {
            return Vec::new();
        };
        let offer = match svc.store.get_offer(id).await {
            Ok(Some(o)) => o,
            Ok(None) => return Vec::new(),
            Err(err) => {
                tracing::warn!(offer_id = %id, error = %err, "coordinator feed: offer not read");
                return Vec::new();
            }
        };
        match svc.store.org_order(&self.org, offer.order_id).await {
            Ok(Some(_)) => {}
            _ => return Vec::new(),
        }
        let reason = match e.reason() {
            pb::offer_closed::Reason::Expired => Some("expired"),
            pb::offer_closed::Reason::Taken => Some("taken"),
            pb::offer_closed::Reason::Cancelled => Some("cancelled"),
            pb::offer_closed::Reason::Unspecified => None,
        };
        vec![LiveFrame::Offer(OfferFrame {
            offer_id: offer.id.to_string(),
            order_id: offer.order_id.to_string(),
            nurse_id: offer.nurse_id.to_string(),
            status: offer.status.as_str().to_owned(),
            reason: reason.map(str::to_owned),
            expires_at: Some(offer.expires_at),
            eta_min: Some(offer.eta_min),
            distance_m: Some(offer.distance_m),
            at: offer.answered_at.or_else(|| millis(occurred_at_unix_ms)),
        })]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use yixin_contracts::{Envelope, Message};

    fn fix(org: &str, nurse: &str) -> pb::NurseLocation {
        pb::NurseLocation {
            nurse_id: nurse.into(),
            org_id: org.into(),
            lat: 29.39,
            lng: 106.32,
            accuracy_m: 5.0,
            recorded_at_unix_ms: 1_740_000_000_000,
            order_id: None,
            eta_unix_ms: None,
        }
    }

    fn batch(fixes: Vec<pb::NurseLocation>) -> Vec<u8> {
        Envelope::wrap("e1", 0, Event::NurseLocations(pb::NurseLocations { fixes })).encode_to_vec()
    }

    #[test]
    fn only_the_organisations_nurses_pass_at_most_once_a_second() {
        let mut feed = Feed::new(OrgId::from("demo"));
        let t0 = Instant::now();
        let frames = feed.on_fleet_event(
            &batch(vec![
                fix("demo", "n1"),
                fix("other", "n2"),
                fix("demo", "n3"),
            ]),
            t0,
        );
        let ids: Vec<_> = frames
            .iter()
            .map(|f| match f {
                LiveFrame::NurseLocation { nurse_id, .. } => nurse_id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["n1", "n3"]);
        assert!(
            feed.on_fleet_event(
                &batch(vec![fix("demo", "n1")]),
                t0 + Duration::from_millis(500)
            )
            .is_empty()
        );
        assert_eq!(
            feed.on_fleet_event(&batch(vec![fix("demo", "n1")]), t0 + Duration::from_secs(1))
                .len(),
            1
        );
        let json = serde_json::to_value(&frames[0]).unwrap();
        assert_eq!(json["type"], "nurse_location");
        assert_eq!(json["location"]["lat"], 29.39);
        assert!(json["at"].is_string());
    }

    #[test]
    fn shifts_of_other_organisations_are_dropped() {
        let mut feed = Feed::new(OrgId::from("demo"));
        let shift = |org: &str| {
            Envelope::wrap(
                "",
                0,
                Event::NurseShiftChanged(pb::NurseShiftChanged {
                    nurse_id: "n1".into(),
                    org_id: org.into(),
                    on: true,
                    at_unix_ms: 1_740_000_000_000,
                }),
            )
            .encode_to_vec()
        };
        assert!(
            feed.on_fleet_event(&shift("other"), Instant::now())
                .is_empty()
        );
        let frames = feed.on_fleet_event(&shift("demo"), Instant::now());
        let json = serde_json::to_value(&frames[0]).unwrap();
        assert_eq!(json["type"], "nurse_shift");
        assert_eq!(json["on"], true);
        assert!(
            feed.on_fleet_event(b"garbage \xff\xff", Instant::now())
                .is_empty()
        );
    }

    #[test]
    fn an_event_seen_twice_is_handled_once() {
        let mut feed = Feed::new(OrgId::from("demo"));
        assert!(!feed.duplicate("a"));
        assert!(feed.duplicate("a"));
        assert!(!feed.duplicate(""), "no id: never a duplicate");
        assert!(!feed.duplicate(""));
        for i in 0..SEEN_EVENTS {
            feed.duplicate(&format!("x{i}"));
        }
        assert!(!feed.duplicate("a"), "forgotten after {SEEN_EVENTS} others");
        assert!(feed.seen.len() <= SEEN_EVENTS && feed.seen_set.len() == feed.seen.len());
    }
}
