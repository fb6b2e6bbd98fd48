//! `GET /v1/orders/{id}/live`: the resident's live feed of one order.
//!
//! Frames (one JSON object per text frame):
//! - `{"type":"order", …order}`: on connect, then on every change. Changes
//!   arrive through `queue.subscribe("order:{id}")`, so a change made by any
//!   instance reaches a resident connected to any other; on each
//!   notification the order is read again and sent if it differs.
//! - `{"type":"nurse_location","location","eta"}`: while the nurse is en
//!   route, nurse-tracking publishes their position on the same channel (at
//!   most every 2 s); `eta` is the event's, else the order's prediction.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use yixin_auth::{ResidentCaller, authenticate};
use yixin_platform::{ApiError, ErrorBody};

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

/// The pub/sub channel carrying change notifications of one order.
pub fn order_channel(id: impl std::fmt::Display) -> String {
    format!("order:{id}")
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
    let mut changes = svc
        .queue
        .subscribe(&order_channel(order.id))
        .await
        .map_err(|e| ApiError::Unavailable(format!("live updates unavailable: {e}")))?;
    let (response, mut session, mut messages) = actix_ws::handle(&req, payload)
        .map_err(|e| ApiError::bad_request("websocket_required", e.to_string()))?;
    let svc = svc.into_inner();
    let mut shutdown = svc.shutdown.clone();
    let order_id = order.id;

    actix_web::rt::spawn(async move {
        let mut last = match view(&svc, &order).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%order_id, error = %e, "live feed: first read failed");
                let _ = session.close(None).await;
                return;
            }
        };
        if send(&mut session, &LiveFrame::Order(Box::new(last.clone())))
            .await
            .is_err()
        {
            return;
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let reason = loop {
            tokio::select! {
                change = changes.next() => {
                    let Some(payload) = change else {
                        break None;
                    };
                    if let Some(position) = nurse_position(&payload, order_id) {
                        let eta = match position.1 {
                            Some(eta) => Some(eta),
                            None => last.eta,
                        };
                        let frame = LiveFrame::NurseLocation { location: position.0, eta };
                        if send(&mut session, &frame).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let current = match svc.store.get_order(order_id).await {
                        Ok(Some(o)) => o,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(%order_id, error = %e, "live feed: read failed");
                            continue;
                        }
                    };
                    match view(&svc, &current).await {
                        Ok(v) if v != last => {
                            if send(&mut session, &LiveFrame::Order(Box::new(v.clone()))).await.is_err() {
                                return;
                            }
                            last = v;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(%order_id, error = %e, "live feed: view failed"),
                    }
                }
                message = messages.next() => match message {
                    Some(Ok(actix_ws::Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(reason))) => break reason,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
                _ = heartbeat.tick() => {
                    if session.ping(b"").await.is_err() {
                        return;
                    }
                }
                _ = stopping(&mut shutdown) => {
                    break Some(actix_ws::CloseCode::Restart.into());
                }
            }
        };
        let _ = session.close(reason).await;
    });
    Ok(response)
}

/// The nurse's position (and predicted arrival) if `payload` is a
/// `NurseLocation` event about this order.
fn nurse_position(
    payload: &[u8],
    order_id: yixin_domain::OrderId,
) -> Option<(Location, Option<DateTime<Utc>>)> {
    let Some(yixin_proto::Event::NurseLocation(e)) =
        yixin_proto::decode_envelope(payload).ok()?.event
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

async fn send(session: &mut actix_ws::Session, frame: &LiveFrame) -> Result<(), ()> {
    let text = serde_json::to_string(frame).map_err(|_| ())?;
    session.text(text).await.map_err(|_| ())
}

/// Resolves when the platform is stopping; never if the signal's sender is
/// gone without saying so.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
