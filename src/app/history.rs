//! The metric history of one run, kept for plotting and export. No egui types: views read it.
//!
//! Long runs push a row per step for hours, so storage is compact: values as f32 (losses are f32 in the
//! models), in fixed-size chunks (no doubling vectors that leave freed copies behind), row indices only for
//! metrics that skip rows. Raw values carry a min/max envelope (the extremes of aligned power-of-two blocks),
//! so a view can draw a million points as a band of about two blocks per pixel column, at one lookup per
//! block. The TensorBoard-style smoothed copy is not stored: it is recomputed over the drawn range from EMA
//! states kept every few hundred values.

use crate::runs::SettingChange;
use crate::train::health::HealthEvent;
use crate::train::MetricRow;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// What the x axis of the curves measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum XAxis {
    #[default]
    Step,
    /// Training seconds (pauses excluded), as the engine reports them.
    WallTime,
}

/// Which copy of a metric to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    Raw,
    Smoothed,
}

/// One metric's value at the step nearest to a hovered position.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout {
    pub step: u64,
    pub wall_s: f64,
    pub raw: f64,
    pub smoothed: f64,
}

#[derive(Default)]
pub struct RunHistory {
    steps: Column<u64>,
    epochs: Column<f32>,
    walls: Column<f32>,
    series: Vec<Series>,
    smoothing: f64,
    /// What the health checks did (warned, paused, rolled back), oldest first: marked on the curves.
    events: Vec<HealthEvent>,
    /// Settings changed while the run trained, oldest first: marked on the curves.
    changes: Vec<SettingChange>,
}

/// The values of one metric; sparse metrics (held-out losses) have fewer values than the history has rows.
struct Series {
    name: String,
    rows: Rows,
    raw: Column<f32>,
    envelope: Envelope,
    /// The smoother's state before value `k * EMA_MARK_EVERY`, for each k up to the values so far.
    ema_marks: Vec<Ema>,
    ema: Ema,
    /// The lowest raw value so far.
    lowest: f64,
}

/// Which history row each value of a series belongs to.
enum Rows {
    /// Value `i` is from row `first + i`: a metric reported with every row since it first appeared.
    Dense {
        first: u32,
    },
    Sparse(Column<u32>),
}

/// How often a series keeps its smoother's state, bounding the values recomputed to smooth any range.
const EMA_MARK_EVERY: usize = 256;

impl Series {
    fn new(name: &str, smoothing: f64) -> Series {
        Series {
            name: name.to_string(),
            rows: Rows::Dense { first: 0 },
            raw: Column::default(),
            envelope: Envelope::default(),
            ema_marks: Vec::new(),
            ema: Ema::new(smoothing),
            lowest: f64::INFINITY,
        }
    }

    fn len(&self) -> usize {
        self.raw.len()
    }

    fn push(&mut self, row: u32, value: f64) {
        let index = self.len();
        self.rows = match std::mem::replace(&mut self.rows, Rows::Dense { first: 0 }) {
            Rows::Dense { .. } if index == 0 => Rows::Dense { first: row },
            Rows::Dense { first } if first as usize + index == row as usize => Rows::Dense { first },
            Rows::Dense { first } => {
                let mut rows = Column::default();
                (first..first + index as u32).for_each(|r| rows.push(r));
                rows.push(row);
                Rows::Sparse(rows)
            }
            Rows::Sparse(mut rows) => {
                rows.push(row);
                Rows::Sparse(rows)
            }
        };
        if index.is_multiple_of(EMA_MARK_EVERY) {
            self.ema_marks.push(self.ema.clone());
        }
        self.ema.next(value as f32 as f64);
        self.lowest = self.lowest.min(value);
        self.raw.push(value as f32);
        self.envelope.grow(&self.raw);
    }

