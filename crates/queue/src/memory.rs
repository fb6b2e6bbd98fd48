//! The in-process queue: the same observable behaviour as Redis Streams and
//! pub/sub, for the embedded single-binary setup and tests.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::id::StreamId;
use crate::subscription::CHANNEL_CAPACITY;
use crate::{
    DeadLetter, Delivery, EntryId, Queue, QueueConfig, QueueError, Reclaimed, Subscription,
};

/// In-process [`Queue`]: streams, consumer groups, pending entries lists and
/// pub/sub held in memory, mirroring Redis semantics (ids, delivery counts,
/// reclaim and dead-lettering, blocking reads). Nothing survives the process.
///
/// Clones share the same state; a clone stands for "another instance" of a
/// service talking to the same queue.
#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

struct Inner {
    config: QueueConfig,
    /// Never changes: nothing in process loses its connection.
    pubsub: tokio::sync::watch::Sender<crate::PubSubStatus>,
    // A std mutex, only ever held for short synchronous sections, never
    // across an await.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, StreamState>,
    channels: HashMap<String, broadcast::Sender<Vec<u8>>>,
}

struct StreamState {
    entries: BTreeMap<StreamId, Vec<u8>>,
    last_id: StreamId,
    groups: HashMap<String, Group>,
    dead: DeadStream,
    /// Woken on every publish, for blocked readers.
    published: Arc<Notify>,
}

struct Group {
    last_delivered: StreamId,
    pending: BTreeMap<StreamId, PendingEntry>,
}

/// A delivered, unacked entry. Which consumer owns it is not observable
/// through the port, so it is not kept.
struct PendingEntry {
    deliveries: u64,
    last_delivery: Instant,
}

/// The dead-letter stream `<stream>:dead`. Kept beside its stream rather
/// than as an ordinary stream because, as in Redis (where it shares the
/// stream's hash slot), it is only reachable through `dead_letters`.
#[derive(Default)]
struct DeadStream {
    records: BTreeMap<StreamId, DeadRecord>,
    last_id: StreamId,
}

struct DeadRecord {
    original_id: StreamId,
    payload: Vec<u8>,
    deliveries: u64,
    group: String,
}

