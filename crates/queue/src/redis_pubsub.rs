//! Redis pub/sub: one connection per [`RedisQueue`](crate::RedisQueue),
//! shared by all its subscriptions.
//!
//! A supervisor task owns the connection and the channel table; subscribers
//! talk to it through a command channel, so no lock is held across an await.
//! It re-establishes a lost connection and resubscribes every channel, for
//! as long as it takes (capped, jittered back-off): a subscription never
//! ends because Redis was away. Messages published while it was down are
//! lost, so it tells whoever cares through [`PubSubStatus`]: `connected`
//! false while down, and `generation` one higher after each recovery, when
//! subscribers re-read the state they may have missed. It also pings the
//! connection now and then, since a silently dead TCP connection would
//! otherwise never end.
//!
//! On a Redis Cluster the connection is a cluster connection speaking RESP3
//! and the channels are sharded (`SSUBSCRIBE`; `RedisQueue` publishes with
//! `SPUBLISH`): each channel lives on the node that owns its slot, so
//! messages do not cross the cluster bus to every node. A node that drops
//! its connection (it restarted, say) counts as a loss like a single
//! server's: the whole connection is rebuilt and every channel resubscribed,
//! and `generation` goes up.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::connection::Target;
use crate::redis_queue::{queue_error, unavailable};
use crate::subscription::CHANNEL_CAPACITY;
use crate::{Backoff, PubSubStatus, QueueError, Subscription};

/// How often an idle connection is checked, and how long a reply may take.
const HEALTH_INTERVAL: Duration = Duration::from_secs(15);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<broadcast::Receiver<Vec<u8>>, QueueError>>;

enum Command {
    Subscribe {
        channel: String,
        reply: Reply,
    },
    /// A subscription to `channel` was dropped.
    Release {
        channel: String,
    },
}

/// Handle to the supervisor; the supervisor stops when the last handle and
/// the last subscription are dropped.
#[derive(Clone)]
pub(crate) struct PubSubHub {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<PubSubStatus>,
}

impl PubSubHub {
    /// Starts the supervisor; it connects on the first subscription.
    /// `connect_timeout` bounds a cluster connection's setup.
    pub(crate) fn start(target: Target, connect_timeout: Duration) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(PubSubStatus::default());
        let mut backoff = Backoff::reconnect();
        let supervisor = Supervisor {
            target,
            connect_timeout,
            commands: receiver,
            routes: HashMap::new(),
            connection: None,
            down_since: None,
            retry_delay: backoff.next_delay(),
            backoff,
            status: status_tx,
        };
        tokio::spawn(supervisor.run());
        Self { commands, status }
    }

    /// The connection's state, for subscribers that re-read after a loss.
    pub(crate) fn status(&self) -> watch::Receiver<PubSubStatus> {
        self.status.clone()
    }

    /// Subscribes to the full (prefixed) channel name.
    pub(crate) async fn subscribe(&self, channel: String) -> Result<Subscription, QueueError> {
        let gone = || QueueError::Unavailable("pub/sub supervisor stopped".to_owned());
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Subscribe {
                channel: channel.clone(),
                reply,
            })
            .map_err(|_| gone())?;
        let receiver = answer.await.map_err(|_| gone())??;
        let guard = ReleaseGuard {
            commands: self.commands.clone(),
            channel: Some(channel.clone()),
        };
        Ok(Subscription::from_broadcast(
            channel,
            receiver,
            Some(Box::new(guard)),
        ))
    }
}

/// Tells the supervisor when a subscription goes away, so it can
/// unsubscribe channels nobody listens to any more.
struct ReleaseGuard {
    commands: mpsc::UnboundedSender<Command>,
    channel: Option<String>,
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if let Some(channel) = self.channel.take() {
            // The supervisor may be gone already; nothing left to release then.
            let _ = self.commands.send(Command::Release { channel });
        }
    }
}

enum Connection {
    /// One server: a RESP2 pub/sub connection.
    Single {
        sink: PubSubSink,
        messages: PubSubStream,
    },
    /// A cluster: a RESP3 cluster connection whose pushes (messages,
    /// confirmations, disconnections) arrive on `pushes`.
    Cluster {
        conn: ClusterConnection,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    },
}

/// What a connection delivered.
enum Incoming {
    Message {
        channel: String,
        payload: Vec<u8>,
    },
    /// A node's connection dropped (cluster).
    Disconnected,
    /// Confirmations and other pushes.
    Other,
}