    /// Keeps only the values of the first `rows` history rows.
    fn truncate_rows(&mut self, rows: usize) {
        let keep = partition_point(0..self.len(), |i| self.row(i) < rows);
        self.raw.truncate(keep);
        if let Rows::Sparse(indices) = &mut self.rows {
            indices.truncate(keep);
        }
        self.envelope.truncate(keep);
        self.lowest = (0..keep).map(|i| self.raw(i)).fold(f64::INFINITY, f64::min);
        // The smoother's state at `keep` is replayed from the mark before it (taken before marks go).
        let mark = self.ema_marks.get(keep / EMA_MARK_EVERY).cloned();
        self.ema_marks.truncate(keep.div_ceil(EMA_MARK_EVERY));
        let from = (keep / EMA_MARK_EVERY) * EMA_MARK_EVERY;
        if let Some(mark) = mark {
            self.ema = mark;
            (from..keep).for_each(|i| {
                self.ema.next(self.raw(i));
            });
        }
    }

    fn row(&self, index: usize) -> usize {
        match &self.rows {
            Rows::Dense { first } => *first as usize + index,
            Rows::Sparse(rows) => rows.get(index) as usize,
        }
    }

    fn raw(&self, index: usize) -> f64 {
        self.raw.get(index) as f64
    }

    fn resmooth(&mut self, smoothing: f64) {
        self.ema = Ema::new(smoothing);
        self.ema_marks.clear();
        for index in 0..self.len() {
            if index.is_multiple_of(EMA_MARK_EVERY) {
                self.ema_marks.push(self.ema.clone());
            }
            self.ema.next(self.raw(index));
        }
    }

    /// The values of `range` as `curve` reads them.
    fn values(&self, curve: Curve, range: Range<usize>) -> Vec<f64> {
        match curve {
            Curve::Raw => range.map(|i| self.raw(i)).collect(),
            Curve::Smoothed => {
                let mark = range.start / EMA_MARK_EVERY;
                let mut ema = self.ema_marks.get(mark).cloned().unwrap_or_else(|| self.ema.clone());
                let from = mark * EMA_MARK_EVERY;
                (from..range.end)
                    .map(|i| ema.next(self.raw(i)))
                    .skip(range.start - from)
                    .collect()
            }
        }
    }
}

impl RunHistory {
    /// An empty history with a series for each of `metric_names` (others are added as they arrive).
    pub fn new(metric_names: &[String], smoothing: f64) -> RunHistory {
        let series = metric_names.iter().map(|name| Series::new(name, smoothing)).collect();
        RunHistory {
            series,
            smoothing,
            ..RunHistory::default()
        }
    }

    pub fn push(&mut self, row: &MetricRow) {
        let index = u32::try_from(self.steps.len()).expect("fewer than 4 billion metric rows");
        self.steps.push(row.step);
        self.epochs.push(row.epoch as f32);
        self.walls.push(row.wall_s as f32);
        for (name, value) in &row.values {
            let position = match self.series.iter().position(|s| &s.name == name) {
                Some(position) => position,
                None => {
                    self.series.push(Series::new(name, self.smoothing));
                    self.series.len() - 1
                }
            };
            self.series[position].push(index, *value);
        }
    }

    /// Drops the rows after `step`: the run went back to it.
    pub fn truncate_after(&mut self, step: u64) {
        let rows = partition_point(0..self.steps.len(), |i| self.steps.get(i) <= step);
        self.steps.truncate(rows);
        self.epochs.truncate(rows);
        self.walls.truncate(rows);
        for series in &mut self.series {
            series.truncate_rows(rows);
        }
        self.changes.retain(|c| c.step <= step);
    }

    pub fn push_event(&mut self, event: HealthEvent) {
        self.events.push(event);
    }

    /// What the health checks did, oldest first.
    pub fn events(&self) -> &[HealthEvent] {
        &self.events
    }

    pub fn push_changes(&mut self, changes: impl IntoIterator<Item = SettingChange>) {
        self.changes.extend(changes);
    }

    /// The settings changed while the run trained, oldest first.
    pub fn changes(&self) -> &[SettingChange] {
        &self.changes
    }

