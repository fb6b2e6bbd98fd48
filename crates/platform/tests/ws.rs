//! The WebSocket driver on a real server: a small echo socket whose limits
//! are set small, and a `tokio-tungstenite` client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_ws::Session;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yixin_platform::ApiError;
use yixin_platform::ws::{self, WsHandler, WsLimits, WsResult, WsStop};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;
/// The feed prepared for the next socket, if any.
type Feeds = web::Data<std::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>>;

const WAIT: Duration = Duration::from_secs(5);

/// Echoes text, sends what its channel gives, closes with 1000 on `bye`,
/// and reports when and how it ended.
struct Echo {
    outbound: mpsc::UnboundedReceiver<String>,
    /// Keeps a feed that no test holds open.
    _sender: Option<mpsc::UnboundedSender<String>>,
    ended: mpsc::UnboundedSender<(Instant, Option<u16>)>,
}

impl WsHandler for Echo {
    type Event = String;

    async fn open(&mut self, session: &mut Session) -> WsResult {
        session.text("hello").await.map_err(WsStop::from)
    }

    async fn next_event(&mut self) -> Option<String> {
        self.outbound.recv().await
    }

    async fn on_event(&mut self, session: &mut Session, text: String) -> WsResult {
        session.text(text).await.map_err(WsStop::from)
    }

    async fn on_text(&mut self, session: &mut Session, text: &str) -> WsResult {
        if text == "bye" {
            return Err(WsStop::Close(ws::NORMAL, "bye"));
        }
        session.text(format!("echo {text}")).await?;
        Ok(())
    }

    async fn closed(&mut self, code: Option<u16>) {
        let _ = self.ended.send((Instant::now(), code));
    }
}

/// What a test gets: the server's address, the feed of the next socket,
/// the report of how sockets ended, and the stop signal.
struct Harness {
    addr: std::net::SocketAddr,
    push: Feeds,
    ended: mpsc::UnboundedReceiver<(Instant, Option<u16>)>,
    stop: watch::Sender<bool>,
}

struct State {
    limits: WsLimits,
    ended: mpsc::UnboundedSender<(Instant, Option<u16>)>,
    stop: watch::Receiver<bool>,
}

async fn socket(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
    push: Feeds,
) -> Result<HttpResponse, ApiError> {
    // A socket without a prepared feed gets one that never sends.
    let prepared = push.lock().unwrap().take();
    let (outbound, _sender) = match prepared {
        Some(rx) => (rx, None),
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            (rx, Some(tx))
        }
    };
    let echo = Echo {
        outbound,
        _sender,
        ended: state.ended.clone(),
    };
    ws::serve(&req, payload, state.limits, Some(state.stop.clone()), echo)
}

fn limits() -> WsLimits {
    WsLimits {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(400),
        max_frame_bytes: 1024,
        messages_per_second: 5,
        burst: 5,
    }
}

fn start(limits: WsLimits) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let state = web::Data::new(State {
        limits,
        ended: ended_tx,
        stop: stop_rx,
    });
    let push = web::Data::new(std::sync::Mutex::new(None));
    let app_push = push.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(app_push.clone())
            .route("/ws", web::get().to(socket))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    Harness {
        addr,
        push,
        ended,
        stop,
    }
}

impl Harness {
    /// Connects and reads the greeting.
    async fn connect(&self) -> Client {
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .unwrap();
        assert_eq!(next_text(&mut client).await, "hello");
        client
    }

    /// The next socket to connect sends what comes through the returned sender.
    fn feed_next(&self) -> mpsc::UnboundedSender<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.push.lock().unwrap() = Some(rx);
        tx
    }

    async fn ended(&mut self) -> (Instant, Option<u16>) {
        tokio::time::timeout(WAIT, self.ended.recv())
            .await
            .expect("the socket ended")
            .unwrap()
    }
}

