//! Latest nurse positions shared between instances, and the bounded trail.
//!
//! nurse-tracking writes here in coalesced batches (a few times a second,
//! never per fix), so the cost per fix stays tiny; readers (another
//! instance, the dispatcher, the dashboard) get each nurse's latest fix and
//! which H3 cell holds whom.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::QueueError;

/// One nurse's fix, as shared.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionRecord {
    pub nurse_id: String,
    pub org_id: String,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: f64,
    pub recorded_at_unix_ms: i64,
    /// The H3 cell (as its u64) holding the fix.
    pub cell: u64,
    /// The cell the nurse was in before, if it differs (membership moves).
    pub previous_cell: Option<u64>,
    /// The nurse entered `cell` (first fix, or a move) since the last write,
    /// so its membership must be written.
    pub cell_changed: bool,
}

/// Where latest positions live for everyone to read.
#[async_trait]
pub trait PositionBoard: Send + Sync + 'static {
    /// Writes the latest fix of each nurse in `latest` (position, geo set of
    /// the organisation, H3 cell membership) and appends `trail` to the
    /// bounded trail stream, in one round trip.
    async fn record(
        &self,
        latest: &[PositionRecord],
        trail: &[PositionRecord],
    ) -> Result<(), QueueError>;

    /// The latest fix of each nurse asked for (`None` if unknown).
    async fn latest(&self, nurse_ids: &[String])
    -> Result<Vec<Option<PositionRecord>>, QueueError>;

    /// The nurses whose latest fix is in `cell`.
    async fn nurses_in_cell(&self, cell: u64) -> Result<Vec<String>, QueueError>;

    /// Forgets a nurse (shift off): position, geo set and cell membership.
    async fn forget(
        &self,
        nurse_id: &str,
        org_id: &str,
        cell: Option<u64>,
    ) -> Result<(), QueueError>;

    /// The newest `max` trail entries, newest first.
    async fn trail(&self, max: usize) -> Result<Vec<PositionRecord>, QueueError>;
}

/// The in-process board of the embedded default.
#[derive(Debug, Default)]
pub struct MemoryPositions {
    inner: Mutex<MemoryInner>,
    trail_max: usize,
}

#[derive(Debug, Default)]
struct MemoryInner {
    latest: HashMap<String, PositionRecord>,
    cells: HashMap<u64, HashSet<String>>,
    trail: VecDeque<PositionRecord>,
}

impl MemoryPositions {
    /// A board whose trail keeps at most `trail_max` entries.
    pub fn new(trail_max: usize) -> Self {
        Self {
            inner: Mutex::default(),
            trail_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PositionBoard for MemoryPositions {
    async fn record(
        &self,
        latest: &[PositionRecord],
        trail: &[PositionRecord],
    ) -> Result<(), QueueError> {
        let mut inner = self.lock();
        for rec in latest {
            if let Some(prev) = inner.latest.get(&rec.nurse_id).map(|p| p.cell)
                && prev != rec.cell
                && let Some(set) = inner.cells.get_mut(&prev)
            {
                set.remove(&rec.nurse_id);
            }
            inner
                .cells
                .entry(rec.cell)
                .or_default()
                .insert(rec.nurse_id.clone());
            inner.latest.insert(rec.nurse_id.clone(), rec.clone());
        }
        for rec in trail {
            inner.trail.push_back(rec.clone());
        }
        while inner.trail.len() > self.trail_max {
            inner.trail.pop_front();
        }
        Ok(())
    }

    async fn latest(
        &self,
        nurse_ids: &[String],
    ) -> Result<Vec<Option<PositionRecord>>, QueueError> {
        let inner = self.lock();
        Ok(nurse_ids
            .iter()
            .map(|id| inner.latest.get(id).cloned())
            .collect())
    }

    async fn nurses_in_cell(&self, cell: u64) -> Result<Vec<String>, QueueError> {
        let inner = self.lock();
        let mut ids: Vec<String> = inner
            .cells
            .get(&cell)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        Ok(ids)
    }

    async fn forget(
        &self,
        nurse_id: &str,
        _org_id: &str,
        cell: Option<u64>,
    ) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let known = inner.latest.remove(nurse_id).map(|r| r.cell);
        for c in [known, cell].into_iter().flatten() {
            if let Some(set) = inner.cells.get_mut(&c) {
                set.remove(nurse_id);
            }
        }
        Ok(())
    }

    async fn trail(&self, max: usize) -> Result<Vec<PositionRecord>, QueueError> {
        let inner = self.lock();
        Ok(inner.trail.iter().rev().take(max).cloned().collect())
    }
}
