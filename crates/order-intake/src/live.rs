//! `GET /v1/orders/{id}/live`: the resident's live feed of one order.
//!
//! Frames (one JSON object per text frame):
//! - `{"type":"order", …order}`: on connect, then on every change. Changes
//!   arrive through `queue.subscribe("order:{id}")`, so a change made by any
//!   instance reaches a resident connected to any other; on each
//!   notification the order is read again and sent if it differs.
//! - `{"type":"nurse_location","location","eta"}`: while the nurse is en
//!   route, nurse-tracking publishes their position on the same channel (at
//!   most every 2 s); `eta` is recomputed from each fix with the
//!   dispatcher's ETA model (else the event's, else the order's prediction).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::Session;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use yixin_auth::{ResidentCaller, authenticate};
use yixin_contracts::order_channel;
use yixin_dispatch_core::EtaEstimator as _;
use yixin_domain::{GeoPoint, Order};
use yixin_platform::ws::{self, WsHandler, WsLimits, WsResult, WsStop};
use yixin_platform::{ApiError, ErrorBody};
use yixin_queue::Subscription;

use crate::{
    OrderIntake,
    orders::{Location, OrderView, owned_order, view},
};

/// How often the server pings an idle socket.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// A frame of the live feed.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveFrame {
    Order(Box<OrderView>),
    NurseLocation {
        location: Location,
        eta: Option<DateTime<Utc>>,
    },
}

/// Live updates of one of the caller's orders (WebSocket; token as
/// `?token=` or the Authorization header).
#[utoipa::path(
    tag = "resident",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 101, description = "WebSocket: `order` and `nurse_location` frames, as `/asyncapi.json` describes them"),
        (status = 400, description = "`websocket_required`: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "Live updates unavailable (the queue is down)", body = ErrorBody),
    )
)]
#[get("/v1/orders/{id}/live")]
pub async fn live(
    req: HttpRequest,
    payload: web::Payload,
    svc: web::Data<OrderIntake>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&req)?;
    claims
        .require_role(ResidentCaller::ROLE)
        .map_err(ApiError::from)?;
    let caller = ResidentCaller(claims);
    let order = owned_order(&svc, &caller, &id).await?;
    // Subscribe before the first read, so no change falls in between.
    let changes = svc
        .queue
        .subscribe(&order_channel(order.id))
        .await
        .map_err(|e| ApiError::BackendUnavailable(format!("live updates unavailable: {e}")))?;
    let shutdown = svc.shutdown.clone();
    let limits = WsLimits {
        ping_interval: HEARTBEAT,
        ..WsLimits::default()
    };
    let feed = OrderFeed {
        svc: svc.into_inner(),
        order,
        last: None,
        changes,
    };
    ws::serve(&req, payload, limits, Some(shutdown), feed)
}

/// One resident's socket: the order as last sent, and its change channel.
struct OrderFeed {
    svc: Arc<OrderIntake>,
    order: Order,
    last: Option<OrderView>,
    changes: Subscription,
}

impl WsHandler for OrderFeed {
    type Event = Vec<u8>;

    async fn open(&mut self, session: &mut Session) -> WsResult {
        let order_id = self.order.id;
        let first = view(&self.svc, &self.order).await.map_err(|e| {
            tracing::warn!(%order_id, error = %e, "live feed: first read failed");
            WsStop::Close(ws::INTERNAL_ERROR, "order not read")
        })?;
        ws::send_json(session, &LiveFrame::Order(Box::new(first.clone()))).await?;
        self.last = Some(first);
        Ok(())
    }

    async fn next_event(&mut self) -> Option<Vec<u8>> {
        self.changes.next().await
    }

    async fn on_event(&mut self, session: &mut Session, payload: Vec<u8>) -> WsResult {
        let order_id = self.order.id;
        if let Some(position) = nurse_position(&payload, order_id) {
            // Recomputed from this fix with the dispatcher's ETA model;
            // else the event's, else the order's prediction.
            let recomputed = match GeoPoint::new(position.0.lat, position.0.lng) {
                Ok(from) => match self.svc.eta.etas(&[from], self.order.location).await {
                    Ok(etas) => etas
                        .first()
                        .copied()
                        .flatten()
                        .map(|e| Utc::now() + chrono::TimeDelta::seconds(i64::from(e.seconds))),
                    Err(e) => {
                        tracing::debug!(%order_id, error = %e, "live ETA not recomputed");
                        None
                    }
                },
                Err(_) => None,
            };
            let eta = recomputed
                .or(position.1)
                .or_else(|| self.last.as_ref().and_then(|l| l.eta));
            let frame = LiveFrame::NurseLocation {
                location: position.0,
                eta,
            };
            return ws::send_json(session, &frame).await;
        }
        let current = match self.svc.store.get_order(order_id).await {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(%order_id, error = %e, "live feed: read failed");
                return Ok(());
            }
        };
        match view(&self.svc, &current).await {
            Ok(v) if self.last.as_ref() != Some(&v) => {
                ws::send_json(session, &LiveFrame::Order(Box::new(v.clone()))).await?;
                self.last = Some(v);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%order_id, error = %e, "live feed: view failed"),
        }
        Ok(())
    }
}

/// The nurse's position (and predicted arrival) if `payload` is a
/// `NurseLocation` event about this order.
fn nurse_position(
    payload: &[u8],
    order_id: yixin_domain::OrderId,
) -> Option<(Location, Option<DateTime<Utc>>)> {
    let Some(yixin_contracts::Event::NurseLocation(e)) =
        yixin_contracts::decode_envelope(payload).ok()?.event
    else {
        return None;
    };
    if e.order_id.as_deref() != Some(order_id.to_string().as_str()) {
        return None;
    }
    let eta = e
        .eta_unix_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    Some((
        Location {
            lat: e.lat,
            lng: e.lng,
        },
        eta,
    ))
}
