//! Sparse min-cost assignment: most rows matched first, then least total cost.
//!
//! Rows are orders, columns nurses, and each row lists only its candidates
//! (tens out of thousands), so dense O(n³) Hungarian or LAPJV would waste
//! nearly all their work on absent edges. This is the shortest augmenting
//! path method (Hungarian / Jonker–Volgenant) on the sparse graph:
//!
//! 1. Every row gets a private "unassigned" column costing `R = 1 + Σ_rows
//!    max edge cost`, more than any set of real edges, so a matching that
//!    leaves one more row out is always dearer: the optimum of the padded
//!    problem is a maximum matching of least cost among maximum matchings.
//!    Every row can now be matched, which the method requires.
//! 2. Column potentials `v ≤ 0` start at 0 and each row takes its cheapest
//!    column if it is still free (JV's row reduction), which settles most
//!    rows when candidates rarely collide.
//! 3. Each remaining row runs Dijkstra over reduced costs
//!    `c(i,j) − u(i) − v(j) ≥ 0` (alternating paths: row → column on any
//!    edge, column → its current row), stops at the first free column
//!    popped, at distance `D`, shifts the potentials of the columns it
//!    settled by `d − D` (so reduced costs stay non-negative and the path
//!    becomes tight) and flips the path.
//!
//! At the end reduced costs are non-negative, matched edges tight, `v ≤ 0`
//! and `v = 0` on unused columns: LP duality certifies the matching optimal,
//! so the result is exact. Costs are integers, so there is no rounding.
//!
//! Cost: `O(E log E)` to build; each of the `k` rows left by step 2 costs a
//! Dijkstra over the part of the graph it explores, `O(E' log E')`, so
//! `O(k · E log V)` in the worst case (rows competing for too few columns
//! explore their whole connected component) and far less when free
//! candidates are near, as in dispatch.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Largest edge cost accepted (2⁴¹ ≈ 2.2·10¹²).
pub const MAX_EDGE_COST: i64 = 1 << 41;
/// Most rows in one problem (2¹⁹ = 524 288); with [`MAX_EDGE_COST`] this
/// keeps every sum the solver forms far inside `i64`.
pub const MAX_ROWS: usize = 1 << 19;
/// Most columns in one problem.
pub const MAX_COLS: usize = (u32::MAX as usize) / 2;

const NONE: u32 = u32::MAX;

/// An edge the problem refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("column {col} out of range (problem has {n_cols} columns)")]
    ColumnOutOfRange { col: usize, n_cols: usize },
    #[error("cost {cost} outside 0..={MAX_EDGE_COST}")]
    CostOutOfRange { cost: i64 },
    #[error("more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("more than {MAX_COLS} columns")]
    TooManyColumns,
}

/// A sparse cost matrix: for each row, the columns it may take and at what cost.
#[derive(Debug, Clone)]
pub struct SparseCosts {
    n_cols: usize,
    /// Row `i`'s edges are `cols[row_start[i]..row_start[i + 1]]`, sorted by column.
    row_start: Vec<usize>,
    cols: Vec<u32>,
    costs: Vec<i64>,
}

impl SparseCosts {
    /// An empty problem over `n_cols` columns.
    pub fn new(n_cols: usize) -> Result<Self, AssignmentError> {
        if n_cols > MAX_COLS {
            return Err(AssignmentError::TooManyColumns);
        }
        Ok(Self {
            n_cols,
            row_start: vec![0],
            cols: Vec::new(),
            costs: Vec::new(),
        })
    }

    /// Pre-allocates for `rows` rows and `edges` edges in all.
    pub fn with_capacity(
        n_cols: usize,
        rows: usize,
        edges: usize,
    ) -> Result<Self, AssignmentError> {
        let mut s = Self::new(n_cols)?;
        s.row_start.reserve(rows);
        s.cols.reserve(edges);
        s.costs.reserve(edges);
        Ok(s)
    }

