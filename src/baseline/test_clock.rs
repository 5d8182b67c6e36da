//! The clock of the detector tests: a journey run every minute from a Monday midnight.

/// 2026-01-05 00:00 UTC, a Monday.
pub(super) const T0: i64 = 1_767_571_200_000;
pub(super) const MINUTE: i64 = 60_000;
pub(super) const DAY_RUNS: i64 = 24 * 60;

/// When the run numbered `run` (from 0 at [`T0`]) starts.
pub(super) fn at(run: i64) -> i64 {
    T0 + run * MINUTE
}
