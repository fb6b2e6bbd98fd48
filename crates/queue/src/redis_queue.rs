//! The Redis adapter: Streams with consumer groups, and pub/sub.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamMaxlen, StreamPendingReply, StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, AsyncConnectionConfig, ErrorKind, RedisError, RetryMethod, Value};

use crate::connection::{Conn, Target};
use crate::id::StreamId;
use crate::redis_pubsub::PubSubHub;
use crate::{
    DeadLetter, Delivery, EntryId, Queue, QueueConfig, QueueError, Reclaimed, Subscription,
    ceil_millis,
};

/// Extra time granted to a blocking read beyond its `BLOCK` before giving up
/// on the connection.
const BLOCK_GRACE: Duration = Duration::from_secs(5);
/// Idle connections kept for blocking reads; more are opened on demand.
const MAX_IDLE_BLOCKING_CONNECTIONS: usize = 8;

/// Payload field of a stream entry.
const PAYLOAD_FIELD: &str = "p";

/// [`Queue`] on Redis (6.2 or later), one server or a Redis Cluster (7.0 or
/// later, for sharded pub/sub).
///
/// Key layout, for a stream `s`, channel `c` and prefix `P`:
/// - `P{s}`: the stream (entries have one binary field, `p`);
/// - `P{s}:dead`: its dead-letter stream (fields `payload`, `original_id`,
///   `deliveries`, `group`). The braces are a hash tag, so both keys sit in
///   the same cluster slot, as the reclaim script touching both requires;
/// - `Pc`: the pub/sub channel.
///
/// Commands go through one auto-reconnecting multiplexed connection
/// ([`ConnectionManager`]). Blocking reads do not: a multiplexed connection
/// pipelines, so a `BLOCK` read would hold up every command queued behind it
/// (and outlive its response timeout). They use dedicated connections from a
/// small pool instead, one per concurrent blocking read. Pub/sub uses one
/// shared connection per `RedisQueue`, fanned out in process (see
/// [`subscribe`](Queue::subscribe)).
///
/// On a cluster every command touches one stream (and its dead letters,
/// same slot), so it goes to that slot's node; pub/sub is sharded
/// (`SPUBLISH`/`SSUBSCRIBE`), each channel on the node owning its slot.
///
/// Clones share connections.
#[derive(Clone)]
pub struct RedisQueue {
    config: QueueConfig,
    commands: Conn,
    blocking: Arc<BlockingPool>,
    pubsub: PubSubHub,
    reclaim_script: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connects to Redis at `url`: one server
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` with TLS if
    /// the redis crate was built with it), or a Redis Cluster through its seed
    /// nodes (`redis+cluster://[user:password@]host:port,host:port,…`). Fails
    /// with [`QueueError::Unavailable`] if the server (or no seed) can be
    /// reached after a few retries. Must be called within a Tokio runtime.
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self, QueueError> {
        let target = Target::parse(url)?;
        let timeout = config.command_timeout;
        let commands = match &target {
            Target::Single(client) => {
                let manager_config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout));
                Conn::Managed(
                    ConnectionManager::new_with_config(client.clone(), manager_config)
                        .await
                        .map_err(unavailable)?,
                )
            }
            Target::Cluster(nodes) => {
                let client = Target::cluster_client(nodes, timeout, Some(timeout), None)
                    .map_err(|e| QueueError::Config(e.to_string()))?;
                Conn::Cluster(bounded(timeout, client.get_async_connection()).await?)
            }
        };
        let blocking = match &target {
            Target::Single(client) => BlockingSource::Single(client.clone()),
            Target::Cluster(nodes) => BlockingSource::Cluster(Box::new(
                Target::cluster_client(nodes, timeout, None, None)
                    .map_err(|e| QueueError::Config(e.to_string()))?,
            )),
        };
        Ok(Self {
            config,
            commands,
            blocking: Arc::new(BlockingPool {
                source: blocking,
                connect_timeout: timeout,
                idle: Mutex::new(Vec::new()),
            }),
            pubsub: PubSubHub::start(target, timeout),
            reclaim_script: Arc::new(redis::Script::new(include_str!("reclaim.lua"))),
        })
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.commands.is_cluster()
    }

    /// The position board on the same connection and key prefix; its trail
    /// stream keeps about `trail_max` entries.
    pub fn positions(&self, trail_max: usize) -> crate::RedisPositions {
        crate::RedisPositions::new(
            self.commands.clone(),
            self.config.key_prefix.clone(),
            trail_max,
            self.config.command_timeout,
        )
    }

    /// The configuration this queue was built with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    fn stream_key(&self, stream: &str) -> String {
        format!("{}{{{stream}}}", self.config.key_prefix)
    }

    fn dead_key(&self, stream: &str) -> String {
        format!("{}:dead", self.stream_key(stream))
    }

    fn channel_name(&self, channel: &str) -> String {
        format!("{}{channel}", self.config.key_prefix)
    }

    async fn read_blocking(
        &self,
        key: &str,
        options: &StreamReadOptions,
        block: Duration,
    ) -> Result<Option<StreamReadReply>, RedisError> {
        let (mut conn, pooled) = self.blocking.take().await?;
        let mut result = self.read_on(&mut conn, key, options, block).await;
        if pooled && result.as_ref().is_err_and(is_connection_error) {
            // An idle pooled connection may have died with a server restart;
            // try once more on a fresh one.
            (conn, _) = self.blocking.connect().await.map(|c| (c, false))?;
            result = self.read_on(&mut conn, key, options, block).await;
        }
        match &result {
            Err(e) if is_connection_error(e) => {}
            _ => self.blocking.put_back(conn),
        }
        result
    }

    async fn read_on(
        &self,
        conn: &mut Conn,
        key: &str,
        options: &StreamReadOptions,
        block: Duration,
    ) -> Result<Option<StreamReadReply>, RedisError> {
        let keys = [key];
        let read = conn.xread_options(&keys, &[">"], options);
        match tokio::time::timeout(block.saturating_add(BLOCK_GRACE), read).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "blocking read got no reply in time",
            ))),
        }
    }
}