    /// Adds the next row with its `(column, cost)` edges; a column listed
    /// twice keeps its cheapest cost. Returns the row's index. On error the
    /// problem is unchanged.
    pub fn push_row(
        &mut self,
        edges: impl IntoIterator<Item = (usize, i64)>,
    ) -> Result<usize, AssignmentError> {
        if self.n_rows() >= MAX_ROWS {
            return Err(AssignmentError::TooManyRows);
        }
        let mut row: Vec<(u32, i64)> = Vec::new();
        for (col, cost) in edges {
            if col >= self.n_cols {
                return Err(AssignmentError::ColumnOutOfRange {
                    col,
                    n_cols: self.n_cols,
                });
            }
            if !(0..=MAX_EDGE_COST).contains(&cost) {
                return Err(AssignmentError::CostOutOfRange { cost });
            }
            // `col < n_cols ≤ MAX_COLS < u32::MAX`, so this is lossless.
            row.push((col as u32, cost));
        }
        row.sort_unstable();
        row.dedup_by_key(|(col, _)| *col); // sorted by cost within a column: keeps the cheapest
        for (col, cost) in row {
            self.cols.push(col);
            self.costs.push(cost);
        }
        self.row_start.push(self.cols.len());
        Ok(self.n_rows() - 1)
    }

    pub fn n_rows(&self) -> usize {
        self.row_start.len() - 1
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Edges in all (after merging duplicates).
    pub fn n_edges(&self) -> usize {
        self.cols.len()
    }

    /// Row `i`'s `(column, cost)` edges, sorted by column.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, i64)> + '_ {
        let r = self.row_start[i]..self.row_start[i + 1];
        self.cols[r.clone()]
            .iter()
            .zip(&self.costs[r])
            .map(|(&c, &k)| (c as usize, k))
    }

    /// The cost of edge `(row, col)`, if there is one.
    pub fn cost(&self, row: usize, col: usize) -> Option<i64> {
        let r = self.row_start[row]..self.row_start[row + 1];
        let cols = &self.cols[r.clone()];
        let k = cols.binary_search(&u32::try_from(col).ok()?).ok()?;
        Some(self.costs[r][k])
    }
}

/// The column of each row (`None`: left out), maximising the number of rows
/// matched, then minimising the total cost. Exact; see the module doc.
pub fn min_cost_assignment(problem: &SparseCosts) -> Vec<Option<usize>> {
    Solver::new(problem).solve()
}