    /// The x of the first and the last row (none before the first).
    pub fn x_extent(&self, axis: XAxis) -> Option<(f64, f64)> {
        let last = self.steps.len().checked_sub(1)?;
        Some((self.x(axis, 0), self.x(axis, last)))
    }

    /// Where on `axis` the row of `step` lies (the nearest row at or before it), if there is one.
    pub fn x_at_step(&self, axis: XAxis, step: u64) -> Option<f64> {
        let row = partition_point(0..self.steps.len(), |i| self.steps.get(i) <= step).checked_sub(1)?;
        Some(self.x(axis, row))
    }

    /// Sets the EMA weight (0 = raw, 0.999 = very smooth).
    pub fn set_smoothing(&mut self, weight: f64) {
        if weight != self.smoothing {
            self.smoothing = weight;
            for series in &mut self.series {
                series.resmooth(weight);
            }
        }
    }

    pub fn smoothing(&self) -> f64 {
        self.smoothing
    }

    /// Whether no metric row arrived yet.
    pub fn is_empty(&self) -> bool {
        self.steps.len() == 0
    }

    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.series.iter().map(|s| s.name.as_str())
    }

    /// Values recorded for `name`.
    pub fn count(&self, name: &str) -> usize {
        self.find(name).map_or(0, Series::len)
    }

    pub fn last_step(&self) -> Option<u64> {
        self.steps.last()
    }

    pub fn last_epoch(&self) -> Option<f64> {
        self.epochs.last().map(f64::from)
    }

    /// Training seconds of the newest row.
    pub fn last_wall_s(&self) -> Option<f64> {
        self.walls.last().map(f64::from)
    }

    /// The lowest value `name` has reached.
    pub fn lowest(&self, name: &str) -> Option<f64> {
        self.find(name).map(|s| s.lowest).filter(|v| v.is_finite())
    }

    /// The newest raw value of a metric.
    pub fn latest(&self, name: &str) -> Option<f64> {
        self.find(name).and_then(|s| s.raw.last().map(f64::from))
    }

    /// The newest `count` values of a metric with their steps, oldest first.
    pub fn latest_with_steps(&self, name: &str, count: usize) -> Vec<(u64, f64)> {
        let Some(series) = self.find(name) else {
            return Vec::new();
        };
        (series.len().saturating_sub(count)..series.len())
            .map(|i| (self.steps.get(series.row(i)), series.raw(i)))
            .collect()
    }

    /// Steps per training second over (at most) the last `window` rows.
    pub fn steps_per_second(&self, window: usize) -> Option<f64> {
        let last = self.steps.len().checked_sub(1)?;
        let first = last.saturating_sub(window);
        let seconds = f64::from(self.walls.get(last) - self.walls.get(first));
        (seconds > 0.0).then(|| (self.steps.get(last) - self.steps.get(first)) as f64 / seconds)
    }

    /// Points of one metric to draw over `view` (the whole history when `None`) at `columns` pixel columns:
    /// every point when there are few, else the min and max of each block of the largest power-of-two size
    /// that still gives every column a block (egui_plot draws those pairs as a band).
    pub fn points(
        &self,
        name: &str,
        curve: Curve,
        axis: XAxis,
        view: Option<(f64, f64)>,
        columns: usize,
    ) -> Vec<[f64; 2]> {
        let Some(series) = self.find(name) else {
            return Vec::new();
        };
        let n = series.len();
        let (start, end) = match view {
            // One point beyond each edge, so the line runs to the plot's border.
            Some((x0, x1)) => (
                self.first_at_or_after(series, axis, x0, 0..n).saturating_sub(1),
                (self.first_after(series, axis, x1, 0..n) + 1).min(n),
            ),
            None => (0, n),
        };
        let x = |i: usize| self.x(axis, series.row(i));
        let columns = columns.max(1);
        if end <= start + 2 * columns {
            return (start..end)
                .zip(series.values(curve, start..end))
                .map(|(i, value)| [x(i), value])
                .filter(|p| p[1].is_finite())
                .collect();
        }
        let shift = ((end - start) / columns).ilog2();
        let size = 1 << shift;
        let (from, to) = (start >> shift << shift, ((end - 1) >> shift << shift) + size);
        let smoothed = (curve == Curve::Smoothed).then(|| series.values(curve, from..to.min(n)));
        let mut out = Vec::with_capacity(2 * (to - from) / size);
        for first in (from..to).step_by(size) {
            let block = first..(first + size).min(n);
            let (lo, hi) = match &smoothed {
                Some(values) => extremes(values[block.start - from..block.end - from].iter().copied()),
                None => series
                    .envelope
                    .block(shift, first)
                    .unwrap_or_else(|| extremes(block.map(|i| series.raw(i)))),
            };
            if lo.is_finite() {
                out.push([x(first), lo]);
            }
            if hi.is_finite() && hi > lo {
                out.push([x(first), hi]);
            }
        }
        out
    }

    /// The metric's value at the recorded point nearest to `x`.
    pub fn readout(&self, name: &str, axis: XAxis, x: f64) -> Option<Readout> {
        let series = self.find(name)?;
        let n = series.len();
        let after = self.first_at_or_after(series, axis, x, 0..n);
        let nearest = [after.checked_sub(1), (after < n).then_some(after)]
            .into_iter()
            .flatten()
            .min_by(|a, b| {
                let distance = |i: usize| (self.x(axis, series.row(i)) - x).abs();
                distance(*a).total_cmp(&distance(*b))
            })?;
        let row = series.row(nearest);
        Some(Readout {
            step: self.steps.get(row),
            wall_s: f64::from(self.walls.get(row)),
            raw: series.raw(nearest),
            smoothed: series.values(Curve::Smoothed, nearest..nearest + 1)[0],
        })
    }

    /// The history as CSV, in the column layout of a run directory's `metrics.csv` (less the columns that
    /// have no value yet).
    pub fn to_csv(&self) -> Vec<u8> {
        let measured: Vec<&Series> = self.series.iter().filter(|s| s.len() > 0).collect();
        let header = ["step", "epoch", "wall_s"]
            .into_iter()
            .chain(measured.iter().map(|s| s.name.as_str()));
        let mut cursors = vec![0usize; measured.len()];
        let rows = (0..self.steps.len()).map(|row| {
            let mut cells = vec![
                self.steps.get(row).to_string(),
                self.epochs.get(row).to_string(),
                self.walls.get(row).to_string(),
            ];
            for (series, cursor) in measured.iter().zip(&mut cursors) {
                let measured = *cursor < series.len() && series.row(*cursor) == row;
                cells.push(if measured {
                    series.raw.get(*cursor).to_string()
                } else {
                    String::new()
                });
                *cursor += measured as usize;
            }
            cells
        });
        crate::runs::csv_bytes(header, rows)
    }

    fn find(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }

    fn x(&self, axis: XAxis, row: usize) -> f64 {
        match axis {
            XAxis::Step => self.steps.get(row) as f64,
            XAxis::WallTime => f64::from(self.walls.get(row)),
        }
    }

    /// The first index in `range` whose x is at least `x` (x grows along a series).
    fn first_at_or_after(&self, series: &Series, axis: XAxis, x: f64, range: Range<usize>) -> usize {
        partition_point(range, |i| self.x(axis, series.row(i)) < x)
    }

    /// The first index in `range` whose x is greater than `x`.
    fn first_after(&self, series: &Series, axis: XAxis, x: f64, range: Range<usize>) -> usize {
        partition_point(range, |i| self.x(axis, series.row(i)) <= x)
    }
}

