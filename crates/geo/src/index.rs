//! [`GeoIndex`]: latest positions bucketed by H3 cell, with exact k-nearest queries.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::mem::size_of;

use h3o::{CellIndex, LatLng, Resolution};
use yixin_domain::GeoPoint;

use crate::cell_hash::CellHashBuilder;
use crate::distance::{Origin, distance_lower_m, distance_upper_m, h_surely_within, h_threshold};
use crate::geometry::{RingGeometry, ring_geometry};

/// How the index buckets positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    /// H3 resolution of the buckets.
    ///
    /// The default, 9 (mean edge ≈ 200 m, ≈ 0.1 km² per cell), is the
    /// fastest for nearest-10 at the design load, 100k nurses over a
    /// 20 km × 20 km city (≈ 26 per cell): a query reads its own cell and
    /// its six neighbours and stops, ~2.8 µs against ~5.0 µs at resolution 8
    /// (≈ 180 per cell, seven times the entries read) and ~3.3 µs at
    /// resolution 10 (more, mostly empty, cells to walk). For sparse fleets
    /// or selective predicates (under ~25 matching nurses per km²)
    /// resolution 8 is faster, by up to ~2× (~6 µs against ~11–12 µs at 1k
    /// nurses with a 1-in-16 predicate), and uses fewer bytes per nurse.
    /// Figures from `cargo bench -p yixin-geo` on a shared 2-core machine.
    pub resolution: Resolution,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            resolution: Resolution::Nine,
        }
    }
}

/// One query result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour<K> {
    /// The entry's key.
    pub key: K,
    /// Great-circle distance from the query point, metres ([`crate::haversine_m`]).
    pub distance_m: f64,
    /// The entry's tag at query time.
    pub tag: u64,
    /// The entry's position.
    pub point: GeoPoint,
}

/// Where a key's record lives.
#[derive(Debug, Clone, Copy)]
struct Loc {
    bucket: u32,
    slot: u32,
}

/// One record, stored inline in its cell's bucket: everything a query reads.
#[derive(Debug, Clone, Copy)]
struct Item<K> {
    point: GeoPoint,
    tag: u64,
    key: K,
}

/// The records of one H3 cell.
#[derive(Debug, Clone)]
struct Bucket<K> {
    cell: CellIndex,
    /// The cell's centre, cached for per-cell pruning.
    center_lat: f64,
    center_lng: f64,
    /// Empty exactly when the bucket is on the free list.
    items: Vec<Item<K>>,
}

/// Latest positions of keyed entries (nurses), bucketed by H3 cell.
///
/// See the crate docs for layout and exactness. Not thread-safe by itself;
/// wrap it in a lock (reads are `&self`).
#[derive(Clone)]
pub struct GeoIndex<K> {
    res: Resolution,
    geom: RingGeometry,
    keys: HashMap<K, Loc>,
    cells: HashMap<CellIndex, u32, CellHashBuilder>,
    buckets: Vec<Bucket<K>>,
    /// Indices of empty buckets, reused before growing `buckets`.
    free: Vec<u32>,
    /// Two resolutions coarser (49 × the area), for sparse or selective
    /// searches; `None` at resolutions 0 and 1.
    coarse: Option<Coarse>,
}

/// Occupied buckets grouped by their cell's H3 grandparent.
///
/// When a search must reach many rings out (few entries pass the predicate,
/// or the fleet is sparse), walking rings of grandparents covers the same
/// ground in about 1/7 of the ring steps and skips empty regions 49 cells at
/// a time.
#[derive(Debug, Clone)]
struct Coarse {
    res: Resolution,
    geom: RingGeometry,
    cells: HashMap<CellIndex, CoarseCell, CellHashBuilder>,
}

/// A grandparent cell with at least one occupied bucket below it.
#[derive(Debug, Clone)]
struct CoarseCell {
    /// The cell's centre, cached for pruning whole grandparents.
    center_lat: f64,
    center_lng: f64,
    buckets: Vec<u32>,
}

impl Coarse {
    /// Files a new bucket under its cell's grandparent.
    fn add(&mut self, cell: CellIndex, bucket: u32) {
        let Some(parent) = cell.parent(self.res) else {
            return;
        };
        self.cells
            .entry(parent)
            .or_insert_with(|| {
                let center = LatLng::from(parent);
                CoarseCell {
                    center_lat: center.lat(),
                    center_lng: center.lng(),
                    buckets: Vec::new(),
                }
            })
            .buckets
            .push(bucket);
    }

    /// Forgets a freed bucket (at most 49 per grandparent: a linear search).
    fn remove(&mut self, cell: CellIndex, bucket: u32) {
        if let Some(parent) = cell.parent(self.res)
            && let Some(cc) = self.cells.get_mut(&parent)
        {
            cc.buckets.retain(|&b| b != bucket);
            if cc.buckets.is_empty() {
                self.cells.remove(&parent);
            }
        }
    }
}

/// How a ring walk ended.
enum Walk {
    /// No unsearched cell can hold anything of interest.
    Done,
    /// Better continued by the coarse walk (the collector is reset first).
    Coarse,
    /// Give up on rings: scan every bucket (the collector is reset first).
    Scan,
}

impl<K> fmt::Debug for GeoIndex<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIndex")
            .field("resolution", &self.res)
            .field("len", &self.keys.len())
            .field("cells", &self.cells.len())
            .finish_non_exhaustive()
    }
}

/// The H3 cell containing `p`.
#[expect(
    clippy::expect_used,
    reason = "LatLng::new only refuses non-finite values; GeoPoint is always finite"
)]
fn cell_of_point(p: &GeoPoint, res: Resolution) -> CellIndex {
    LatLng::new(p.lat(), p.lng())
        .expect("GeoPoint is finite")
        .to_cell(res)
}

/// `(key, loc)` pairs and `(cell, bucket)` pairs: bytes held by a std
/// (hashbrown) map of this capacity — buckets are a power of two at most 7/8
/// full, each holding one pair plus a control byte, plus one group of
/// trailing control bytes.
fn hash_map_bytes(capacity: usize, pair_size: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (pair_size + 1) + 16
}

