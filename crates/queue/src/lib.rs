//! Work queues and pub/sub fan-out between Yixin services.
//!
//! This crate owns one port, [`Queue`], and its two adapters:
//!
//! - [`RedisQueue`] (production): Redis Streams with consumer groups for
//!   work, Redis pub/sub for fan-out.
//! - [`MemoryQueue`] (the embedded default, no server): the same observable
//!   behaviour in process, so the all-in-one binary and tests run without
//!   Redis.
//!
//! It owns the Redis keys and channels under its configured
//! [`QueueConfig::key_prefix`] and nothing else: it does not touch positions,
//! presence or locks kept elsewhere in Redis, never decodes payloads (they
//! are opaque bytes, protobuf from `proto/`), and holds no domain logic.
//! See the crate README for the key layout and the reasoning behind the
//! choices below.
//!
//! # Delivery semantics
//!
//! Delivery is *at least once*: an entry stays pending for its group until it
//! is acked, and an entry whose consumer died is taken over by another one
//! through [`Queue::reclaim`]. Consumers must therefore be idempotent.
//!
//! - A read counts as delivery 1; every reclaim adds 1 (as `XAUTOCLAIM`).
//! - On reclaim, an entry that has already been delivered
//!   [`QueueConfig::max_deliveries`] times is moved to the dead-letter stream
//!   of its stream (read it with [`Queue::dead_letters`]) and acked, instead
//!   of being delivered again. The move is atomic: two reclaimers racing for
//!   the same entry dead-letter it once.
//! - Groups start at id `0`: a group created after entries were published
//!   still receives them. Services create their groups at start-up, and a
//!   group that appears late (a new dispatcher shard, say) must not silently
//!   miss the orders already waiting on its stream.

mod backoff;
mod connection;
mod error;
mod id;
mod memory;
mod positions;
mod redis_positions;
mod redis_pubsub;
mod redis_queue;
mod subscription;

use std::time::Duration;

use async_trait::async_trait;

pub use backoff::Backoff;
pub use error::QueueError;
pub use memory::MemoryQueue;
pub use positions::{MemoryPositions, PositionBoard, PositionRecord};
pub use redis_positions::RedisPositions;
pub use redis_queue::RedisQueue;
pub use subscription::Subscription;

/// Id of a stream entry, in the Redis stream id format `"<ms>-<seq>"` in
/// both implementations. Ids grow strictly within a stream.
pub type EntryId = String;

/// One entry handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Id of the entry in its stream; pass it to [`Queue::ack`].
    pub id: EntryId,
    /// The bytes given to [`Queue::publish`].
    pub payload: Vec<u8>,
    /// How many times the entry has been handed out, this time included:
    /// 1 on first delivery, +1 per reclaim.
    pub deliveries: u64,
}

/// An entry that was given up on after [`QueueConfig::max_deliveries`]
/// deliveries, kept for inspection or manual replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id of this record in the dead-letter stream.
    pub id: EntryId,
    /// Id the entry had in its original stream.
    pub original_id: EntryId,
    /// The entry's payload.
    pub payload: Vec<u8>,
    /// How many times the entry had been delivered before it was moved.
    pub deliveries: u64,
    /// The consumer group that failed to process it.
    pub group: String,
}

/// Result of [`Queue::reclaim`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Entries now owned by the reclaiming consumer; process and ack them.
    pub deliveries: Vec<Delivery>,
    /// Original ids of entries moved to the dead-letter stream by this call.
    pub dead_lettered: Vec<EntryId>,
}

/// The state of a queue's pub/sub connection ([`Queue::pubsub_status`]).
///
/// Pub/sub is not durable: what was broadcast while the connection was down
/// is lost. Subscriptions survive (the connection is re-established and
/// every channel resubscribed, however long it takes), and `generation`
/// goes up by one after each recovery, so a subscriber re-reads what it may
/// have missed (waiting orders, live offers, the fleet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubSubStatus {
    /// The connection is up (or nothing has been lost yet).
    pub connected: bool,
    /// Recoveries so far.
    pub generation: u64,
}

impl Default for PubSubStatus {
    fn default() -> Self {
        Self {
            connected: true,
            generation: 0,
        }
    }
}