impl StreamState {
    fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            last_id: StreamId::default(),
            groups: HashMap::new(),
            dead: DeadStream::default(),
            published: Arc::new(Notify::new()),
        }
    }
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                pubsub: tokio::sync::watch::channel(crate::PubSubStatus::default()).0,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The configuration this queue was built with.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything
        // that could panic, so a poisoned lock is still safe to use.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(QueueConfig::default())
    }
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn no_group(stream: &str, group: &str) -> QueueError {
    QueueError::NoGroup {
        stream: stream.to_owned(),
        group: group.to_owned(),
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn publish(&self, stream: &str, payload: &[u8]) -> Result<EntryId, QueueError> {
        let mut state = self.state();
        let s = state
            .streams
            .entry(stream.to_owned())
            .or_insert_with(StreamState::new);
        let id = StreamId::next_after(s.last_id);
        s.last_id = id;
        s.entries.insert(id, payload.to_vec());
        if let Some(max_len) = self.inner.config.max_stream_len {
            while s.entries.len() > max_len {
                s.entries.pop_first();
            }
        }
        s.published.notify_waiters();
        Ok(id.to_string())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        let mut state = self.state();
        state
            .streams
            .entry(stream.to_owned())
            .or_insert_with(StreamState::new)
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| Group {
                last_delivered: StreamId::default(),
                pending: BTreeMap::new(),
            });
        Ok(())
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        _consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // `None`: a block too long to represent, i.e. wait indefinitely.
        let deadline = Instant::now().checked_add(block);
        loop {
            let woken = {
                let mut state = self.state();
                let s = state
                    .streams
                    .get_mut(stream)
                    .ok_or_else(|| no_group(stream, group))?;
                let g = s
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| no_group(stream, group))?;
                let now = Instant::now();
                let fresh: Vec<(StreamId, Vec<u8>)> = s
                    .entries
                    .range((Bound::Excluded(g.last_delivered), Bound::Unbounded))
                    .take(max)
                    .map(|(id, payload)| (*id, payload.clone()))
                    .collect();
                if !fresh.is_empty() {
                    let mut out = Vec::with_capacity(fresh.len());
                    for (id, payload) in fresh {
                        g.last_delivered = id;
                        g.pending.insert(
                            id,
                            PendingEntry {
                                deliveries: 1,
                                last_delivery: now,
                            },
                        );
                        out.push(Delivery {
                            id: id.to_string(),
                            payload,
                            deliveries: 1,
                        });
                    }
                    return Ok(out);
                }
                if deadline.is_some_and(|deadline| now >= deadline) {
                    return Ok(Vec::new());
                }
                // Register for the wake-up while still holding the lock, so a
                // publish between unlocking and awaiting is not missed.
                let mut woken = Box::pin(Arc::clone(&s.published).notified_owned());
                woken.as_mut().enable();
                woken
            };
            // Woken or timed out: either way the next pass decides.
            match deadline {
                Some(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, woken).await;
                }
                None => woken.await,
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[EntryId]) -> Result<(), QueueError> {
        let ids = ids
            .iter()
            .map(|id| StreamId::parse(id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut state = self.state();
        if let Some(g) = state
            .streams
            .get_mut(stream)
            .and_then(|s| s.groups.get_mut(group))
        {
            for id in ids {
                g.pending.remove(&id);
            }
        }
        Ok(())
    }

    async fn reclaim(
        &self,
        stream: &str,
        group: &str,
        _consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Reclaimed, QueueError> {
        let max_deliveries = u64::from(self.inner.config.max_deliveries);
        let mut state = self.state();
        let StreamState {
            entries,
            groups,
            dead,
            ..
        } = state
            .streams
            .get_mut(stream)
            .ok_or_else(|| no_group(stream, group))?;
        let g = groups
            .get_mut(group)
            .ok_or_else(|| no_group(stream, group))?;
        let mut reclaimed = Reclaimed::default();
        if max == 0 {
            return Ok(reclaimed);
        }
        let now = Instant::now();
        // As XAUTOCLAIM: scan the pending list in id order from the start,
        // looking at no more than 10 × COUNT entries.
        let mut attempts = max.saturating_mul(10);
        let mut remaining = max;
        let candidates: Vec<StreamId> = g.pending.keys().copied().collect();
        for id in candidates {
            if attempts == 0 || remaining == 0 {
                break;
            }
            attempts -= 1;
            let Some(entry) = g.pending.get_mut(&id) else {
                continue;
            };
            if now.saturating_duration_since(entry.last_delivery) < min_idle {
                continue;
            }
            let Some(payload) = entries.get(&id) else {
                // Trimmed away while pending: Redis drops it from the list.
                g.pending.remove(&id);
                continue;
            };
            remaining -= 1;
            if entry.deliveries >= max_deliveries {
                let deliveries = entry.deliveries;
                g.pending.remove(&id);
                let dead_id = StreamId::next_after(dead.last_id);
                dead.last_id = dead_id;
                dead.records.insert(
                    dead_id,
                    DeadRecord {
                        original_id: id,
                        payload: payload.clone(),
                        deliveries,
                        group: group.to_owned(),
                    },
                );
                reclaimed.dead_lettered.push(id.to_string());
            } else {
                entry.deliveries += 1;
                entry.last_delivery = now;
                reclaimed.deliveries.push(Delivery {
                    id: id.to_string(),
                    payload: payload.clone(),
                    deliveries: entry.deliveries,
                });
            }
        }
        Ok(reclaimed)
    }

    async fn dead_letters(&self, stream: &str, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let state = self.state();
        let Some(s) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        Ok(s.dead
            .records
            .iter()
            .take(max)
            .map(|(id, record)| DeadLetter {
                id: id.to_string(),
                original_id: record.original_id.to_string(),
                payload: record.payload.clone(),
                deliveries: record.deliveries,
                group: record.group.clone(),
            })
            .collect())
    }

    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64, QueueError> {
        let state = self.state();
        let g = state
            .streams
            .get(stream)
            .and_then(|s| s.groups.get(group))
            .ok_or_else(|| no_group(stream, group))?;
        Ok(u64::try_from(g.pending.len()).unwrap_or(u64::MAX))
    }

    async fn broadcast(&self, channel: &str, payload: &[u8]) -> Result<(), QueueError> {
        self.broadcast_counted(channel, payload).await.map(|_| ())
    }

    async fn broadcast_counted(&self, channel: &str, payload: &[u8]) -> Result<u64, QueueError> {
        let mut state = self.state();
        let Some(sender) = state.channels.get(channel) else {
            return Ok(0);
        };
        match sender.send(payload.to_vec()) {
            Ok(receivers) => Ok(receivers as u64),
            Err(_) => {
                // Nobody listens any more: forget the channel.
                state.channels.remove(channel);
                Ok(0)
            }
        }
    }

    fn pubsub_status(&self) -> tokio::sync::watch::Receiver<crate::PubSubStatus> {
        self.inner.pubsub.subscribe()
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, QueueError> {
        let receiver = self
            .state()
            .channels
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        // The subscription keeps the state alive, so that, as with Redis, it
        // ends only when dropped, not when the queue handle goes away.
        let keep_alive: Box<dyn Send + Sync> = Box::new(Arc::clone(&self.inner));
        Ok(Subscription::from_broadcast(
            channel.to_owned(),
            receiver,
            Some(keep_alive),
        ))
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
}