impl<K: Copy + Eq + Hash> GeoIndex<K> {
    /// An empty index.
    pub fn new(config: IndexConfig) -> Self {
        Self::with_capacity(config, 0)
    }

    /// An empty index with room for `n` keys without rehashing.
    pub fn with_capacity(config: IndexConfig, n: usize) -> Self {
        Self {
            res: config.resolution,
            geom: ring_geometry(config.resolution),
            keys: HashMap::with_capacity(n),
            cells: HashMap::with_hasher(CellHashBuilder::default()),
            buckets: Vec::new(),
            free: Vec::new(),
            coarse: coarse_resolution(config.resolution).map(|res| Coarse {
                res,
                geom: ring_geometry(res),
                cells: HashMap::default(),
            }),
        }
    }

    /// The configured bucket resolution.
    pub fn resolution(&self) -> Resolution {
        self.res
    }

    /// Insert, or move an existing key (changing its cell if needed). `tag` is
    /// an opaque u64 the caller uses for filtering (e.g. skill bitmask | free flag).
    pub fn upsert(&mut self, key: K, point: GeoPoint, tag: u64) {
        let cell = cell_of_point(&point, self.res);
        let item = Item { point, tag, key };
        match self.keys.get(&key).copied() {
            Some(loc) => {
                let bucket = &mut self.buckets[loc.bucket as usize];
                if bucket.cell == cell {
                    // Same cell (the common case for a moving nurse): overwrite in place.
                    bucket.items[loc.slot as usize] = item;
                    return;
                }
                self.detach(loc);
                let new_loc = self.attach(cell, item);
                if let Some(l) = self.keys.get_mut(&key) {
                    *l = new_loc;
                }
            }
            None => {
                let loc = self.attach(cell, item);
                self.keys.insert(key, loc);
            }
        }
    }

    /// Change a key's tag; false if the key is absent.
    pub fn set_tag(&mut self, key: &K, tag: u64) -> bool {
        match self.keys.get(key) {
            Some(loc) => {
                self.buckets[loc.bucket as usize].items[loc.slot as usize].tag = tag;
                true
            }
            None => false,
        }
    }

    /// Remove a key, returning its last position.
    pub fn remove(&mut self, key: &K) -> Option<GeoPoint> {
        let loc = self.keys.remove(key)?;
        Some(self.detach(loc).point)
    }