struct Solver<'a> {
    p: &'a SparseCosts,
    n_rows: usize,
    /// Cost of leaving a row out.
    leave_out: i64,
    /// Column potentials, ≤ 0.
    v: Vec<i64>,
    /// Row of each column, or NONE.
    owner: Vec<u32>,
    /// Column of each row, or NONE.
    row_col: Vec<u32>,
    /// Cost of each row's current edge, so `u(i) = row_cost[i] − v[row_col[i]]`.
    row_cost: Vec<i64>,
    // Dijkstra scratch, reused across searches; `seen[j] == epoch` marks a
    // column touched by the current search, `settled[j] == epoch` a final one.
    dist: Vec<i64>,
    pred_row: Vec<u32>,
    pred_cost: Vec<i64>,
    seen: Vec<u32>,
    settled: Vec<u32>,
    epoch: u32,
    settled_list: Vec<u32>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl<'a> Solver<'a> {
    fn new(p: &'a SparseCosts) -> Self {
        let n_rows = p.n_rows();
        // Real columns `0..n_cols`, then row `i`'s unassigned column at `n_cols + i`.
        let n_cols = p.n_cols + n_rows;
        // More than any set of real edges can cost (sum of each row's dearest edge).
        let leave_out = (0..n_rows)
            .map(|i| p.row(i).map(|(_, c)| c).max().unwrap_or(0))
            .fold(1i64, i64::saturating_add);
        Self {
            p,
            n_rows,
            leave_out,
            v: vec![0; n_cols],
            owner: vec![NONE; n_cols],
            row_col: vec![NONE; n_rows],
            row_cost: vec![0; n_rows],
            dist: vec![0; n_cols],
            pred_row: vec![NONE; n_cols],
            pred_cost: vec![0; n_cols],
            seen: vec![0; n_cols],
            settled: vec![0; n_cols],
            epoch: 0,
            settled_list: Vec::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// Row `i`'s edges, its unassigned column last.
    fn edges(&self, i: usize) -> impl Iterator<Item = (usize, i64)> + use<'a> {
        let p = self.p;
        let leave_out = (p.n_cols + i, self.leave_out);
        p.row(i).chain(std::iter::once(leave_out))
    }

    fn solve(mut self) -> Vec<Option<usize>> {
        // Row reduction: with v = 0, a row on one of its cheapest columns is tight.
        let mut pending = Vec::new();
        for i in 0..self.n_rows {
            if self.p.row_start[i] == self.p.row_start[i + 1] {
                continue; // no candidates: left out, nothing to search
            }
            let best = self.edges(i).min_by_key(|&(col, c)| (c, col));
            match best {
                Some((col, c)) if self.owner[col] == NONE => self.set(i, col, c),
                _ => pending.push(i),
            }
        }
        for r in pending {
            self.augment_from(r);
        }
        let real = self.p.n_cols;
        self.row_col
            .iter()
            .map(|&c| (c != NONE && (c as usize) < real).then_some(c as usize))
            .collect()
    }

    fn set(&mut self, row: usize, col: usize, cost: i64) {
        self.row_col[row] = col as u32;
        self.row_cost[row] = cost;
        self.owner[col] = row as u32;
    }

    fn touch(&mut self, col: usize, d: i64, row: usize, cost: i64) {
        if self.seen[col] != self.epoch || d < self.dist[col] {
            self.seen[col] = self.epoch;
            self.dist[col] = d;
            self.pred_row[col] = row as u32;
            self.pred_cost[col] = cost;
            self.heap.push(Reverse((d, col as u32)));
        }
    }

    /// Shortest augmenting path from the free row `r`, then flip it.
    fn augment_from(&mut self, r: usize) {
        self.epoch += 1;
        if self.epoch == u32::MAX {
            // Practically unreachable (one epoch per row); keeps the marks sound.
            self.seen.fill(0);
            self.settled.fill(0);
            self.epoch = 1;
        }
        self.heap.clear();
        self.settled_list.clear();

        // From the source row, u(r) = 0: the distance to j is c(r,j) − v(j) ≥ 0.
        for (col, c) in self.edges(r) {
            self.touch(col, c.saturating_sub(self.v[col]), r, c);
        }
        let mut target = None;
        while let Some(Reverse((d, col))) = self.heap.pop() {
            let j = col as usize;
            if self.settled[j] == self.epoch || d > self.dist[j] {
                continue; // stale heap entry
            }
            self.settled[j] = self.epoch;
            self.settled_list.push(col);
            let i = self.owner[j];
            if i == NONE {
                target = Some((j, d));
                break;
            }
            let i = i as usize;
            let u_i = self.row_cost[i] - self.v[j];
            for (k, c) in self.edges(i) {
                if k == j || self.settled[k] == self.epoch {
                    continue;
                }
                // Reduced cost c − u(i) − v(k) ≥ 0 by the invariant.
                let nd = d.saturating_add(c - u_i - self.v[k]);
                self.touch(k, nd, i, c);
            }
        }
        // The row's own unassigned column is always free, so a target exists.
        let Some((target, reach)) = target else {
            return;
        };
        for &col in &self.settled_list {
            let j = col as usize;
            self.v[j] += self.dist[j] - reach;
        }
        let mut j = target;
        loop {
            let i = self.pred_row[j] as usize;
            let previous = self.row_col[i];
            self.set(i, j, self.pred_cost[j]);
            if i == r {
                break;
            }
            j = previous as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn problem(n_cols: usize, rows: &[Vec<(usize, i64)>]) -> SparseCosts {
        let mut p = SparseCosts::new(n_cols).unwrap();
        for r in rows {
            p.push_row(r.iter().copied()).unwrap();
        }
        p
    }

    fn evaluate(p: &SparseCosts, a: &[Option<usize>]) -> (usize, i64) {
        let mut used = std::collections::HashSet::new();
        let mut total = 0;
        for (i, c) in a.iter().enumerate() {
            if let Some(c) = *c {
                assert!(used.insert(c), "column {c} used twice");
                total += p.cost(i, c).expect("assigned along an edge");
            }
        }
        (used.len(), total)
    }

    /// Every matching, by enumeration: (most rows, then least cost).
    fn brute_force(p: &SparseCosts) -> (usize, i64) {
        fn go(
            p: &SparseCosts,
            i: usize,
            used: &mut Vec<bool>,
            n: usize,
            cost: i64,
            best: &mut (usize, i64),
        ) {
            if i == p.n_rows() {
                if n > best.0 || (n == best.0 && cost < best.1) {
                    *best = (n, cost);
                }
                return;
            }
            go(p, i + 1, used, n, cost, best);
            for (c, k) in p.row(i) {
                if !used[c] {
                    used[c] = true;
                    go(p, i + 1, used, n + 1, cost + k, best);
                    used[c] = false;
                }
            }
        }
        let mut best = (0, 0);
        go(p, 0, &mut vec![false; p.n_cols()], 0, 0, &mut best);
        best
    }

    /// A different exact method as a reference on instances too big to
    /// enumerate: min-cost max-flow by successive Bellman–Ford shortest paths
    /// from a super source (no potentials, no row order).
    fn reference(p: &SparseCosts) -> (usize, i64) {
        let (n, m) = (p.n_rows(), p.n_cols());
        let mut row_col = vec![None; n];
        let mut col_row = vec![None; m];
        let mut total = 0;
        loop {
            // Distances to rows (free rows start at 0) and columns.
            let mut dr: Vec<Option<i64>> =
                (0..n).map(|i| row_col[i].is_none().then_some(0)).collect();
            let mut dc: Vec<Option<i64>> = vec![None; m];
            let mut pc = vec![usize::MAX; m];
            let mut changed = true;
            while changed {
                changed = false;
                for i in 0..n {
                    let Some(di) = dr[i] else { continue };
                    for (c, k) in p.row(i) {
                        if row_col[i] == Some(c) {
                            continue;
                        }
                        if dc[c].is_none_or(|x| di + k < x) {
                            dc[c] = Some(di + k);
                            pc[c] = i;
                            changed = true;
                        }
                    }
                }
                for c in 0..m {
                    if let (Some(dcv), Some(i)) = (dc[c], col_row[c]) {
                        let back = dcv - p.cost(i, c).unwrap();
                        if dr[i].is_none_or(|x| back < x) {
                            dr[i] = Some(back);
                            changed = true;
                        }
                    }
                }
            }
            let end = (0..m)
                .filter(|&c| col_row[c].is_none())
                .filter_map(|c| dc[c].map(|d| (d, c)))
                .min();
            let Some((d, mut c)) = end else { break };
            total += d;
            loop {
                let i = pc[c];
                let prev = row_col[i];
                row_col[i] = Some(c);
                col_row[c] = Some(i);
                match prev {
                    Some(pcol) => {
                        col_row[pcol] = None;
                        c = pcol;
                    }
                    None => break,
                }
            }
        }
        (row_col.iter().flatten().count(), total)
    }

    #[test]
    fn empty_and_trivial() {
        let p = SparseCosts::new(0).unwrap();
        assert!(min_cost_assignment(&p).is_empty());
        let p = problem(3, &[vec![], vec![(2, 5)], vec![]]);
        assert_eq!(min_cost_assignment(&p), vec![None, Some(2), None]);
    }

    #[test]
    fn cardinality_before_cost() {
        // Row 0 can take 0 (cost 1) or 1 (cost 100); row 1 only 0 (cost 100).
        // Cheapest is row 0 → 0 alone; most rows is 0 → 1, 1 → 0.
        let p = problem(2, &[vec![(0, 1), (1, 100)], vec![(0, 100)]]);
        assert_eq!(min_cost_assignment(&p), vec![Some(1), Some(0)]);
    }

    #[test]
    fn the_cheaper_rival_wins_a_shared_column() {
        // Both rows want only column 0: row 1 is cheaper, whichever comes first.
        let p = problem(1, &[vec![(0, 100)], vec![(0, 1)]]);
        assert_eq!(min_cost_assignment(&p), vec![None, Some(0)]);
        let p = problem(1, &[vec![(0, 1)], vec![(0, 100)]]);
        assert_eq!(min_cost_assignment(&p), vec![Some(0), None]);
    }

    #[test]
    fn long_augmenting_chain() {
        // Row i prefers column i (cost 0) but may take i + 1 (cost 1); the last
        // row only wants column 0, so everybody shifts along by one.
        let n = 50;
        let mut rows: Vec<Vec<(usize, i64)>> = (0..n).map(|i| vec![(i, 0), (i + 1, 1)]).collect();
        rows.push(vec![(0, 0)]);
        let p = problem(n + 1, &rows);
        let a = min_cost_assignment(&p);
        assert_eq!(evaluate(&p, &a), (n + 1, n as i64));
        assert_eq!(a[n], Some(0));
    }

    #[test]
    fn duplicate_edges_keep_the_cheapest() {
        let mut p = SparseCosts::new(2).unwrap();
        p.push_row([(1, 9), (0, 5), (1, 3), (1, 7)]).unwrap();
        assert_eq!(p.row(0).collect::<Vec<_>>(), vec![(0, 5), (1, 3)]);
        assert_eq!(p.cost(0, 1), Some(3));
        assert_eq!(min_cost_assignment(&p), vec![Some(1)]);
    }

    #[test]
    fn bad_edges_are_refused() {
        let mut p = SparseCosts::new(2).unwrap();
        assert_eq!(
            p.push_row([(0, 1), (2, 1)]),
            Err(AssignmentError::ColumnOutOfRange { col: 2, n_cols: 2 })
        );
        assert_eq!(
            p.push_row([(0, -1)]),
            Err(AssignmentError::CostOutOfRange { cost: -1 })
        );
        assert_eq!(
            p.push_row([(0, MAX_EDGE_COST + 1)]),
            Err(AssignmentError::CostOutOfRange {
                cost: MAX_EDGE_COST + 1
            })
        );
        assert_eq!(p.n_rows(), 0);
        assert_eq!(p.push_row([(0, MAX_EDGE_COST)]), Ok(0));
        assert!(SparseCosts::new(MAX_COLS + 1).is_err());
    }

    #[test]
    fn huge_costs_stay_exact() {
        let big = MAX_EDGE_COST;
        let p = problem(
            3,
            &[
                vec![(0, big), (1, big - 1)],
                vec![(0, big - 1), (1, big), (2, big)],
                vec![(1, big - 2)],
            ],
        );
        let a = min_cost_assignment(&p);
        assert_eq!(evaluate(&p, &a), brute_force(&p));
        assert_eq!(evaluate(&p, &a).0, 3);
    }

    fn sparse_problem(
        max_rows: usize,
        max_cols: usize,
        max_deg: usize,
        max_cost: i64,
    ) -> impl Strategy<Value = SparseCosts> {
        (1..=max_cols).prop_flat_map(move |m| {
            prop::collection::vec(
                prop::collection::vec((0..m, 0..=max_cost), 0..=max_deg),
                0..=max_rows,
            )
            .prop_map(move |rows| problem(m, &rows))
        })
    }

    proptest! {
        #[test]
        fn optimal_against_brute_force(p in sparse_problem(7, 9, 5, 60)) {
            let a = min_cost_assignment(&p);
            prop_assert_eq!(evaluate(&p, &a), brute_force(&p));
        }

        #[test]
        fn optimal_with_many_equal_costs(p in sparse_problem(7, 6, 4, 2)) {
            let a = min_cost_assignment(&p);
            prop_assert_eq!(evaluate(&p, &a), brute_force(&p));
        }

        #[test]
        fn optimal_against_reference_on_larger_instances(p in sparse_problem(40, 30, 6, 1_000)) {
            let a = min_cost_assignment(&p);
            prop_assert_eq!(evaluate(&p, &a), reference(&p));
        }
    }
}
