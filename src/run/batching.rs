//! How a batch is cut into runs: rows ordered by length, then grouped by a
//! cost model of the model itself.
//!
//! **Cost model.** A run of `n` rows padded to `len` positions costs about
//! `fixed + per_token * n * len` (figures in docs/performance.md).
//! It is measured on the model at create
//! from two timed warm-up runs of different sizes (see
//! `crate::run::runner::ModelRunner::new`): one row of a few tokens, and a few
//! rows of 16. Only the ratio `fixed / per_token` (the fixed cost in tokens)
//! matters for grouping.
//!
//! **Grouping.** Rows are sorted by their own length (stable: ties keep the
//! caller's order), then cut into consecutive groups that minimise the total
//! cost (an exact dynamic programme over the sorted rows, at most
//! `max_rows` rows a group). A group runs at its longest row's length, so a
//! short row is padded only when that is cheaper than a run of its own.
//! Sorting works on windows of [`WINDOW`] rows, so the scratch memory is
//! fixed whatever the batch size.

/// Rows sorted and grouped together. Larger batches are cut into windows.
pub const WINDOW: usize = 256;

/// Most workers a window's groups are dealt to (the caller and its helpers:
/// `threads` is at most 64).
pub const MAX_WORKERS: usize = 64;

/// Which rows may share a run (the model's class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Any rows, padded to the longest.
    Free,
    /// Only rows of the same length (no padding between rows).
    SameLength,
    /// One row per run.
    Single,
}

/// A run's cost, `fixed + per_token * padded tokens`, in any unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostModel {
    pub fixed: f64,
    pub per_token: f64,
}

impl CostModel {
    /// What a run of `rows` rows of `len` positions costs.
    pub fn run(&self, rows: usize, len: usize) -> f64 {
        self.fixed + self.per_token * (rows * len) as f64
    }

    /// The model from two timed runs of `tokens_a` and `tokens_b` padded
    /// tokens (`tokens_a < tokens_b`). A noisy or inverted measurement falls
    /// back to [`CostModel::DEFAULT`] (a fixed cost of 20 tokens), about the
    /// ratio of a small BERT on one thread (see docs/performance.md).
    pub fn from_timings(tokens_a: usize, secs_a: f64, tokens_b: usize, secs_b: f64) -> Self {
        let per_token = (secs_b - secs_a) / (tokens_b as f64 - tokens_a as f64);
        let fixed = secs_a - per_token * tokens_a as f64;
        if per_token.is_finite() && per_token > 0.0 && fixed.is_finite() && fixed > 0.0 {
            Self { fixed, per_token }
        } else {
            Self::DEFAULT
        }
    }

    pub const DEFAULT: Self = Self {
        fixed: 20.0,
        per_token: 1.0,
    };
}

/// Reusable scratch for [`Grouper::plan`]: allocated once at [`WINDOW`] rows.
pub struct Grouper {
    order: Vec<u32>,
    best: Vec<f64>,
    cut: Vec<u32>,
    /// Group ends (exclusive) into `order`, in order.
    ends: Vec<u32>,
    /// Which worker runs each group ([`Grouper::deal`]).
    owners: Vec<u8>,
    /// Each worker's dealt cost so far.
    loads: Vec<f64>,
    /// Each group's cost, and the groups by decreasing cost (for the deal).
    costs: Vec<f64>,
    by_cost: Vec<u32>,
}

impl Default for Grouper {
    fn default() -> Self {
        Self::new()
    }
}

impl Grouper {
    pub fn new() -> Self {
        Self {
            order: Vec::with_capacity(WINDOW),
            best: Vec::with_capacity(WINDOW + 1),
            cut: Vec::with_capacity(WINDOW + 1),
            ends: Vec::with_capacity(WINDOW),
            owners: Vec::with_capacity(WINDOW),
            loads: Vec::with_capacity(MAX_WORKERS),
            costs: Vec::with_capacity(WINDOW),
            by_cost: Vec::with_capacity(WINDOW),
        }
    }

    /// Deals the planned groups to `workers` workers, balancing their cost
    /// (the costliest first, each to the least loaded worker): deterministic,
    /// so a worker meets the same run shapes on every call of the same batch.
    /// `lens`: the rows' own lengths, as given to [`Self::plan`].
    pub fn deal(&mut self, workers: usize, lens: &[usize], cost: CostModel) {
        let workers = workers.clamp(1, MAX_WORKERS);
        let groups = self.ends.len();
        self.owners.clear();
        self.owners.resize(groups, 0);
        if workers == 1 {
            return; // every group is the caller's: no costs to weigh
        }
        self.costs.clear();
        for g in 0..groups {
            let group = self.group(g);
            let len = group.iter().map(|&r| lens[r as usize]).max().unwrap_or(1);
            self.costs.push(cost.run(group.len(), len));
        }
        self.by_cost.clear();
        self.by_cost.extend(0..groups as u32);
        let costs = &self.costs;
        // Unstable sorts never allocate; ties keep a fixed order by index.
        self.by_cost.sort_unstable_by(|&a, &b| {
            costs[b as usize]
                .total_cmp(&costs[a as usize])
                .then(a.cmp(&b))
        });
        self.loads.clear();
        self.loads.resize(workers, 0.0);
        for &g in &self.by_cost {
            let least = (0..workers)
                .min_by(|&a, &b| self.loads[a].total_cmp(&self.loads[b]))
                .unwrap_or(0);
            self.loads[least] += self.costs[g as usize];
            self.owners[g as usize] = least as u8;
        }
    }

