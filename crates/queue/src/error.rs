/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The backend cannot be reached or did not answer in time (connection
    /// refused, dropped, timed out, server loading). Retrying later may
    /// succeed; `/readyz` reports not ready.
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something this adapter did not expect.
    #[error("unexpected reply from the queue backend: {0}")]
    Protocol(String),
    /// The consumer group does not exist on the stream: call
    /// [`Queue::ensure_group`](crate::Queue::ensure_group) first.
    #[error("stream {stream:?} has no consumer group {group:?}")]
    NoGroup {
        /// Stream name, without the key prefix.
        stream: String,
        /// Group name.
        group: String,
    },
    /// An entry id is not a stream id (`"<ms>-<seq>"` or `"<ms>"`).
    #[error("invalid stream entry id {0:?}")]
    InvalidId(String),
    /// The configuration cannot be used, e.g. an unparsable Redis URL.
    #[error("invalid queue configuration: {0}")]
    Config(String),
}