/// Where blocking-read connections come from.
enum BlockingSource {
    Single(redis::Client),
    /// A client without a response timeout (the read sets one from its
    /// `BLOCK`); each connection reaches every node, the read goes to its
    /// stream's.
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// Dedicated connections for blocking reads. Each is used by one read at a
/// time; they have no response timeout of their own (the read sets one from
/// its `BLOCK`).
struct BlockingPool {
    source: BlockingSource,
    connect_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl BlockingPool {
    /// An idle connection, or a new one; `true` if it came from the pool.
    async fn take(&self) -> Result<(Conn, bool), RedisError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok((conn, true)),
            None => Ok((self.connect().await?, false)),
        }
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        match &self.source {
            BlockingSource::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(None);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Plain)
            }
            BlockingSource::Cluster(client) => {
                let connect = client.get_async_connection();
                match tokio::time::timeout(self.connect_timeout, connect).await {
                    Ok(conn) => conn.map(Conn::Cluster),
                    Err(_) => Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no cluster connection in time",
                    ))),
                }
            }
        }
    }

    fn put_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_BLOCKING_CONNECTIONS {
            idle.push(conn);
        }
    }
}

/// Runs a command within `limit`. The connection manager's own response
/// timeout does not cover a reconnection to a server that accepts but never
/// answers; this does, so no caller (an HTTP request above all) waits longer.
pub(crate) async fn bounded<T>(
    limit: Duration,
    command: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, command).await {
        Ok(result) => result.map_err(queue_error),
        Err(_) => Err(QueueError::Unavailable(format!(
            "no reply within {} ms",
            limit.as_millis()
        ))),
    }
}

/// Connection-level failures: the connection is not worth reusing.
fn is_connection_error(e: &RedisError) -> bool {
    !matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        && (e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error())
}

/// Maps a Redis error to the port's error.
pub(crate) fn queue_error(e: RedisError) -> QueueError {
    if is_connection_error(&e) || matches!(e.retry_method(), RetryMethod::WaitAndRetry) {
        unavailable(e)
    } else {
        QueueError::Protocol(e.to_string())
    }
}

pub(crate) fn unavailable(e: RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// As [`queue_error`], recognising a missing stream or group (`NOGROUP`,
/// also when raised inside a script).
fn group_error(e: RedisError, stream: &str, group: &str) -> QueueError {
    if e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP") {
        QueueError::NoGroup {
            stream: stream.to_owned(),
            group: group.to_owned(),
        }
    } else {
        queue_error(e)
    }
}

fn payload_of(id: &str, mut fields: std::collections::HashMap<String, Value>) -> Vec<u8> {
    match fields.remove(PAYLOAD_FIELD) {
        Some(Value::BulkString(bytes)) => bytes,
        other => {
            // Not written by this crate. Hand it over empty rather than fail
            // the whole read and block the group behind it forever.
            tracing::warn!(id, field = ?other, "stream entry without a payload field");
            Vec::new()
        }
    }
}

fn field<T: redis::FromRedisValue>(
    entry: &redis::streams::StreamId,
    name: &str,
) -> Result<T, QueueError> {
    entry.get(name).ok_or_else(|| {
        QueueError::Protocol(format!(
            "dead-letter record {} has no valid field {name:?}",
            entry.id
        ))
    })
}