/// The first index of `range` for which `is_before` is false, given it is true up to some index and false
/// after it.
fn partition_point(range: Range<usize>, is_before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (range.start, range.end);
    while low < high {
        let middle = low + (high - low) / 2;
        if is_before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// Values per chunk of a `Column`.
const CHUNK: usize = 1 << 14;

/// An append-only sequence kept in chunks of `CHUNK` values: growing never copies or frees a large block,
/// so a long run's resident memory follows its length.
struct Column<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Column { chunks: Vec::new() }
    }
}

impl<T: Copy> Column<T> {
    fn len(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            // The first chunk grows as a history does; later ones are allocated whole, once.
            _ => {
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    fn get(&self, index: usize) -> T {
        self.chunks[index / CHUNK][index % CHUNK]
    }

    fn truncate(&mut self, len: usize) {
        self.chunks.truncate(len.div_ceil(CHUNK));
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(len - (len - 1) / CHUNK * CHUNK);
        }
    }

    fn last(&self) -> Option<T> {
        self.chunks.last().and_then(|chunk| chunk.last().copied())
    }
}

/// TensorBoard's debiased exponential moving average: starting from 0 and dividing by `1 - weight^n` keeps
/// the first values from being pulled towards zero. Non-finite values pass through unsmoothed.
///
/// Kept as the debiased value itself, moved a share of the way to each new value (the same average:
/// `s_n = s_(n-1) + (1 - w) / (1 - w^n) * (v - s_(n-1))`), so that a value that never changes stays exactly
/// itself instead of a rounding off, which a plot's fit would zoom into.
#[derive(Clone)]
struct Ema {
    weight: f64,
    smoothed: f64,
    weight_power: f64,
}

impl Ema {
    fn new(weight: f64) -> Ema {
        Ema {
            weight,
            smoothed: 0.0,
            weight_power: 1.0,
        }
    }