/// The next text frame (pings in between are answered by the client).
async fn next_text(client: &mut Client) -> String {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The code of the close frame the server sends.
async fn close_code(client: &mut Client) -> Option<u16> {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("closed in time")?;
        match frame {
            Ok(Message::Close(Some(frame))) => return Some(u16::from(frame.code)),
            Ok(Message::Close(None)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[actix_web::test]
async fn text_is_echoed_and_outbound_frames_are_sent() {
    let mut h = start(limits());
    let push = h.feed_next();
    let mut client = h.connect().await;
    client.send(Message::text("one")).await.unwrap();
    assert_eq!(next_text(&mut client).await, "echo one");
    push.send("from the service".to_owned()).unwrap();
    assert_eq!(next_text(&mut client).await, "from the service");
    // A frame of exactly the limit is fine.
    let edge = "x".repeat(1024 - "echo ".len());
    client.send(Message::text(edge.clone())).await.unwrap();
    assert_eq!(next_text(&mut client).await, format!("echo {edge}"));
    // The handler ends it.
    client.send(Message::text("bye")).await.unwrap();
    assert_eq!(close_code(&mut client).await, Some(ws::NORMAL));
    assert_eq!(h.ended().await.1, Some(ws::NORMAL));
}

#[actix_web::test]
async fn an_oversize_frame_closes_with_1009() {
    let mut h = start(limits());
    let mut client = h.connect().await;
    client.send(Message::text("x".repeat(1025))).await.unwrap();
    assert_eq!(close_code(&mut client).await, Some(ws::MESSAGE_TOO_BIG));
    assert_eq!(h.ended().await.1, Some(1009));
}

#[actix_web::test]
async fn a_flood_closes_with_1008() {
    let mut h = start(limits());
    let mut client = h.connect().await;
    // The burst (5) passes; the rest of a quick run of frames does not.
    for i in 0..20 {
        if client.send(Message::text(format!("{i}"))).await.is_err() {
            break;
        }
    }
    let mut echoed = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, client.next()).await.unwrap() {
            Some(Ok(Message::Text(_))) => echoed += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert_eq!(code, Some(ws::POLICY_VIOLATION));
    assert!(
        (5..=6).contains(&echoed),
        "{echoed} echoed before the close"
    );
    assert_eq!(h.ended().await.1, Some(1008));
}

#[actix_web::test]
async fn frames_within_the_rate_are_fine() {
    let h = start(limits());
    let mut client = h.connect().await;
    // 5 a second sustained: one every 250 ms for 2 s, after a full burst.
    for i in 0..5 {
        client.send(Message::text(format!("b{i}"))).await.unwrap();
        assert_eq!(next_text(&mut client).await, format!("echo b{i}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..8 {
        client.send(Message::text(format!("{i}"))).await.unwrap();
        assert_eq!(next_text(&mut client).await, format!("echo {i}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[actix_web::test]
async fn a_silent_client_is_closed_within_the_pong_timeout() {
    let mut h = start(limits());
    let client = h.connect().await;
    let connected = Instant::now();
    // The client reads nothing, so it answers no ping: a half-open socket
    // as the server sees it.
    let (at, code) = h.ended().await;
    let after = at - connected;
    assert_eq!(code, Some(ws::GOING_AWAY));
    assert!(
        after >= Duration::from_millis(300) && after < Duration::from_millis(1500),
        "closed after {after:?}"
    );
    // The close frame is waiting for it.
    let mut client = client;
    assert_eq!(close_code(&mut client).await, Some(ws::GOING_AWAY));
}

#[actix_web::test]
async fn a_client_answering_pings_stays_connected() {
    let mut h = start(limits());
    let mut client = h.connect().await;
    // Only reading (which answers the pings), nothing sent, for 4 timeouts.
    let until = Instant::now() + Duration::from_millis(1600);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, client.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 8, "{pings} pings");
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_text(&mut client).await, "echo still here");
    assert!(h.ended.try_recv().is_err(), "the socket is still open");
}

#[actix_web::test]
async fn the_platform_stopping_closes_with_1001() {
    let mut h = start(limits());
    let mut client = h.connect().await;
    h.stop.send(true).unwrap();
    assert_eq!(close_code(&mut client).await, Some(ws::GOING_AWAY));
    assert_eq!(h.ended().await.1, Some(1001));
}

#[actix_web::test]
async fn a_lost_outbound_feed_closes_with_1011() {
    let mut h = start(limits());
    let push = h.feed_next();
    let mut client = h.connect().await;
    drop(push);
    assert_eq!(close_code(&mut client).await, Some(ws::INTERNAL_ERROR));
    assert_eq!(h.ended().await.1, Some(1011));
}

#[actix_web::test]
async fn a_client_close_is_answered_with_its_code() {
    let mut h = start(limits());
    let mut client = h.connect().await;
    client
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "done".into(),
        }))
        .await
        .unwrap();
    assert_eq!(close_code(&mut client).await, Some(4000));
    assert_eq!(h.ended().await.1, Some(4000));
}