#[async_trait]
impl Queue for RedisQueue {
    async fn publish(&self, stream: &str, payload: &[u8]) -> Result<EntryId, QueueError> {
        let key = self.stream_key(stream);
        let items = [(PAYLOAD_FIELD, payload)];
        let mut conn = self.commands.clone();
        let id: Option<String> = bounded(self.config.command_timeout, async {
            match self.config.max_stream_len {
                Some(len) => {
                    conn.xadd_maxlen(&key, StreamMaxlen::Approx(len), "*", &items)
                        .await
                }
                None => conn.xadd(&key, "*", &items).await,
            }
        })
        .await?;
        id.ok_or_else(|| QueueError::Protocol("XADD returned no id".to_owned()))
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        let mut conn = self.commands.clone();
        let created: Result<(), RedisError> = conn
            .xgroup_create_mkstream(self.stream_key(stream), group, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map_err(queue_error),
        }
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = self.stream_key(stream);
        let options = StreamReadOptions::default()
            .group(group, consumer)
            .count(max);
        let reply = if block.is_zero() {
            // No BLOCK at all: `BLOCK 0` would mean "wait forever".
            let mut conn = self.commands.clone();
            conn.xread_options(&[&key], &[">"], &options).await
        } else {
            let millis = usize::try_from(ceil_millis(block)).unwrap_or(usize::MAX);
            self.read_blocking(&key, &options.block(millis), block)
                .await
        }
        .map_err(|e| group_error(e, stream, group))?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| Delivery {
                payload: payload_of(&entry.id, entry.map),
                id: entry.id,
                deliveries: 1,
            })
            .collect())
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<(), QueueError> {
        // Validate locally, so both implementations reject the same ids.
        for id in ids {
            StreamId::parse(id)?;
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.commands.clone();
        let _acked: usize = bounded(
            self.config.command_timeout,
            conn.xack(self.stream_key(stream), group, ids),
        )
        .await?;
        Ok(())
    }

    async fn reclaim(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Reclaimed, QueueError> {
        if max == 0 {
            // XAUTOCLAIM rejects COUNT 0; still report a missing group.
            self.pending_count(stream, group).await?;
            return Ok(Reclaimed::default());
        }
        let mut conn = self.commands.clone();
        let (delivered, dead_lettered): (Vec<(String, Vec<u8>, u64)>, Vec<String>) = self
            .reclaim_script
            .key(self.stream_key(stream))
            .key(self.dead_key(stream))
            .arg(group)
            .arg(consumer)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(max)
            .arg(self.config.max_deliveries)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| group_error(e, stream, group))?;
        Ok(Reclaimed {
            deliveries: delivered
                .into_iter()
                .map(|(id, payload, deliveries)| Delivery {
                    id,
                    payload,
                    deliveries,
                })
                .collect(),
            dead_lettered,
        })
    }

    async fn dead_letters(&self, stream: &str, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.commands.clone();
        let reply: StreamRangeReply = conn
            .xrange_count(self.dead_key(stream), "-", "+", max)
            .await
            .map_err(queue_error)?;
        reply
            .ids
            .iter()
            .map(|entry| {
                Ok(DeadLetter {
                    id: entry.id.clone(),
                    original_id: field(entry, "original_id")?,
                    payload: field(entry, "payload")?,
                    deliveries: field(entry, "deliveries")?,
                    group: field(entry, "group")?,
                })
            })
            .collect()
    }

    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64, QueueError> {
        let mut conn = self.commands.clone();
        let reply: StreamPendingReply = conn
            .xpending(self.stream_key(stream), group)
            .await
            .map_err(|e| group_error(e, stream, group))?;
        Ok(u64::try_from(reply.count()).unwrap_or(u64::MAX))
    }

    async fn broadcast(&self, channel: &str, payload: &[u8]) -> Result<(), QueueError> {
        self.broadcast_counted(channel, payload).await.map(|_| ())
    }

    async fn broadcast_counted(&self, channel: &str, payload: &[u8]) -> Result<u64, QueueError> {
        let mut conn = self.commands.clone();
        // On a cluster, sharded pub/sub: the message goes to the node owning
        // the channel's slot, where every subscriber of it is (see
        // `redis_pubsub`), and the count it returns is all of them. Plain
        // PUBLISH would travel the whole cluster bus and count one node's.
        let command = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        bounded(
            self.config.command_timeout,
            redis::cmd(command)
                .arg(self.channel_name(channel))
                .arg(payload)
                .query_async(&mut conn),
        )
        .await
    }

    fn pubsub_status(&self) -> tokio::sync::watch::Receiver<crate::PubSubStatus> {
        self.pubsub.status()
    }

    /// One pub/sub connection per `RedisQueue` carries every channel its
    /// subscribers asked for, fanned out in process through one bounded
    /// broadcast channel per channel. A connection per subscription would
    /// cost a Redis connection per WebSocket holder. The connection is
    /// re-established (and its channels resubscribed) when lost; messages
    /// published meanwhile are missed (see `pubsub_status`). Subscriptions
    /// never end because Redis was away (see the crate README).
    async fn subscribe(&self, channel: &str) -> Result<Subscription, QueueError> {
        self.pubsub.subscribe(self.channel_name(channel)).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.commands.clone();
        if conn.is_cluster() {
            return bounded(
                self.config.command_timeout,
                crate::connection::cluster_ready(&mut conn),
            )
            .await?
            .map_err(QueueError::Unavailable);
        }
        let _pong: String = bounded(
            self.config.command_timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        Ok(())
    }
}