/// Waits until `status` reports a recovery past `seen` (a generation
/// other than it), records it in `seen` and returns the status. A recovery
/// that happened while the caller was busy elsewhere is returned at once.
/// Never returns if the queue cannot lose its connection (the in-process
/// queue), or once its status sender is gone.
pub async fn recovered(
    status: &mut tokio::sync::watch::Receiver<PubSubStatus>,
    seen: &mut u64,
) -> PubSubStatus {
    loop {
        let now = *status.borrow_and_update();
        if now.generation != *seen {
            *seen = now.generation;
            return now;
        }
        if status.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Settings shared by both implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Prepended to every Redis key and channel, e.g. `"yixin:"`. Tests use
    /// a unique prefix each so they can share one Redis.
    pub key_prefix: String,
    /// Deliveries after which a reclaimed entry is dead-lettered instead of
    /// being delivered again. Default 5.
    pub max_deliveries: u32,
    /// When set, each publish trims its stream to about this many entries
    /// (Redis `MAXLEN ~`: at least this many are kept; the in-process queue
    /// trims exactly). `None` keeps everything.
    pub max_stream_len: Option<usize>,
    /// Longest wait for the reply to a (non-blocking) Redis command, and for
    /// a connection; past it the call fails [`QueueError::Unavailable`].
    /// Default 5 s; services take `redis.command_timeout_ms`.
    pub command_timeout: std::time::Duration,
}

impl QueueConfig {
    /// The default settings with the given key prefix.
    pub fn with_prefix(key_prefix: impl Into<String>) -> Self {
        Self {
            key_prefix: key_prefix.into(),
            ..Self::default()
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            key_prefix: "yixin:".to_owned(),
            max_deliveries: 5,
            max_stream_len: None,
            command_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// The queue port: durable work streams with consumer groups, plus
/// non-durable pub/sub fan-out. Used as `Arc<dyn Queue>`.
///
/// Stream, group, consumer and channel names are plain strings chosen by the
/// caller; the implementation adds the key prefix.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends an entry to `stream` (`XADD`) and returns its id. When this
    /// returns, the entry is stored in the backend (for Redis: acknowledged by
    /// the server; surviving a Redis crash then depends on its persistence
    /// settings).
    async fn publish(&self, stream: &str, payload: &[u8]) -> Result<EntryId, QueueError>;

    /// Creates consumer group `group` on `stream`, creating the stream if
    /// needed (`XGROUP CREATE <stream> <group> 0 MKSTREAM`). Idempotent: an
    /// existing group is left as it is.
    ///
    /// The group starts at id `0`, not `$`: it also receives the entries
    /// published before it existed (see the crate docs for why).
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError>;

    /// Hands up to `max` entries that no consumer of `group` has seen yet to
    /// `consumer` (`XREADGROUP … STREAMS <stream> >`), waiting up to `block`
    /// for one to arrive when there are none; `Duration::ZERO` does not
    /// wait. Returns an empty list on timeout. Each returned entry is pending
    /// for the group until acked. Fails with [`QueueError::NoGroup`] when the
    /// group does not exist.
    ///
    /// Cancelling a blocking read (dropping the future, e.g. in a
    /// `select!` on shutdown) is safe but, on Redis, may leave entries the
    /// server handed out just then pending for `consumer`; reclaim picks them
    /// up after `min_idle`, as for a crashed consumer.
    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Marks entries as processed by `group` (`XACK`). Unknown or already
    /// acked ids, and a missing group, are ignored; an id that is not a
    /// stream id fails with [`QueueError::InvalidId`] and acks nothing.
    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<(), QueueError>;

    /// Takes over up to `max` entries of `group` that have been pending for at
    /// least `min_idle` (their consumer presumably died), in id order
    /// (`XAUTOCLAIM` to `consumer`). Entries already delivered
    /// [`QueueConfig::max_deliveries`] times are moved to the dead-letter
    /// stream and acked instead of being returned; both kinds count against
    /// `max`. Fails with [`QueueError::NoGroup`] when the group does not
    /// exist.
    async fn reclaim(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Reclaimed, QueueError>;

    /// The oldest `max` records of the dead-letter stream of `stream`.
    async fn dead_letters(&self, stream: &str, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Number of entries delivered to `group` and not acked yet (`XPENDING`
    /// summary). Fails with [`QueueError::NoGroup`] when the group does not
    /// exist.
    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64, QueueError>;

    /// Sends `payload` to every current subscriber of `channel`, on every
    /// instance (`PUBLISH`). Not durable: nobody subscribed, nobody gets it.
    async fn broadcast(&self, channel: &str, payload: &[u8]) -> Result<(), QueueError>;

    /// Subscribes to `channel` (`SUBSCRIBE`). Messages broadcast after this
    /// returns are delivered in order. A subscriber that falls too far behind
    /// skips the messages it missed (logged) rather than slowing others down.
    /// The stream ends only when dropped: a lost connection is
    /// re-established and the channel resubscribed, however long it takes
    /// (see [`PubSubStatus`] for what may be missed meanwhile).
    async fn subscribe(&self, channel: &str) -> Result<Subscription, QueueError>;

    /// As [`broadcast`](Self::broadcast), and says how many listeners got
    /// it: on Redis the instances subscribed to the channel (`PUBLISH`'s
    /// answer), in process the subscriptions. `0`: nobody heard it.
    async fn broadcast_counted(&self, channel: &str, payload: &[u8]) -> Result<u64, QueueError>;

    /// The pub/sub connection's state: down or up, and how many times it
    /// came back (see [`PubSubStatus`]). The in-process queue never loses it.
    fn pubsub_status(&self) -> tokio::sync::watch::Receiver<PubSubStatus>;

    /// Checks that the backend answers, for `/readyz`.
    async fn ping(&self) -> Result<(), QueueError>;
}

/// Rounds a non-zero duration up to whole milliseconds, at least 1, as Redis
/// takes milliseconds and a sub-millisecond block must still block.
fn ceil_millis(duration: Duration) -> u64 {
    let nanos = duration.as_nanos();
    let millis = nanos.div_ceil(1_000_000);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// Sends one contract-built pub/sub message (see `yixin_contracts::Broadcast`).
pub async fn send(queue: &dyn Queue, b: &yixin_contracts::Broadcast) -> Result<(), QueueError> {
    queue.broadcast(&b.channel, &b.payload).await
}

/// Sends each message, best effort like all pub/sub: a failure is logged
/// (`what` names the occasion) and the rest still go — unless the queue is
/// unavailable, when the rest are skipped; the change they report is
/// already committed and listeners catch up on reconnect.
pub async fn send_all(
    queue: &dyn Queue,
    broadcasts: impl IntoIterator<Item = yixin_contracts::Broadcast>,
    what: &str,
) {
    for b in broadcasts {
        if let Err(e) = send(queue, &b).await {
            tracing::warn!(channel = %b.channel, error = %e, "{what} not broadcast");
            if matches!(e, QueueError::Unavailable(_)) {
                // The rest would wait out the same timeout, one after another,
                // and keep the caller (an HTTP request) waiting.
                tracing::warn!(
                    "{what}: the queue is unavailable; the other broadcasts are skipped"
                );
                break;
            }
        }
    }
}
