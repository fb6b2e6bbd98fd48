use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Messages broadcast on one channel, in order, from
/// [`Queue::subscribe`](crate::Queue::subscribe).
///
/// Both implementations fan messages out through a bounded
/// `tokio::sync::broadcast` channel per pub/sub channel. A subscriber that
/// falls more than that capacity behind skips the oldest messages it missed
/// (logged as a warning) instead of holding up the others or growing memory
/// without bound; pub/sub is not durable anyway.
pub struct Subscription {
    // Field order matters: the receiver is dropped before the guard tells
    // the owner that this subscriber is gone.
    messages: BoxStream<'static, Vec<u8>>,
    _guard: Option<Box<dyn Send + Sync>>,
}

/// Messages buffered per channel before slow subscribers start skipping.
pub(crate) const CHANNEL_CAPACITY: usize = 1024;

impl Subscription {
    /// Wraps a broadcast receiver; `guard` is dropped after the receiver.
    pub(crate) fn from_broadcast(
        channel: String,
        receiver: broadcast::Receiver<Vec<u8>>,
        guard: Option<Box<dyn Send + Sync>>,
    ) -> Self {
        let messages = BroadcastStream::new(receiver)
            .filter_map(move |message| {
                let message = match message {
                    Ok(payload) => Some(payload),
                    Err(BroadcastStreamRecvError::Lagged(skipped)) => {
                        tracing::warn!(channel = %channel, skipped, "slow subscriber skipped messages");
                        None
                    }
                };
                std::future::ready(message)
            })
            .boxed();
        Self {
            messages,
            _guard: guard,
        }
    }
}

impl Stream for Subscription {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.messages.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