    /// A key's position and tag.
    pub fn get(&self, key: &K) -> Option<(GeoPoint, u64)> {
        let loc = self.keys.get(key)?;
        let item = &self.buckets[loc.bucket as usize].items[loc.slot as usize];
        Some((item.point, item.tag))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The H3 cell (at the index's resolution) a key is bucketed in.
    pub fn cell_of(&self, key: &K) -> Option<CellIndex> {
        let loc = self.keys.get(key)?;
        Some(self.buckets[loc.bucket as usize].cell)
    }

    /// Number of non-empty cells.
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Approximate heap + inline bytes used by the index: the capacity, not
    /// the length, of every container times its element size.
    pub fn memory_bytes(&self) -> usize {
        let items: usize = self
            .buckets
            .iter()
            .map(|b| b.items.capacity() * size_of::<Item<K>>())
            .sum();
        let coarse = self.coarse.as_ref().map_or(0, |c| {
            let lists: usize = c
                .cells
                .values()
                .map(|v| v.buckets.capacity() * size_of::<u32>())
                .sum();
            lists + hash_map_bytes(c.cells.capacity(), size_of::<(CellIndex, CoarseCell)>())
        });
        size_of::<Self>()
            + coarse
            + hash_map_bytes(self.keys.capacity(), size_of::<(K, Loc)>())
            + hash_map_bytes(self.cells.capacity(), size_of::<(CellIndex, u32)>())
            + self.buckets.capacity() * size_of::<Bucket<K>>()
            + self.free.capacity() * size_of::<u32>()
            + items
    }

    /// Number of entries passing `pred` per H3 cell at resolution `res`,
    /// sorted by cell; cells with none are left out (supply map for the
    /// dashboard).
    ///
    /// At a coarser (or the same) resolution an entry counts towards the H3
    /// parent of its cell, as H3 roll-ups do (a parent does not exactly cover
    /// its children, so an entry within metres of a coarse cell's edge may
    /// count towards the neighbouring cell); whole buckets are aggregated at
    /// once. At a finer resolution each entry counts towards the cell
    /// containing its position.
    pub fn counts_by_cell(
        &self,
        res: Resolution,
        mut pred: impl FnMut(&K, u64) -> bool,
    ) -> Vec<(CellIndex, usize)> {
        let mut counts: HashMap<CellIndex, usize, CellHashBuilder> = HashMap::default();
        for bucket in self.buckets.iter().filter(|b| !b.items.is_empty()) {
            match bucket.cell.parent(res) {
                Some(parent) => {
                    let n = bucket
                        .items
                        .iter()
                        .filter(|it| pred(&it.key, it.tag))
                        .count();
                    if n > 0 {
                        *counts.entry(parent).or_default() += n;
                    }
                }
                None => {
                    for it in bucket.items.iter().filter(|it| pred(&it.key, it.tag)) {
                        *counts.entry(cell_of_point(&it.point, res)).or_default() += 1;
                    }
                }
            }
        }
        let mut out: Vec<_> = counts.into_iter().collect();
        out.sort_unstable_by_key(|&(cell, _)| cell);
        out
    }

    /// Puts `item` in `cell`'s bucket (creating it if needed) and says where.
    fn attach(&mut self, cell: CellIndex, item: Item<K>) -> Loc {
        let bucket = match self.cells.get(&cell) {
            Some(&b) => b,
            None => {
                let center = LatLng::from(cell);
                let fresh = Bucket {
                    cell,
                    center_lat: center.lat(),
                    center_lng: center.lng(),
                    items: Vec::new(),
                };
                // u32 bucket and slot numbers keep the key map small; four
                // billion cells or entries is far beyond any fleet.
                let b = match self.free.pop() {
                    Some(b) => {
                        self.buckets[b as usize] = fresh;
                        b
                    }
                    None => {
                        self.buckets.push(fresh);
                        (self.buckets.len() - 1) as u32
                    }
                };
                self.cells.insert(cell, b);
                if let Some(coarse) = &mut self.coarse {
                    coarse.add(cell, b);
                }
                b
            }
        };
        let items = &mut self.buckets[bucket as usize].items;
        if items.len() == items.capacity() {
            // Grow by half rather than doubling from a minimum of four: most
            // cells of a sparse fleet hold one or two nurses, and the slack
            // of a dense one stays under 50 %.
            items.reserve_exact((items.capacity() / 2).max(1));
        }
        items.push(item);
        Loc {
            bucket,
            slot: (items.len() - 1) as u32,
        }
    }

    /// Takes the record at `loc` out of its bucket (fixing the location of
    /// the record swapped into its slot, and freeing the bucket if it empties).
    /// The caller owns `loc`'s key-map entry.
    fn detach(&mut self, loc: Loc) -> Item<K> {
        let bucket = &mut self.buckets[loc.bucket as usize];
        let items = &mut bucket.items;
        let item = items.swap_remove(loc.slot as usize);
        if let Some(moved) = items.get(loc.slot as usize) {
            let moved = moved.key;
            if let Some(l) = self.keys.get_mut(&moved) {
                l.slot = loc.slot;
            }
        }
        let bucket = &mut self.buckets[loc.bucket as usize];
        if bucket.items.is_empty() {
            self.cells.remove(&bucket.cell);
            if let Some(coarse) = &mut self.coarse {
                coarse.remove(bucket.cell, loc.bucket);
            }
            // Release the allocation: a nurse who drove through a cell should
            // not leave memory behind in it.
            bucket.items = Vec::new();
            self.free.push(loc.bucket);
        } else if bucket.items.capacity() > 16 && bucket.items.len() * 4 <= bucket.items.capacity()
        {
            bucket.items.shrink_to(bucket.items.len() * 2);
        }
        item
    }
}

impl<K: Copy + Eq + Hash + Ord> GeoIndex<K> {
    /// The `k` nearest entries whose `pred(&key, tag)` is true, no farther
    /// than `max_radius_m`, nearest first.
    ///
    /// Exact: equal to filtering every entry by `pred` and radius, sorting by
    /// [`crate::haversine_m`] from `from` then by key, and keeping `k`.
    /// Searched ring by ring over H3 cells around `from`'s cell until `k` are
    /// found and no unsearched cell can hold a closer one, or the radius is
    /// exhausted. `pred` must be pure: it is called for some subset of the
    /// entries, in no particular order. A negative or NaN radius finds nothing.
    pub fn nearest(
        &self,
        from: GeoPoint,
        k: usize,
        max_radius_m: f64,
        pred: impl FnMut(&K, u64) -> bool,
    ) -> Vec<Neighbour<K>> {
        if k == 0 || self.is_empty() || max_radius_m.is_nan() || max_radius_m < 0.0 {
            return Vec::new();
        }
        let origin = Origin::new(&from);
        let mut top = TopK::new(k, max_radius_m, pred);
        self.search(&origin, &from, &mut top);
        top.finish(&origin)
    }

    /// Every entry within `radius_m` whose `pred(&key, tag)` is true, nearest
    /// first (ties by key); exact, like [`Self::nearest`].
    pub fn within(
        &self,
        from: GeoPoint,
        radius_m: f64,
        pred: impl FnMut(&K, u64) -> bool,
    ) -> Vec<Neighbour<K>> {
        if self.is_empty() || radius_m.is_nan() || radius_m < 0.0 {
            return Vec::new();
        }
        let origin = Origin::new(&from);
        let mut all = All {
            radius_m,
            h_threshold: h_threshold(radius_m),
            out: Vec::new(),
            pred,
        };
        self.search(&origin, &from, &mut all);
        let mut out = all.out;
        out.sort_unstable();
        out.into_iter().map(Cand::into_neighbour).collect()
    }

    /// A lower bound on the distance from `origin` to any point of `bucket`'s
    /// cell, from the cached centre; trig-free (see [`Origin::deltas`]).
    #[inline]
    fn cell_lower_bound_m(&self, origin: &Origin, bucket: &Bucket<K>) -> f64 {
        let h = origin.h_lower_bound(bucket.center_lat, bucket.center_lng);
        distance_lower_m(h) - self.geom.cell_radius_m
    }

    /// Feeds `collector` every bucket that might hold an entry within its
    /// (shrinking) threshold: ring by ring around the query's cell, switching
    /// to rings of grandparent cells when many rings remain, and to a scan of
    /// every bucket near pentagons or when the rings would outgrow the index.
    fn search<'a, C: Collector<'a, K>>(
        &'a self,
        origin: &Origin,
        from: &GeoPoint,
        collector: &mut C,
    ) {
        let mut walk = self.walk_fine(origin, from, collector);
        if let Walk::Coarse = walk {
            collector.reset();
            walk = match &self.coarse {
                Some(coarse) => self.walk_coarse(coarse, origin, from, collector),
                None => Walk::Scan,
            };
        }
        if let Walk::Scan = walk {
            collector.reset();
            self.scan_all(origin, collector);
        }
    }

    /// Rings of cells at the index resolution (see `geometry.rs` for the rule).
    fn walk_fine<'a, C: Collector<'a, K>>(
        &'a self,
        origin: &Origin,
        from: &GeoPoint,
        collector: &mut C,
    ) -> Walk {
        let c0 = cell_of_point(from, self.res);
        let own = self.cells.get(&c0).map(|&b| &self.buckets[b as usize]);
        let (center_lat, center_lng) = match own {
            Some(b) => (b.center_lat, b.center_lng),
            None => {
                let c = LatLng::from(c0);
                (c.lat(), c.lng())
            }
        };
        let d0 = origin.distance_m(center_lat, center_lng);
        if let Some(b) = own {
            collector.scan(origin, &b.items);
        }
        // Beyond this many cells a full scan of the occupied buckets is cheaper.
        let budget = 64 + 2 * self.cells.len();
        let mut visited = 1usize;
        let mut ring: Vec<Nearer> = Vec::with_capacity(32);
        for n in 1..=self.geom.max_rings {
            let threshold = collector.threshold_m();
            if self.geom.beyond_ring_m(n, d0) > threshold {
                return Walk::Done;
            }
            if visited + 6 * n as usize > budget
                || self.coarse_is_cheaper(n, d0, visited, collector)
            {
                return Walk::Coarse;
            }
            visited += 6 * n as usize;
            ring.clear();
            for cell in c0.grid_ring_fast(n) {
                let Some(cell) = cell else {
                    // Pentagon distortion: this ring's cells are not to be trusted.
                    return Walk::Scan;
                };
                if let Some(&b) = self.cells.get(&cell) {
                    let lb = self.cell_lower_bound_m(origin, &self.buckets[b as usize]);
                    if lb <= threshold {
                        ring.push(Nearer(lb, b));
                    }
                }
            }
            self.scan_ring(origin, &mut ring, collector);
        }
        Walk::Coarse
    }

    /// Would the rest of the fine walk, out to where the search will likely
    /// stop, cost more than a coarse walk? Asked before ring `n`, having
    /// searched `searched_cells` cells.
    fn coarse_is_cheaper<'a, C: Collector<'a, K>>(
        &self,
        n: u32,
        d0: f64,
        searched_cells: usize,
        collector: &C,
    ) -> bool {
        let Some(coarse) = &self.coarse else {
            return false;
        };
        let (fine, cg) = (&self.geom, &coarse.geom);
        // A hexagon's area is 3√3/2 · edge².
        let cell_area = 2.598 * self.res.edge_length_m().powi(2);
        let reach = collector.expected_reach_m(searched_cells as f64 * cell_area);
        if !reach.is_finite() {
            return true;
        }
        let last_fine = ((reach + d0 + fine.cell_radius_m) / fine.step_m).ceil();
        let fine_left = 3.0 * last_fine * (last_fine + 1.0) - 3.0 * f64::from(n) * f64::from(n - 1);
        // The coarse walk's query offset is unknown yet: assume the worst.
        let last_coarse = ((reach + 2.0 * cg.cell_radius_m) / cg.step_m).floor() + 1.0;
        let coarse_cells = 1.0 + 3.0 * last_coarse * (last_coarse + 1.0);
        // A coarse cell costs a ring step and a bound; the occupied buckets
        // of the grandparents within reach (about a third) a bound each, at
        // about a sixth of a step.
        let children = self.cells.len() as f64 / coarse.cells.len().max(1) as f64;
        fine_left > coarse_cells * (1.0 + children / 18.0)
    }

    /// Rings of grandparent cells. An entry under a grandparent `n` rings out
    /// lies in a coarse cell at least `n − 1` rings out (a cell's descendants
    /// stay within its 1-ring; `tests/ring_bound.rs` checks it), so the
    /// coarse figures bound its distance with `n − 1`. Grandparents and
    /// buckets are pruned by their own bounds before being scanned.
    fn walk_coarse<'a, C: Collector<'a, K>>(
        &'a self,
        coarse: &Coarse,
        origin: &Origin,
        from: &GeoPoint,
        collector: &mut C,
    ) -> Walk {
        let c0 = cell_of_point(from, coarse.res);
        let center = LatLng::from(c0);
        let d0 = origin.distance_m(center.lat(), center.lng());
        let reach = coarse.geom.grandchild_radius_m;
        let budget = 64 + 2 * coarse.cells.len();
        let mut visited = 0usize;
        let mut ring: Vec<Nearer> = Vec::with_capacity(64);
        for n in 0..=coarse.geom.max_rings {
            let threshold = collector.threshold_m();
            if n >= 2 && coarse.geom.beyond_ring_m(n - 1, d0) > threshold {
                return Walk::Done;
            }
            visited += if n == 0 { 1 } else { 6 * n as usize };
            if visited > budget {
                return Walk::Scan;
            }
            ring.clear();
            for cell in c0.grid_ring_fast(n) {
                let Some(cell) = cell else {
                    return Walk::Scan;
                };
                let Some(cc) = coarse.cells.get(&cell) else {
                    continue;
                };
                let h = origin.h_lower_bound(cc.center_lat, cc.center_lng);
                if distance_lower_m(h) - reach > threshold {
                    continue;
                }
                for &b in &cc.buckets {
                    let lb = self.cell_lower_bound_m(origin, &self.buckets[b as usize]);
                    if lb <= threshold {
                        ring.push(Nearer(lb, b));
                    }
                }
            }
            self.scan_ring(origin, &mut ring, collector);
        }
        Walk::Scan
    }

    /// Every occupied bucket, nearest first (through a heap, built in linear
    /// time: the threshold usually stops the scan long before the end).
    fn scan_all<'a, C: Collector<'a, K>>(&'a self, origin: &Origin, collector: &mut C) {
        let threshold = collector.threshold_m();
        let mut heap: BinaryHeap<Nearer> = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.items.is_empty())
            .map(|(i, b)| Nearer(self.cell_lower_bound_m(origin, b), i as u32))
            .filter(|n| n.0 <= threshold)
            .collect();
        while let Some(Nearer(lb, b)) = heap.pop() {
            if lb > collector.threshold_m() {
                break;
            }
            collector.scan(origin, &self.buckets[b as usize].items);
        }
    }

    /// Scans one ring's buckets while they can still hold something of
    /// interest, and clears the list. A handful (a fine ring) are sorted,
    /// nearest first, which tightens the threshold early; for more (a coarse
    /// ring's many buckets) sorting costs more than it saves, and the rings
    /// themselves already go outwards.
    fn scan_ring<'a, C: Collector<'a, K>>(
        &'a self,
        origin: &Origin,
        buckets: &mut Vec<Nearer>,
        collector: &mut C,
    ) {
        if buckets.len() <= 16 {
            // `Nearer` orders far-to-near (for heaps): sort, then pop the nearest.
            buckets.sort_unstable();
            while let Some(Nearer(lb, b)) = buckets.pop() {
                if lb > collector.threshold_m() {
                    break;
                }
                collector.scan(origin, &self.buckets[b as usize].items);
            }
        } else {
            for &Nearer(lb, b) in buckets.iter() {
                if lb <= collector.threshold_m() {
                    collector.scan(origin, &self.buckets[b as usize].items);
                }
            }
        }
        buckets.clear();
    }
}

/// A bucket and a lower bound on its distance, ordered so that a
/// `BinaryHeap` pops the nearest first.
struct Nearer(f64, u32);

impl Ord for Nearer {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0)
    }
}