impl Connection {
    async fn open(target: &Target, connect_timeout: Duration) -> Result<Self, QueueError> {
        match target {
            Target::Single(client) => {
                let pubsub = tokio::time::timeout(REPLY_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| QueueError::Unavailable("pub/sub connect timed out".to_owned()))?
                    .map_err(unavailable)?;
                let (sink, messages) = pubsub.split();
                Ok(Connection::Single { sink, messages })
            }
            Target::Cluster(nodes) => {
                let (push, pushes) = mpsc::unbounded_channel();
                let client =
                    Target::cluster_client(nodes, connect_timeout, Some(REPLY_TIMEOUT), Some(push))
                        .map_err(|e| QueueError::Config(e.to_string()))?;
                let conn = with_timeout(client.get_async_connection()).await?;
                Ok(Connection::Cluster { conn, pushes })
            }
        }
    }

    /// The next message or event; `None` when the connection has ended.
    async fn next(&mut self) -> Option<Incoming> {
        match self {
            Connection::Single { messages, .. } => {
                let message = messages.next().await?;
                Some(Incoming::Message {
                    channel: message.get_channel_name().to_owned(),
                    payload: message.get_payload_bytes().to_vec(),
                })
            }
            Connection::Cluster { pushes, .. } => {
                let push = pushes.recv().await?;
                Some(match push.kind {
                    PushKind::Disconnection => Incoming::Disconnected,
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        match (data.next(), data.next()) {
                            (Some(channel), Some(Value::BulkString(payload))) => {
                                match redis::from_redis_value::<String>(channel) {
                                    Ok(channel) => Incoming::Message { channel, payload },
                                    Err(_) => Incoming::Other,
                                }
                            }
                            _ => Incoming::Other,
                        }
                    }
                    _ => Incoming::Other,
                })
            }
        }
    }

    async fn subscribe(&mut self, channel: &str) -> Result<(), QueueError> {
        match self {
            Connection::Single { sink, .. } => with_timeout(sink.subscribe(channel)).await,
            Connection::Cluster { conn, .. } => with_timeout(conn.ssubscribe(channel)).await,
        }
    }

    async fn unsubscribe(&mut self, channel: &str) -> Result<(), QueueError> {
        match self {
            Connection::Single { sink, .. } => with_timeout(sink.unsubscribe(channel)).await,
            Connection::Cluster { conn, .. } => with_timeout(conn.sunsubscribe(channel)).await,
        }
    }

    async fn ping(&mut self) -> Result<(), QueueError> {
        match self {
            Connection::Single { sink, .. } => with_timeout(sink.ping::<Value>()).await.map(|_| ()),
            // Every primary: wherever our channels are.
            Connection::Cluster { conn, .. } => {
                with_timeout(redis::cmd("PING").query_async::<Value>(conn))
                    .await
                    .map(|_| ())
            }
        }
    }
}

struct Supervisor {
    target: Target,
    connect_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Subscribed channels and their local fan-out.
    routes: HashMap<String, broadcast::Sender<Vec<u8>>>,
    connection: Option<Connection>,
    /// When the connection was lost while channels were subscribed.
    down_since: Option<Instant>,
    retry_delay: Duration,
    backoff: Backoff,
    status: watch::Sender<PubSubStatus>,
}

enum Event {
    Command(Option<Command>),
    Message(Option<Incoming>),
    HealthCheck,
    Retry,
}

