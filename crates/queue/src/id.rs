//! Stream entry ids (`"<ms>-<seq>"`), parsed and generated as Redis does.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::QueueError;

/// A stream entry id; ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    /// Parses `"<ms>-<seq>"`, or `"<ms>"` meaning `"<ms>-0"`, as `XACK` does.
    pub(crate) fn parse(text: &str) -> Result<Self, QueueError> {
        let invalid = || QueueError::InvalidId(text.to_owned());
        let (ms, seq) = match text.split_once('-') {
            Some((ms, seq)) => (ms, Some(seq)),
            None => (text, None),
        };
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            s.parse::<u64>().map_err(|_| invalid())
        };
        Ok(Self {
            ms: number(ms)?,
            seq: seq.map(number).transpose()?.unwrap_or(0),
        })
    }

    /// The id `XADD … *` would give an entry appended after `last` now: the
    /// current time in ms, or `last`'s ms with the next sequence number if the
    /// clock has not moved past it (same millisecond, or the clock went back).
    pub(crate) fn next_after(last: Self) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        if now > last.ms {
            Self { ms: now, seq: 0 }
        } else {
            Self {
                ms: last.ms,
                seq: last.seq.saturating_add(1),
            }
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_redis_ids() {
        let id = StreamId::parse("1718000000000-7").unwrap();
        assert_eq!(
            id,
            StreamId {
                ms: 1_718_000_000_000,
                seq: 7
            }
        );
        assert_eq!(id.to_string(), "1718000000000-7");
        assert_eq!(StreamId::parse("5").unwrap(), StreamId { ms: 5, seq: 0 });
        for bad in ["", "-", "1-", "-1", "a-1", "1-b", "1-2-3", "+1-0", " 1-0"] {
            assert_eq!(
                StreamId::parse(bad),
                Err(QueueError::InvalidId(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_grow_strictly() {
        let mut last = StreamId::default();
        for _ in 0..1000 {
            let next = StreamId::next_after(last);
            assert!(next > last);
            last = next;
        }
        let future = StreamId {
            ms: u64::MAX - 1,
            seq: 3,
        };
        assert_eq!(
            StreamId::next_after(future),
            StreamId {
                ms: u64::MAX - 1,
                seq: 4
            }
        );
    }
}