impl PartialOrd for Nearer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Nearer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Nearer {}

/// The resolution of the coarse walk: two levels up, if there are two.
fn coarse_resolution(res: Resolution) -> Option<Resolution> {
    res.pred().and_then(Resolution::pred)
}

/// A found entry, ordered by distance then key.
#[derive(Debug, Clone, Copy)]
struct Cand<K> {
    d: f64,
    key: K,
    tag: u64,
    point: GeoPoint,
}

impl<K> Cand<K> {
    fn into_neighbour(self) -> Neighbour<K> {
        Neighbour {
            key: self.key,
            distance_m: self.d,
            tag: self.tag,
            point: self.point,
        }
    }
}

impl<K: Ord> Ord for Cand<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d
            .total_cmp(&other.d)
            .then_with(|| self.key.cmp(&other.key))
    }
}

impl<K: Ord> PartialOrd for Cand<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for Cand<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord> Eq for Cand<K> {}

/// What a search feeds buckets to.
trait Collector<'a, K> {
    /// An upper bound on the largest distance still of interest (inclusive):
    /// cells and rings whose lower bound exceeds it are skipped.
    fn threshold_m(&self) -> f64;
    /// Consider every record of one bucket.
    fn scan(&mut self, origin: &Origin, items: &'a [Item<K>]);
    /// A guess (for choosing how to walk, never for correctness) at the
    /// distance the search will end up needing, given that everything in
    /// an area of `searched_m2` around the query has been seen.
    fn expected_reach_m(&self, searched_m2: f64) -> f64;
    /// Forget everything found (the search starts over).
    fn reset(&mut self);
}