impl Supervisor {
    async fn run(mut self) {
        let mut health = tokio::time::interval(HEALTH_INTERVAL);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let event = match self.connection.as_mut() {
                Some(connection) => tokio::select! {
                    command = self.commands.recv() => Event::Command(command),
                    message = connection.next() => Event::Message(message),
                    _ = health.tick() => Event::HealthCheck,
                },
                None if self.routes.is_empty() => Event::Command(self.commands.recv().await),
                None => tokio::select! {
                    command = self.commands.recv() => Event::Command(command),
                    () = tokio::time::sleep(self.retry_delay) => Event::Retry,
                },
            };
            match event {
                Event::Command(None) => return,
                Event::Command(Some(Command::Subscribe { channel, reply })) => {
                    let result = self.subscribe(channel).await;
                    // The subscriber may have given up waiting; then its
                    // receiver is simply dropped.
                    let _ = reply.send(result);
                }
                Event::Command(Some(Command::Release { channel })) => self.release(channel).await,
                Event::Message(Some(Incoming::Message { channel, payload })) => {
                    self.dispatch(&channel, payload);
                }
                Event::Message(Some(Incoming::Disconnected)) => {
                    self.lost("a cluster node dropped its connection");
                }
                Event::Message(Some(Incoming::Other)) => {}
                Event::Message(None) => self.lost("connection closed"),
                Event::HealthCheck => self.check_health().await,
                Event::Retry => self.retry().await,
            }
        }
    }

    async fn subscribe(
        &mut self,
        channel: String,
    ) -> Result<broadcast::Receiver<Vec<u8>>, QueueError> {
        if let Some(sender) = self.routes.get(&channel) {
            return Ok(sender.subscribe());
        }
        if self.connection.is_none() {
            self.reconnect().await?;
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(QueueError::Unavailable("no pub/sub connection".to_owned()));
        };
        match connection.subscribe(&channel).await {
            Ok(()) => {
                let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
                self.routes.insert(channel, sender);
                Ok(receiver)
            }
            Err(e) => {
                if matches!(e, QueueError::Unavailable(_)) {
                    self.lost("subscribe failed");
                }
                Err(e)
            }
        }
    }

    async fn release(&mut self, channel: String) {
        let unused = self
            .routes
            .get(&channel)
            .is_some_and(|sender| sender.receiver_count() == 0);
        if !unused {
            return;
        }
        self.routes.remove(&channel);
        if let Some(connection) = self.connection.as_mut()
            && let Err(e) = connection.unsubscribe(&channel).await
        {
            tracing::warn!(channel, error = %e, "pub/sub unsubscribe failed");
            self.lost("unsubscribe failed");
        }
    }

    fn dispatch(&self, channel: &str, payload: Vec<u8>) {
        if let Some(sender) = self.routes.get(channel) {
            // No receivers left: their release is on its way.
            let _ = sender.send(payload);
        }
    }

    async fn check_health(&mut self) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        if let Err(e) = connection.ping().await {
            tracing::warn!(error = %e, "pub/sub connection failed its health check");
            self.lost("health check failed");
        }
    }

    /// Drops the connection; the run loop retries while channels remain.
    fn lost(&mut self, why: &str) {
        if self.connection.take().is_some() {
            tracing::warn!(
                reason = why,
                channels = self.routes.len(),
                "pub/sub connection lost"
            );
        }
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.backoff.reset();
            self.retry_delay = self.backoff.next_delay();
            self.status.send_modify(|s| s.connected = false);
        }
    }

    async fn retry(&mut self) {
        match self.reconnect().await {
            Ok(()) => tracing::info!(channels = self.routes.len(), "pub/sub connection restored"),
            Err(e) => {
                // Never given up: subscriptions outlive any outage.
                let down_for = self.down_since.map_or(Duration::ZERO, |t| t.elapsed());
                self.retry_delay = self.backoff.next_delay();
                tracing::warn!(error = %e, ?down_for, retry_in = ?self.retry_delay, "pub/sub reconnection failed; retrying");
            }
        }
    }

    /// Opens a connection and subscribes every known channel on it.
    async fn reconnect(&mut self) -> Result<(), QueueError> {
        self.connection = None;
        let mut connection = Connection::open(&self.target, self.connect_timeout).await?;
        match &mut connection {
            Connection::Single { sink, .. } => {
                let channels: Vec<&String> = self.routes.keys().collect();
                if !channels.is_empty() {
                    with_timeout(sink.subscribe(channels)).await?;
                }
            }
            // One at a time: on a cluster the channels sit in different
            // slots, on different nodes.
            Connection::Cluster { .. } => {
                for channel in self.routes.keys() {
                    connection.subscribe(channel).await?;
                }
            }
        }
        self.connection = Some(connection);
        let was_down = self.down_since.take().is_some();
        self.backoff.reset();
        self.status.send_modify(|s| {
            s.connected = true;
            if was_down {
                s.generation += 1;
            }
        });
        Ok(())
    }
}

async fn with_timeout<T>(
    request: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(REPLY_TIMEOUT, request).await {
        Ok(result) => result.map_err(queue_error),
        Err(_) => Err(QueueError::Unavailable(
            "pub/sub request timed out".to_owned(),
        )),
    }
}
