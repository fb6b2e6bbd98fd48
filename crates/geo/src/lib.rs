//! The nurse position index: pure (h3o + geo), no I/O.
//!
//! This crate owns [`GeoIndex`], the in-memory structure the dispatcher asks
//! for candidate nurses near an order and nurse-tracking keeps latest positions
//! in. It must not touch storage, queues, clocks or the network: callers feed
//! it positions and ask it questions.
//!
//! # Layout
//!
//! Entries live in per-H3-cell buckets (resolution 9 by default), each a
//! contiguous `Vec` of `(point, tag, key)` records, so a query scans memory
//! linearly instead of chasing pointers. A key map (`K -> (bucket, slot)`)
//! makes moves and removals O(1); a cell map (`CellIndex -> bucket`) finds a
//! cell's bucket; a small grandparent map (`CellIndex -> buckets`, two
//! resolutions up) serves sparse searches. About 85 bytes per nurse at 100k
//! nurses with 16-byte keys (see [`GeoIndex::memory_bytes`]).
//!
//! # Queries are exact
//!
//! [`GeoIndex::nearest`] and [`GeoIndex::within`] return exactly what a linear
//! scan would: filter by predicate and radius, order by [`haversine_m`] then by
//! key. They search ring by ring around the query's cell and stop once a
//! conservative lower bound on the distance to every unsearched cell exceeds
//! the current k-th distance (the `geometry` module gives the bound; a test
//! re-measures its figures over the globe). Candidates are ranked with
//! trig-free bounds on the haversine term and only the few that can make the
//! answer get an exact distance. When many rings would remain (a sparse
//! fleet, a selective predicate, a wide radius), the walk continues over rings
//! of grandparent cells, 49 cells a step. Near pentagons, where H3's fast
//! ring walk fails, and for searches so wide they would visit more cells than
//! the index holds, they fall back to scanning every bucket, still exactly.

mod cell_hash;
mod distance;
mod geometry;
mod index;

pub use distance::{EARTH_RADIUS_M, haversine_m};
pub use index::{GeoIndex, IndexConfig, Neighbour};

#[doc(hidden)]
pub use geometry::{RingGeometry, ring_geometry};