/// Filter-and-refine k-nearest.
///
/// While scanning, only trig-free bounds on `h` are computed: the k smallest
/// upper bounds give a bound `U` that the k-th nearest cannot exceed, and
/// every entry whose lower bound is under `U` is kept as pending. At the
/// end, exact distances are computed for the pending entries still under
/// the final `U` — about k of them plus near-ties, instead of every entry
/// that ever improved a running top-k — and the best k by (distance, key)
/// are the answer.
struct TopK<'a, K, P> {
    k: usize,
    max_radius_m: f64,
    /// `h` beyond which an entry may be outside the radius / surely within it.
    h_max: f64,
    h_max_sure: f64,
    /// The k smallest upper bounds on `h` of entries surely within the radius,
    /// as bits (non-negative floats order like their bits); a max-heap.
    upper: BinaryHeap<u64>,
    /// Entries with a lower bound above this cannot make the answer.
    h_cut: f64,
    threshold_m: f64,
    pending: Vec<(f64, &'a Item<K>)>,
    pred: P,
}

impl<'a, K: Copy + Ord, P: FnMut(&K, u64) -> bool> TopK<'a, K, P> {
    fn new(k: usize, max_radius_m: f64, pred: P) -> Self {
        let h_max = h_threshold(max_radius_m);
        Self {
            k,
            max_radius_m,
            h_max,
            h_max_sure: h_surely_within(max_radius_m),
            upper: BinaryHeap::with_capacity(k.min(1024)),
            h_cut: h_max,
            threshold_m: max_radius_m,
            pending: Vec::with_capacity(64),
            pred,
        }
    }

    fn tighten(&mut self) {
        if let Some(&bits) = self.upper.peek() {
            let u = f64::from_bits(bits);
            // Relative margins far above rounding; see `distance.rs`.
            self.h_cut = self.h_max.min(u * (1.0 + 1e-9));
            self.threshold_m = self.max_radius_m.min(distance_upper_m(u));
        }
    }

    /// Exact distances for the surviving pending entries; the best k.
    fn finish(self, origin: &Origin) -> Vec<Neighbour<K>> {
        let h_cut = self.h_cut;
        let max_r = self.max_radius_m;
        let mut out: Vec<Cand<K>> = self
            .pending
            .iter()
            .filter(|(lb, _)| *lb <= h_cut)
            .filter_map(|(_, it)| {
                let d = origin.distance_m(it.point.lat(), it.point.lng());
                (d <= max_r).then_some(Cand {
                    d,
                    key: it.key,
                    tag: it.tag,
                    point: it.point,
                })
            })
            .collect();
        if out.len() > self.k {
            out.select_nth_unstable(self.k);
            out.truncate(self.k);
        }
        out.sort_unstable();
        out.into_iter().map(Cand::into_neighbour).collect()
    }
}

impl<'a, K: Copy + Ord, P: FnMut(&K, u64) -> bool> Collector<'a, K> for TopK<'a, K, P> {
    #[inline]
    fn threshold_m(&self) -> f64 {
        self.threshold_m
    }

    fn scan(&mut self, origin: &Origin, items: &'a [Item<K>]) {
        let cos_lat = origin.cos_lat();
        for it in items {
            // The predicate first: typically a tag bitmask test, cheaper than
            // the bound and often selective (skills, availability).
            if !(self.pred)(&it.key, it.tag) {
                continue;
            }
            let deltas = origin.deltas(it.point.lat(), it.point.lng());
            let lb = deltas.lower(cos_lat);
            if lb > self.h_cut {
                continue;
            }
            self.pending.push((lb, it));
            let ub = deltas.upper(cos_lat);
            if ub > self.h_max_sure {
                continue; // Might be outside the radius: cannot vouch for the k-th.
            }
            let ub = ub.to_bits();
            if self.upper.len() < self.k {
                self.upper.push(ub);
                if self.upper.len() == self.k {
                    self.tighten();
                }
            } else {
                let replaced = match self.upper.peek_mut() {
                    Some(mut worst) if ub < *worst => {
                        // PeekMut restores the heap order when dropped.
                        *worst = ub;
                        true
                    }
                    _ => false,
                };
                if replaced {
                    self.tighten();
                }
            }
        }
    }

    fn expected_reach_m(&self, searched_m2: f64) -> f64 {
        if self.upper.len() == self.k {
            return self.threshold_m;
        }
        // Extrapolate the density seen so far (half an entry if none).
        let found = (self.upper.len() as f64).max(0.5);
        let area = searched_m2 * self.k as f64 / found;
        (area / std::f64::consts::PI).sqrt().min(self.max_radius_m)
    }

    fn reset(&mut self) {
        self.upper.clear();
        self.pending.clear();
        self.h_cut = self.h_max;
        self.threshold_m = self.max_radius_m;
    }
}