    fn next(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return value;
        }
        self.weight_power *= self.weight;
        self.smoothed += (1.0 - self.weight) / (1.0 - self.weight_power) * (value - self.smoothed);
        self.smoothed
    }
}

/// Level 0 holds the min and max of each block of `1 << LEAF_SHIFT` values; each level above halves that.
const LEAF_SHIFT: u32 = 4;

/// Min/max of aligned power-of-two blocks, so the extremes of any index range take O(log n) lookups.
/// NaNs are ignored (`f32::min`/`max` skip them).
#[derive(Default)]
struct Envelope {
    levels: Vec<Vec<(f32, f32)>>,
}

impl Envelope {
    /// Takes note of the newest value of `values`, which grew by one since the last call.
    fn grow(&mut self, values: &Column<f32>) {
        let (leaf, len) = (1 << LEAF_SHIFT, values.len());
        if len > 0 && len.is_multiple_of(leaf) {
            let (lo, hi) = extremes((len - leaf..len).map(|i| f64::from(values.get(i))));
            self.push(0, (lo as f32, hi as f32));
        }
    }

    /// Keeps only the blocks wholly within the first `len` values.
    fn truncate(&mut self, len: usize) {
        for (level, blocks) in self.levels.iter_mut().enumerate() {
            blocks.truncate(len >> (LEAF_SHIFT as usize + level));
        }
    }

    fn push(&mut self, level: usize, block: (f32, f32)) {
        if self.levels.len() == level {
            self.levels.push(Vec::new());
        }
        let blocks = &mut self.levels[level];
        blocks.push(block);
        if blocks.len().is_multiple_of(2) {
            let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
            self.push(level + 1, (a.0.min(b.0), a.1.max(b.1)));
        }
    }

    /// The min and max of the complete block of `1 << shift` values that starts at `first` (a multiple of
    /// the block size), if the envelope keeps blocks that size and that block is complete.
    fn block(&self, shift: u32, first: usize) -> Option<(f64, f64)> {
        let level = shift.checked_sub(LEAF_SHIFT)? as usize;
        let (lo, hi) = *self.levels.get(level)?.get(first >> shift)?;
        Some((f64::from(lo), f64::from(hi)))
    }
}