    /// Which worker runs each group, after [`Self::deal`].
    pub fn owners(&self) -> &[u8] {
        &self.owners
    }

    /// Plans the runs of rows whose own lengths are `lens` (at most [`WINDOW`]).
    /// `max_rows(len)`: the most rows a run of `len` positions may hold.
    pub fn plan(
        &mut self,
        lens: &[usize],
        grouping: Grouping,
        cost: CostModel,
        max_rows: &dyn Fn(usize) -> usize,
    ) {
        debug_assert!(lens.len() <= WINDOW);
        let n = lens.len();
        self.order.clear();
        self.order.extend(0..n as u32);
        if grouping != Grouping::Single {
            // By length, ties in the caller's order; unstable sorts never allocate.
            self.order.sort_unstable_by_key(|&i| (lens[i as usize], i));
        }
        self.best.clear();
        self.cut.clear();
        self.best.push(0.0);
        self.cut.push(0);
        for end in 1..=n {
            let len = lens[self.order[end - 1] as usize];
            let limit = match grouping {
                Grouping::Single => 1,
                _ => max_rows(len).max(1),
            };
            let mut best = f64::INFINITY;
            let mut cut = end - 1;
            for start in (end.saturating_sub(limit)..end).rev() {
                if grouping == Grouping::SameLength && lens[self.order[start] as usize] != len {
                    break;
                }
                let total = self.best[start] + cost.run(end - start, len);
                if total < best {
                    best = total;
                    cut = start;
                }
            }
            self.best.push(best);
            self.cut.push(cut as u32);
        }
        // Walk the cuts back from the end, then put the group ends in order.
        self.ends.clear();
        let mut end = n;
        while end > 0 {
            self.ends.push(end as u32);
            end = self.cut[end] as usize;
        }
        self.ends.reverse();
    }

    /// Planned group `index` (in run order), as row indices.
    pub fn group(&self, index: usize) -> &[u32] {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        &self.order[start..self.ends[index] as usize]
    }

    /// How many runs were planned.
    pub fn group_count(&self) -> usize {
        self.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: CostModel = CostModel {
        fixed: 4.8,
        per_token: 0.25,
    };

    fn plan(lens: &[usize], grouping: Grouping, max: usize) -> Vec<Vec<u32>> {
        let mut g = Grouper::new();
        g.plan(lens, grouping, MINILM, &|_| max);
        (0..g.group_count()).map(|i| g.group(i).to_vec()).collect()
    }

    #[test]
    fn groups_are_dealt_by_cost() {
        // Rows of 60, 50, 10 and 5 tokens, each alone: one worker takes the
        // longest, the other the next two, then the shortest goes to the first.
        let lens = [5, 60, 10, 50];
        let mut g = Grouper::new();
        g.plan(&lens, Grouping::Single, MINILM, &|_| 1);
        g.deal(2, &lens, MINILM);
        let owner_of =
            |row: u32| g.owners()[(0..g.group_count()).find(|&i| g.group(i) == [row]).unwrap()];
        assert_eq!(owner_of(1), 0);
        assert_eq!(owner_of(3), 1);
        assert_eq!(owner_of(2), 1);
        assert_eq!(owner_of(0), 0);
        g.deal(1, &lens, MINILM);
        assert!(g.owners().iter().all(|&o| o == 0));
    }

    #[test]
    fn every_row_runs_once() {
        let lens: Vec<usize> = (0..200).map(|i| 3 + (i * 37) % 120).collect();
        for grouping in [Grouping::Free, Grouping::SameLength, Grouping::Single] {
            let mut seen: Vec<u32> = plan(&lens, grouping, 32).concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..200).collect::<Vec<u32>>(), "{grouping:?}");
        }
    }

    #[test]
    fn short_rows_are_not_padded_to_long_ones() {
        let groups = plan(&[120, 5, 6, 118, 5], Grouping::Free, 32);
        assert_eq!(groups, vec![vec![1, 4, 2], vec![3, 0]]);
    }

    #[test]
    fn classes_limit_the_groups() {
        let lens = [7, 7, 8, 7];
        assert_eq!(
            plan(&lens, Grouping::SameLength, 32),
            vec![vec![0, 1, 3], vec![2]]
        );
        assert_eq!(plan(&lens, Grouping::Single, 32).len(), 4);
        assert!(plan(&[9; 100], Grouping::Free, 32)
            .iter()
            .all(|g| g.len() <= 32));
    }

    #[test]
    fn the_cost_model_comes_from_two_timings() {
        let m = CostModel::from_timings(5, 0.006, 64, 0.020_75);
        assert!((m.per_token - 0.000_25).abs() < 1e-6);
        assert!((m.fixed - 0.004_75).abs() < 1e-6);
        assert_eq!(
            CostModel::from_timings(5, 0.02, 64, 0.01),
            CostModel::DEFAULT
        );
    }
}