/// Keeps everything within the radius.
struct All<K, P> {
    radius_m: f64,
    h_threshold: f64,
    out: Vec<Cand<K>>,
    pred: P,
}

impl<K: Copy, P: FnMut(&K, u64) -> bool> Collector<'_, K> for All<K, P> {
    #[inline]
    fn threshold_m(&self) -> f64 {
        self.radius_m
    }

    fn scan(&mut self, origin: &Origin, items: &[Item<K>]) {
        for it in items {
            let (lat, lng) = (it.point.lat(), it.point.lng());
            if !(self.pred)(&it.key, it.tag) || origin.h_lower_bound(lat, lng) > self.h_threshold {
                continue;
            }
            let d = origin.distance_m(lat, lng);
            if d <= self.radius_m {
                self.out.push(Cand {
                    d,
                    key: it.key,
                    tag: it.tag,
                    point: it.point,
                });
            }
        }
    }

    fn expected_reach_m(&self, _: f64) -> f64 {
        self.radius_m
    }

    fn reset(&mut self) {
        self.out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::new(lat, lng).unwrap()
    }

    fn index() -> GeoIndex<u32> {
        GeoIndex::new(IndexConfig::default())
    }

    fn keys(v: &[Neighbour<u32>]) -> Vec<u32> {
        v.iter().map(|n| n.key).collect()
    }

    /// The reference: a linear scan.
    fn brute(
        idx: &GeoIndex<u32>,
        all: &[u32],
        from: GeoPoint,
        k: usize,
        r: f64,
        mut pred: impl FnMut(&u32, u64) -> bool,
    ) -> Vec<u32> {
        let mut v: Vec<(f64, u32)> = all
            .iter()
            .filter_map(|key| {
                let (pt, tag) = idx.get(key)?;
                let d = from.distance_m(&pt);
                (pred(key, tag) && d <= r).then_some((d, *key))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v.into_iter().take(k).map(|(_, k)| k).collect()
    }

    #[test]
    fn empty_index_answers_nothing() {
        let mut idx = index();
        let q = p(29.3, 106.25);
        assert!(idx.is_empty());
        assert_eq!(idx.len(), 0);
        assert!(idx.nearest(q, 10, f64::INFINITY, |_, _| true).is_empty());
        assert!(idx.within(q, 1e9, |_, _| true).is_empty());
        assert_eq!(idx.get(&1), None);
        assert_eq!(idx.cell_of(&1), None);
        assert_eq!(idx.remove(&1), None);
        assert!(!idx.set_tag(&1, 3));
        assert!(idx.counts_by_cell(Resolution::Five, |_, _| true).is_empty());
        assert!(idx.memory_bytes() >= size_of::<GeoIndex<u32>>());
    }

    #[test]
    fn upsert_get_and_move_within_a_cell() {
        let mut idx = index();
        let a = p(29.3, 106.25);
        idx.upsert(1, a, 7);
        assert_eq!(idx.get(&1), Some((a, 7)));
        let cell = idx.cell_of(&1).unwrap();
        assert_eq!(
            cell,
            LatLng::new(29.3, 106.25).unwrap().to_cell(Resolution::Nine)
        );
        // A metre away: same cell, updated in place.
        let b = p(29.300_009, 106.25);
        idx.upsert(1, b, 8);
        assert_eq!(idx.get(&1), Some((b, 8)));
        assert_eq!(idx.cell_of(&1), Some(cell));
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.cell_count(), 1);
    }

    #[test]
    fn move_changes_cell_membership() {
        let mut idx = index();
        let a = p(29.3, 106.25);
        let far = p(29.35, 106.30);
        idx.upsert(1, a, 0);
        idx.upsert(2, a, 0);
        let ca = idx.cell_of(&1).unwrap();
        idx.upsert(1, far, 0);
        let cf = idx.cell_of(&1).unwrap();
        assert_ne!(ca, cf);
        assert_eq!(idx.cell_of(&2), Some(ca));
        let counts = idx.counts_by_cell(Resolution::Nine, |_, _| true);
        let mut expected = vec![(ca, 1), (cf, 1)];
        expected.sort_unstable();
        assert_eq!(counts, expected);
        // Moving the last entry out of a cell frees the cell.
        idx.upsert(2, far, 0);
        assert_eq!(idx.cell_count(), 1);
        assert_eq!(
            idx.counts_by_cell(Resolution::Nine, |_, _| true),
            vec![(cf, 2)]
        );
        // And the freed bucket is reused.
        idx.upsert(3, a, 0);
        assert_eq!(idx.buckets.len(), 2);
        assert_eq!(keys(&idx.nearest(a, 5, 1e6, |_, _| true)), vec![3, 1, 2]);
    }

    #[test]
    fn remove_keeps_the_other_entries_of_the_cell() {
        let mut idx = index();
        for i in 0..5 {
            idx.upsert(i, p(29.3 + f64::from(i) * 1e-6, 106.25), u64::from(i));
        }
        let first = idx.get(&0).unwrap().0;
        assert_eq!(idx.remove(&0), Some(first));
        assert_eq!(idx.remove(&0), None);
        assert_eq!(idx.len(), 4);
        for i in 1..5 {
            assert_eq!(idx.get(&i).unwrap().1, u64::from(i));
        }
        assert_eq!(idx.remove(&4).map(|g| g.lat()), Some(29.3 + 4e-6));
        assert_eq!(idx.remove(&2).map(|g| g.lat()), Some(29.3 + 2e-6));
        let q = p(29.3, 106.25);
        assert_eq!(keys(&idx.nearest(q, 10, 100.0, |_, _| true)), vec![1, 3]);
        idx.remove(&1);
        idx.remove(&3);
        assert!(idx.is_empty());
        assert_eq!(idx.cell_count(), 0);
        assert!(idx.nearest(q, 10, 100.0, |_, _| true).is_empty());
    }

    #[test]
    fn set_tag_changes_what_predicates_see() {
        let mut idx = index();
        let q = p(29.3, 106.25);
        idx.upsert(1, q, 0b01);
        idx.upsert(2, p(29.301, 106.25), 0b11);
        let busy = |_: &u32, tag: u64| tag & 0b10 != 0;
        assert_eq!(keys(&idx.nearest(q, 5, 1e4, busy)), vec![2]);
        assert!(idx.set_tag(&1, 0b10));
        assert!(!idx.set_tag(&9, 0b10));
        assert_eq!(idx.get(&1), Some((q, 0b10)));
        assert_eq!(keys(&idx.nearest(q, 5, 1e4, busy)), vec![1, 2]);
        assert_eq!(idx.nearest(q, 5, 1e4, busy)[0].tag, 0b10);
    }

    #[test]
    fn k_zero_radius_zero_and_bad_radii() {
        let mut idx = index();
        let q = p(29.3, 106.25);
        idx.upsert(1, q, 0);
        idx.upsert(2, p(29.300_001, 106.25), 0);
        assert!(idx.nearest(q, 0, 1e6, |_, _| true).is_empty());
        // Radius 0 keeps exactly the entries at the query point.
        assert_eq!(keys(&idx.nearest(q, 5, 0.0, |_, _| true)), vec![1]);
        assert_eq!(keys(&idx.within(q, 0.0, |_, _| true)), vec![1]);
        assert!(idx.nearest(q, 5, -1.0, |_, _| true).is_empty());
        assert!(idx.nearest(q, 5, f64::NAN, |_, _| true).is_empty());
        assert!(idx.within(q, f64::NAN, |_, _| true).is_empty());
        assert_eq!(idx.nearest(q, 5, 1e6, |_, _| true).len(), 2);
        assert_eq!(
            idx.nearest(q, usize::MAX, f64::INFINITY, |_, _| true).len(),
            2
        );
    }

    #[test]
    fn duplicate_positions_tie_by_key() {
        let mut idx = index();
        let spot = p(29.31, 106.26);
        for key in [9, 3, 7, 1, 5] {
            idx.upsert(key, spot, 0);
        }
        idx.upsert(4, p(29.3101, 106.26), 0);
        let got = idx.nearest(p(29.3, 106.26), 3, 1e5, |_, _| true);
        assert_eq!(keys(&got), vec![1, 3, 5]);
        assert_eq!(got[0].distance_m, got[2].distance_m);
        assert_eq!(got[0].point, spot);
        let got = idx.nearest(spot, 10, 1e5, |_, _| true);
        assert_eq!(keys(&got), vec![1, 3, 5, 7, 9, 4]);
        assert_eq!(got[0].distance_m, 0.0);
    }

    #[test]
    fn far_and_sparse_entries_are_found_by_the_fallback() {
        let mut idx = index();
        idx.upsert(1, p(-33.86, 151.21), 0); // Sydney
        idx.upsert(2, p(51.5, -0.12), 0); // London
        idx.upsert(3, p(29.3, 106.25), 0); // Jiangjin
        idx.upsert(4, p(90.0, 0.0), 0); // North Pole
        let all = [1, 2, 3, 4];
        let q = p(29.4, 106.3);
        for k in 1..=4 {
            assert_eq!(
                keys(&idx.nearest(q, k, f64::INFINITY, |_, _| true)),
                brute(&idx, &all, q, k, f64::INFINITY, |_, _| true)
            );
        }
        assert_eq!(keys(&idx.nearest(q, 4, f64::INFINITY, |_, _| true))[0], 3);
        assert_eq!(
            keys(&idx.nearest(q, 1, 5_000.0, |_, _| true)),
            Vec::<u32>::new()
        );
        assert_eq!(keys(&idx.nearest(q, 1, 20_000.0, |_, _| true)), vec![3]);
        for r in [1e3, 2e4, 7e6, 9e6, 1.2e7, 3e7] {
            assert_eq!(
                keys(&idx.within(q, r, |_, _| true)),
                brute(&idx, &all, q, 9, r, |_, _| true)
            );
        }
    }

    #[test]
    fn queries_at_pentagons_match_a_linear_scan() {
        for res in [Resolution::Seven, Resolution::Nine, Resolution::Ten] {
            let mut idx = GeoIndex::new(IndexConfig { resolution: res });
            let pent = res.pentagons().next().unwrap();
            let c = LatLng::from(pent);
            let mut all = Vec::new();
            let step = res.edge_length_m() / 111_000.0;
            let mut key = 0;
            for i in -6..=6 {
                for j in -6..=6 {
                    let lat = (c.lat() + f64::from(i) * step).clamp(-90.0, 90.0);
                    let lng = c.lng() + f64::from(j) * step;
                    idx.upsert(key, p(lat, lng), u64::from(key % 3));
                    all.push(key);
                    key += 1;
                }
            }
            for (dy, dx) in [(0.0, 0.0), (0.3, -0.2), (-1.1, 2.0), (4.0, 4.0)] {
                let q = p(c.lat() + dy * step, c.lng() + dx * step);
                for k in [1, 5, 40] {
                    let got = idx.nearest(q, k, f64::INFINITY, |_, t| t != 1);
                    assert_eq!(
                        keys(&got),
                        brute(&idx, &all, q, k, f64::INFINITY, |_, t| t != 1)
                    );
                }
                let r = 3.0 * res.edge_length_m();
                let got = idx.within(q, r, |_, _| true);
                assert_eq!(keys(&got), brute(&idx, &all, q, usize::MAX, r, |_, _| true));
            }
        }
    }

    #[test]
    fn counts_by_cell_coarser_and_finer() {
        let mut idx = index();
        let pts = [
            (29.30, 106.25),
            (29.301, 106.251),
            (29.35, 106.30),
            (29.20, 106.10),
        ];
        for (i, (lat, lng)) in (0u32..).zip(pts) {
            idx.upsert(i, p(lat, lng), u64::from(i % 2));
        }
        for res in [Resolution::Five, Resolution::Nine, Resolution::Eleven] {
            let mut expected: HashMap<CellIndex, usize> = HashMap::new();
            for (i, (lat, lng)) in (0u32..).zip(pts) {
                if i % 2 == 0 {
                    *expected
                        .entry(LatLng::new(lat, lng).unwrap().to_cell(res))
                        .or_default() += 1;
                }
            }
            let mut expected: Vec<_> = expected.into_iter().collect();
            expected.sort_unstable();
            assert_eq!(idx.counts_by_cell(res, |_, t| t == 0), expected, "{res}");
        }
        let total: usize = idx
            .counts_by_cell(Resolution::Zero, |_, _| true)
            .iter()
            .map(|c| c.1)
            .sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn memory_accounting_follows_capacity() {
        let mut idx: GeoIndex<[u8; 16]> = GeoIndex::with_capacity(IndexConfig::default(), 1000);
        let empty = idx.memory_bytes();
        // The key map is allocated up front: 2048 buckets of (key, loc) + control byte.
        assert_eq!(
            empty,
            size_of::<GeoIndex<[u8; 16]>>() + hash_map_bytes(1000, 24)
        );
        // 1000 nurses in a ~1 km² patch: about ten cells.
        for i in 0..1000u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_le_bytes());
            let lat = 29.3 + f64::from(i % 40) * 0.000_25;
            let lng = 106.25 + f64::from(i / 40) * 0.000_4;
            idx.upsert(key, p(lat, lng), 0);
        }
        assert!(idx.cell_count() < 40, "{}", idx.cell_count());
        let items: usize = idx.buckets.iter().map(|b| b.items.capacity()).sum();
        assert!((1000..1500).contains(&items), "{items}");
        let full = idx.memory_bytes();
        assert!(full >= empty + items * 40, "{full}");
        assert!(full < empty + items * 40 + 4096, "{full}");
        assert_eq!(size_of::<Item<[u8; 16]>>(), 40);
        assert_eq!(size_of::<([u8; 16], Loc)>(), 24);
    }

    /// Which walk a nearest-`k` query from `q` ends up taking first.
    fn first_walk(idx: &GeoIndex<u32>, q: GeoPoint, k: usize) -> &'static str {
        let origin = Origin::new(&q);
        let mut top = TopK::new(k, f64::INFINITY, |_: &u32, _| true);
        match idx.walk_fine(&origin, &q, &mut top) {
            Walk::Done => "done",
            Walk::Coarse => "coarse",
            Walk::Scan => "scan",
        }
    }

    #[test]
    fn dense_queries_stay_fine_and_sparse_ones_go_coarse() {
        let mut idx = index();
        // 4000 nurses in ~2 km x 2 km: ~100 per cell.
        for i in 0..4000u32 {
            let (a, b) = (f64::from(i % 63), f64::from(i / 63));
            idx.upsert(i, p(29.29 + a * 0.000_3, 106.24 + b * 0.000_3), 0);
        }
        let q = p(29.3, 106.25);
        assert_eq!(first_walk(&idx, q, 10), "done");
        // 30 nurses over ~20 km: walking 200 m cells ring by ring would take
        // dozens of rings.
        let mut sparse = index();
        for i in 0..30u32 {
            let (a, b) = (f64::from(i % 6), f64::from(i / 6));
            sparse.upsert(i, p(29.21 + a * 0.035, 106.15 + b * 0.04), 0);
        }
        assert_eq!(first_walk(&sparse, q, 10), "coarse");
        let got = sparse.nearest(q, 10, f64::INFINITY, |_, _| true);
        let all: Vec<u32> = (0..30).collect();
        assert_eq!(
            keys(&got),
            brute(&sparse, &all, q, 10, f64::INFINITY, |_, _| true)
        );
        // No grandparents two levels above resolution 1: straight to a scan.
        let mut coarse_res = GeoIndex::new(IndexConfig {
            resolution: Resolution::One,
        });
        coarse_res.upsert(1, q, 0);
        assert!(coarse_res.coarse.is_none());
        assert_eq!(
            keys(&coarse_res.nearest(q, 1, f64::INFINITY, |_, _| true)),
            vec![1]
        );
    }

    #[test]
    fn grandparent_lists_follow_buckets() {
        let mut idx = index();
        let a = p(29.3, 106.25);
        let far = p(29.5, 106.5);
        idx.upsert(1, a, 0);
        idx.upsert(2, a, 0);
        idx.upsert(3, far, 0);
        let coarse = idx.coarse.as_ref().unwrap();
        assert_eq!(coarse.cells.len(), 2);
        let gp = idx.cell_of(&1).unwrap().parent(coarse.res).unwrap();
        assert_eq!(coarse.cells[&gp].buckets.len(), 1);
        idx.remove(&1);
        assert_eq!(idx.coarse.as_ref().unwrap().cells.len(), 2);
        idx.upsert(2, far, 0);
        let coarse = idx.coarse.as_ref().unwrap();
        assert_eq!(coarse.cells.len(), 1);
        assert!(!coarse.cells.contains_key(&gp));
        idx.remove(&2);
        idx.remove(&3);
        assert!(idx.coarse.as_ref().unwrap().cells.is_empty());
    }

    #[test]
    fn hash_map_bytes_matches_hashbrown_bucket_counts() {
        assert_eq!(hash_map_bytes(0, 8), 0);
        assert_eq!(hash_map_bytes(3, 8), 4 * 9 + 16);
        assert_eq!(hash_map_bytes(7, 8), 8 * 9 + 16);
        assert_eq!(hash_map_bytes(14, 8), 16 * 9 + 16);
        let m: HashMap<u64, u64> = HashMap::with_capacity(100_000);
        // 100k needs 131072 buckets, 114688 usable.
        assert_eq!(m.capacity(), 114_688);
        assert_eq!(hash_map_bytes(m.capacity(), 16), 131_072 * 17 + 16);
    }
}