fn extremes(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, values: &[(&str, f64)]) -> MetricRow {
        MetricRow {
            step,
            epoch: step as f64 / 10.0,
            wall_s: step as f64 * 0.5,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn the_lowest_value_is_kept_per_metric() {
        let mut history = RunHistory::new(&["loss".into(), "kl".into()], 0.6);
        for (step, loss) in [(1, 3.0), (2, 1.5), (3, 2.0)] {
            history.push(&row(step, &[("loss", loss)]));
        }
        assert_eq!(history.lowest("loss"), Some(1.5));
        assert_eq!(history.lowest("kl"), None, "never recorded");
    }

    #[test]
    fn a_constant_series_smooths_to_exactly_itself() {
        // A curve of a value that never changes (the classes a GAN covers, 10 all run) is drawn flat: a
        // smoothed value a rounding off made its plot zoom into the rounding.
        let mut history = RunHistory::new(&["classes".into()], 0.6);
        for step in 1..=500 {
            history.push(&row(step, &[("classes", 10.0)]));
        }
        let smoothed = history.points("classes", Curve::Smoothed, XAxis::Step, None, 1000);
        assert!(smoothed.iter().all(|p| p[1] == 10.0), "{smoothed:?}");
    }

    #[test]
    fn smoothing_is_tensorboards_debiased_ema() {
        let mut history = RunHistory::new(&["loss".into()], 0.6);
        for (step, value) in [(1, 1.0), (2, 0.0), (3, 1.0)] {
            history.push(&row(step, &[("loss", value)]));
        }
        // TensorBoard: last = last * w + (1 - w) * v; smoothed = last / (1 - w^n).
        let expected = [
            1.0,
            0.4 * 0.6 / (1.0 - 0.36) * 1.0,
            (0.4 * 0.6 * 0.6 + 0.4) / (1.0 - 0.216),
        ];
        let smoothed = history.points("loss", Curve::Smoothed, XAxis::Step, None, 100);
        for (point, want) in smoothed.iter().zip(expected) {
            assert!((point[1] - want).abs() < 1e-12, "{point:?} vs {want}");
        }
        history.set_smoothing(0.0);
        let raw: Vec<f64> = history
            .points("loss", Curve::Smoothed, XAxis::Step, None, 100)
            .iter()
            .map(|p| p[1])
            .collect();
        assert_eq!(raw, vec![1.0, 0.0, 1.0]);
    }

    #[test]
    fn envelope_blocks_hold_the_extremes_of_their_values() {
        let values: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32).sin() * i as f32).collect();
        let (mut column, mut envelope) = (Column::default(), Envelope::default());
        for value in &values {
            column.push(*value);
            envelope.grow(&column);
        }
        for shift in LEAF_SHIFT..=8 {
            for first in (0..300).step_by(1 << shift) {
                let last = first + (1 << shift);
                let block = envelope.block(shift, first);
                let expected = (last <= 300).then(|| extremes(values[first..last].iter().map(|v| f64::from(*v))));
                assert_eq!(block, expected, "{first}..{last}");
            }
        }
        assert_eq!(envelope.block(3, 0), None, "blocks smaller than a leaf are not kept");
    }

    #[test]
    fn truncating_after_a_step_forgets_later_rows_as_if_they_never_came() {
        let fill = |history: &mut RunHistory, steps: std::ops::RangeInclusive<u64>, scale: f64| {
            for step in steps {
                let mut values = vec![("loss", (step % 13) as f64 * scale)];
                if step % 10 == 0 {
                    values.push(("holdout_recon", step as f64 * scale));
                }
                history.push(&row(step, &values));
            }
        };
        let (mut rolled_back, mut straight) = (RunHistory::new(&[], 0.9), RunHistory::new(&[], 0.9));
        fill(&mut rolled_back, 1..=700, 1.0);
        fill(&mut rolled_back, 701..=900, 100.0);
        rolled_back.truncate_after(700);
        fill(&mut rolled_back, 701..=800, 1.0);
        fill(&mut straight, 1..=800, 1.0);
        assert_eq!(rolled_back.to_csv(), straight.to_csv());
        for name in ["loss", "holdout_recon"] {
            for curve in [Curve::Raw, Curve::Smoothed] {
                assert_eq!(
                    rolled_back.points(name, curve, XAxis::Step, None, 10),
                    straight.points(name, curve, XAxis::Step, None, 10),
                    "{name} {curve:?}"
                );
            }
            assert_eq!(rolled_back.lowest(name), straight.lowest(name));
        }
    }

    #[test]
    fn columns_index_across_chunks() {
        let mut column = Column::default();
        (0..3 * CHUNK as u64 + 5).for_each(|v| column.push(v));
        assert_eq!(column.len(), 3 * CHUNK + 5);
        assert_eq!(column.chunks.len(), 4);
        assert!(
            column.chunks[1..].iter().all(|c| c.capacity() == CHUNK),
            "later chunks are allocated whole"
        );
        for index in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 7, 3 * CHUNK + 4] {
            assert_eq!(column.get(index), index as u64);
        }
        assert_eq!(column.last(), Some(3 * CHUNK as u64 + 4));
    }

    #[test]
    fn smoothing_any_range_matches_smoothing_from_the_start() {
        let mut history = RunHistory::new(&["loss".into()], 0.9);
        for step in 0..1000u64 {
            history.push(&row(step, &[("loss", ((step * 7919) % 113) as f64 / 10.0)]));
        }
        let series = history.find("loss").unwrap();
        let whole = series.values(Curve::Smoothed, 0..1000);
        for range in [0..1, 255..257, 300..700, 999..1000, 1000..1000] {
            assert_eq!(
                series.values(Curve::Smoothed, range.clone()),
                whole[range.clone()].to_vec(),
                "{range:?}"
            );
        }
        let readout = history.readout("loss", XAxis::Step, 600.0).unwrap();
        assert_eq!(readout.smoothed, whole[600]);
    }

    #[test]
    fn many_points_become_a_band_of_blocks_that_keeps_the_extremes() {
        let mut history = RunHistory::new(&["loss".into()], 0.0);
        for step in 1..=100_000u64 {
            history.push(&row(
                step,
                &[("loss", if step == 50_000 { 9.0 } else { (step % 7) as f64 })],
            ));
        }
        let points = history.points("loss", Curve::Raw, XAxis::Step, None, 500);
        assert!(
            (500..=2000).contains(&points.len()),
            "{} points: one or two blocks per column",
            points.len()
        );
        assert_eq!(
            points.iter().map(|p| p[1]).fold(f64::MIN, f64::max),
            9.0,
            "the spike survives decimation"
        );
        let zoomed = history.points("loss", Curve::Raw, XAxis::Step, Some((100.0, 200.0)), 500);
        assert_eq!(
            zoomed.len(),
            103,
            "a narrow view shows every point plus one beyond each edge"
        );
    }

    #[test]
    fn sparse_metrics_keep_their_own_steps_in_readouts_and_csv() {
        let mut history = RunHistory::new(&["loss".into(), "holdout_recon".into()], 0.0);
        history.push(&row(1, &[("loss", 3.0)]));
        history.push(&row(2, &[("loss", 2.0), ("holdout_recon", 2.5)]));
        history.push(&row(3, &[("loss", 1.0)]));
        history.push(&row(4, &[("loss", 0.5), ("holdout_recon", 2.25)]));
        let readout = history.readout("holdout_recon", XAxis::Step, 2.9).unwrap();
        assert_eq!((readout.step, readout.raw), (2, 2.5));
        assert_eq!(history.readout("loss", XAxis::WallTime, 1.4).unwrap().step, 3);
        assert_eq!(history.readout("holdout_recon", XAxis::Step, 3.6).unwrap().step, 4);
        assert_eq!(
            String::from_utf8(history.to_csv()).unwrap(),
            "step,epoch,wall_s,loss,holdout_recon\n1,0.1,0.5,3,\n2,0.2,1,2,2.5\n3,0.3,1.5,1,\n4,0.4,2,0.5,2.25\n"
        );
    }
}
