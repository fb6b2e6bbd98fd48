//! The one WebSocket driver every socket of the platform runs on.
//!
//! A service says only what is particular to its socket through
//! [`WsHandler`]: what to send on open, what it waits for besides the socket
//! (pub/sub messages, deadlines) and what to do with each, and what to do
//! with an inbound text frame. The driver owns the rest, the same for every
//! socket:
//!
//! - a ping every [`WsLimits::ping_interval`], and a close
//!   ([`GOING_AWAY`]) when nothing at all (not even a pong) came in for
//!   [`WsLimits::pong_timeout`], so a half-open socket does not live until
//!   TCP gives up;
//! - frames (and continuations) above [`WsLimits::max_frame_bytes`] close
//!   the socket with [`MESSAGE_TOO_BIG`] (1009);
//! - data frames past [`WsLimits::messages_per_second`] (with
//!   [`WsLimits::burst`] allowed at once, a `governor` limiter per
//!   connection) close it with [`POLICY_VIOLATION`] (1008);
//! - the platform's stop signal closes it with [`GOING_AWAY`] (1001);
//! - a client's close is answered with its own code.

use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ApiError;

/// Normal closure: the conversation is over.
pub const NORMAL: u16 = 1000;
/// The server is stopping, or the client went silent (no pong in time).
pub const GOING_AWAY: u16 = 1001;
/// The client broke the WebSocket protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// The client sent frames faster than its rate allows.
pub const POLICY_VIOLATION: u16 = 1008;
/// The client sent a frame larger than the limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server cannot go on (e.g. its event feed was lost); reconnect.
pub const INTERNAL_ERROR: u16 = 1011;
/// App code: a newer connection of the same user replaced this one.
pub const REPLACED: u16 = 4001;
/// App code: the user was deactivated.
pub const DEACTIVATED: u16 = 4003;

/// Limits of one socket. Every field has a default, so a service only sets
/// what it needs differently (tests set small timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLimits {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// A client that sends nothing (not even a pong) this long is closed.
    pub pong_timeout: Duration,
    /// Largest inbound frame or continued message, in bytes.
    pub max_frame_bytes: usize,
    /// Sustained inbound data frames per second, per connection.
    pub messages_per_second: u32,
    /// Data frames allowed at once above the sustained rate.
    pub burst: u32,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            max_frame_bytes: 16 * 1024,
            messages_per_second: 20,
            burst: 60,
        }
    }
}

/// Why a socket stops, as a handler says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsStop {
    /// The client is gone (a send failed): nothing more to say to it.
    Gone,
    /// Close with this code and description.
    Close(u16, &'static str),
}

impl From<actix_ws::Closed> for WsStop {
    fn from(_: actix_ws::Closed) -> Self {
        Self::Gone
    }
}

/// What a handler step returns: go on, or stop the socket.
pub type WsResult = Result<(), WsStop>;

/// Sends `frame` as one JSON text frame.
pub async fn send_json(session: &mut Session, frame: &impl Serialize) -> WsResult {
    let text = serde_json::to_string(frame)
        .map_err(|_| WsStop::Close(INTERNAL_ERROR, "frame not encoded"))?;
    session.text(text).await.map_err(WsStop::from)
}

/// What a service plugs into the driver. Handlers run on the connection's
/// own task (actix runs it on one thread), so their futures need not be `Send`.
#[allow(
    async_fn_in_trait,
    reason = "sockets run on actix's single-threaded workers; no Send bound is wanted"
)]
pub trait WsHandler {
    /// Something the service waits for besides the socket.
    type Event;

    /// Right after the upgrade: greet the client. Stops the socket on `Err`.
    async fn open(&mut self, session: &mut Session) -> WsResult {
        let _ = session;
        Ok(())
    }

    /// The next event. `None` means the service's source is gone and the
    /// socket closes with [`INTERNAL_ERROR`]; a handler with nothing to wait
    /// for never resolves. Must be cancel-safe: the driver drops it when the
    /// socket has something first.
    async fn next_event(&mut self) -> Option<Self::Event>;

    /// One event, taken by [`WsHandler::next_event`].
    async fn on_event(&mut self, session: &mut Session, event: Self::Event) -> WsResult;

    /// One inbound text frame (within the size and rate limits). Ignored unless
    /// the service reads what its clients send.
    async fn on_text(&mut self, session: &mut Session, text: &str) -> WsResult {
        let _ = (session, text);
        Ok(())
    }

    /// One inbound binary frame (within the limits); ignored by default.
    async fn on_binary(&mut self, session: &mut Session, bytes: &[u8]) -> WsResult {
        let _ = (session, bytes);
        Ok(())
    }

    /// The socket is over, whatever the reason; `code` is the close code
    /// sent, if any. Always called once, after `open`.
    async fn closed(&mut self, code: Option<u16>) {
        let _ = code;
    }
}

/// Upgrades the request and runs `handler` on the socket in its own task.
/// `shutdown` turning true closes the socket with [`GOING_AWAY`].
pub fn serve<H>(
    req: &HttpRequest,
    payload: web::Payload,
    limits: WsLimits,
    shutdown: Option<watch::Receiver<bool>>,
    handler: H,
) -> Result<HttpResponse, ApiError>
where
    H: WsHandler + 'static,
{
    let (response, session, stream) = actix_ws::handle(req, payload)
        .map_err(|e| ApiError::bad_request("websocket_required", e.to_string()))?;
    actix_web::rt::spawn(drive(session, stream, limits, shutdown, handler));
    Ok(response)
}

/// Runs `handler` on an upgraded socket until it ends, then closes it.
pub async fn drive<H: WsHandler>(
    mut session: Session,
    stream: actix_ws::MessageStream,
    limits: WsLimits,
    shutdown: Option<watch::Receiver<bool>>,
    mut handler: H,
) {
    let max = limits.max_frame_bytes.max(1);
    let mut stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let end = match handler.open(&mut session).await {
        Ok(()) => run(&mut session, &mut stream, limits, shutdown, &mut handler).await,
        Err(stop) => End::from(stop),
    };
    match end {
        End::Gone => {
            handler.closed(None).await;
            // Nothing reaches the client any more; this only releases the session.
            let _ = session.close(None).await;
        }
        End::Close(reason) => {
            handler
                .closed(reason.as_ref().map(|r| u16::from(r.code)))
                .await;
            let _ = session.close(reason).await;
        }
    }
}

/// How the driver's loop ended.
enum End {
    /// The client is gone; nothing to send.
    Gone,
    /// Close with this reason (the client's own, or none, when it closed).
    Close(Option<CloseReason>),
}

impl From<WsStop> for End {
    fn from(stop: WsStop) -> Self {
        match stop {
            WsStop::Gone => Self::Gone,
            WsStop::Close(code, description) => Self::Close(close_reason(code, description)),
        }
    }
}

/// A close reason with `code` and a short description.
pub fn close_reason(code: u16, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(description.to_owned()),
    })
}

enum Input<E> {
    Client(Option<Result<AggregatedMessage, ProtocolError>>),
    Event(Option<E>),
    Ping,
    Silent,
    Stop,
}

async fn run<H: WsHandler>(
    session: &mut Session,
    stream: &mut actix_ws::AggregatedMessageStream,
    limits: WsLimits,
    mut shutdown: Option<watch::Receiver<bool>>,
    handler: &mut H,
) -> End {
    let rate = nonzero(limits.messages_per_second);
    let limiter: DefaultDirectRateLimiter =
        RateLimiter::direct(Quota::per_second(rate).allow_burst(nonzero(limits.burst)));
    let pong_timeout = limits.pong_timeout.max(Duration::from_millis(1));
    let ping_every = limits.ping_interval.max(Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let silence = tokio::time::sleep(pong_timeout);
    tokio::pin!(silence);
    loop {
        let input = tokio::select! {
            m = stream.recv() => Input::Client(m),
            e = handler.next_event() => Input::Event(e),
            _ = ping.tick() => Input::Ping,
            () = &mut silence => Input::Silent,
            () = stopping(shutdown.as_mut()) => Input::Stop,
        };
        let step = match input {
            Input::Client(message) => {
                if matches!(message, Some(Ok(_))) {
                    // Any traffic proves the client is there.
                    silence.as_mut().reset(Instant::now() + pong_timeout);
                }
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if limiter.check().is_err() {
                            return flood();
                        }
                        handler.on_text(session, &text).await
                    }
                    Some(Ok(AggregatedMessage::Binary(bytes))) => {
                        if limiter.check().is_err() {
                            return flood();
                        }
                        handler.on_binary(session, &bytes).await
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        session.pong(&bytes).await.map_err(WsStop::from)
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => Ok(()),
                    Some(Ok(AggregatedMessage::Close(reason))) => return End::Close(reason),
                    Some(Err(e)) if too_big(&e) => {
                        metrics::counter!("ws_closed_total", "reason" => "oversize").increment(1);
                        return End::from(WsStop::Close(MESSAGE_TOO_BIG, "frame too large"));
                    }
                    Some(Err(_)) => {
                        return End::from(WsStop::Close(PROTOCOL_ERROR, "protocol error"));
                    }
                    None => return End::Gone,
                }
            }
            Input::Event(Some(event)) => handler.on_event(session, event).await,
            Input::Event(None) => Err(WsStop::Close(INTERNAL_ERROR, "event feed lost; reconnect")),
            Input::Ping => session.ping(b"").await.map_err(WsStop::from),
            Input::Silent => {
                metrics::counter!("ws_closed_total", "reason" => "silent").increment(1);
                Err(WsStop::Close(GOING_AWAY, "no answer to pings"))
            }
            Input::Stop => Err(WsStop::Close(GOING_AWAY, "server stopping")),
        };
        if let Err(stop) = step {
            return End::from(stop);
        }
    }
}

fn flood() -> End {
    metrics::counter!("ws_closed_total", "reason" => "flood").increment(1);
    End::from(WsStop::Close(POLICY_VIOLATION, "too many frames"))
}

/// A frame over the codec's limit, or continuations over the aggregation
/// limit (which actix-ws reports only as an I/O error with this text).
fn too_big(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::Overflow => true,
        ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Resolves when the platform is stopping; never without a stop signal, or
/// if its sender is gone without saying so.
async fn stopping(shutdown: Option<&mut watch::Receiver<bool>>) {
    match shutdown {
        Some(rx) => {
            if rx.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
