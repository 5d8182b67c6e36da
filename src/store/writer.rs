//! Batched writes: runs go through a bounded channel to one task that commits them in
//! batches (up to `max_batch` runs, or whatever arrived within `max_delay`), so a slow disk
//! costs a queue, never step execution.

// The writer is a worker: its batching deadline is measured on the clock.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Result, RunRecord, Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most runs per transaction.
    pub max_batch: usize,
    /// Longest a run waits for others before its batch is committed.
    pub max_delay: Duration,
    /// Runs queued before [`StoreWriter::submit`] waits (and [`StoreWriter::try_submit`]
    /// refuses).
    pub capacity: usize,
    /// Commit attempts per batch before its runs are given up (and reported by `flush`), when
    /// the database refuses the batch itself.
    pub attempts: u32,
    /// How long a batch is retried while the database is unreachable (transient errors: a
    /// restart, a failover, a network partition) before it is given up. Meanwhile runs queue
    /// up to `capacity`, then `submit` waits.
    pub outage: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            max_batch: 100,
            max_delay: Duration::from_millis(200),
            capacity: 10_000,
            attempts: 4,
            outage: Duration::from_secs(15 * 60),
        }
    }
}

enum Msg {
    Run(Box<RunRecord>),
    Flush(oneshot::Sender<Result<()>>),
}

/// A handle to the writer task; clones share the task, which ends when every handle is gone
/// (after committing what is queued).
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Msg>,
}

impl StoreWriter {
    pub fn spawn(store: Store, config: WriterConfig) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let task = tokio::spawn(run(store, config, rx));
        (StoreWriter { tx }, task)
    }

    /// Queues a run, waiting only if the queue is full.
    pub async fn submit(&self, record: RunRecord) -> Result<()> {
        self.tx
            .send(Msg::Run(Box::new(record)))
            .await
            .map_err(|_| StoreError::WriterClosed)
    }

    /// Queues a run or gives it back at once if the queue is full.
    pub fn try_submit(&self, record: RunRecord) -> std::result::Result<(), Box<RunRecord>> {
        self.tx
            .try_send(Msg::Run(Box::new(record)))
            .map_err(|e| match e.into_inner() {
                Msg::Run(r) => r,
                Msg::Flush(_) => unreachable!(),
            })
    }

    /// Runs queued and not yet taken by the writer task (for `/metrics`).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Commits everything queued before this call; `Ok` means those runs are durable. An error
    /// reports runs given up since the previous flush.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        rx.await.map_err(|_| StoreError::WriterClosed)?
    }
}

async fn run(store: Store, config: WriterConfig, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<RunRecord> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<Result<()>>> = Vec::new();
    let mut lost = 0u64;
    let mut last_error = String::new();
    let mut closed = false;
    while !closed {
        match rx.recv().await {
            Some(Msg::Run(r)) => batch.push(*r),
            Some(Msg::Flush(f)) => flushes.push(f),
            None => closed = true,
        }
        let deadline = Instant::now() + config.max_delay;
        while !closed && flushes.is_empty() && batch.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Msg::Run(r))) => batch.push(*r),
                Ok(Some(Msg::Flush(f))) => flushes.push(f),
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if let Err(e) = commit(&store, &batch, &config).await {
                tracing::error!(runs = batch.len(), error = %e, "runs could not be stored");
                lost += batch.len() as u64;
                last_error = e.to_string();
            }
            batch.clear();
        }
        for f in flushes.drain(..) {
            let reply = if lost == 0 {
                Ok(())
            } else {
                Err(StoreError::WriteFailed {
                    runs: lost,
                    error: last_error.clone(),
                })
            };
            let _ = f.send(reply);
            lost = 0;
        }
    }
}

/// Longest pause between two attempts during an outage.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

async fn commit(store: &Store, batch: &[RunRecord], config: &WriterConfig) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match store.runs().record_runs(batch, chrono::Utc::now()).await {
            Ok(()) => {
                if attempt > 1 {
                    tracing::info!(attempt, runs = batch.len(), "runs stored after retrying");
                }
                return Ok(());
            }
            Err(e) if e.is_transient() && started.elapsed() < config.outage => {
                tracing::warn!(attempt, error = %e, "the database is unavailable; retrying");
            }
            Err(e) if !e.is_transient() && attempt < config.attempts.max(1) => {
                tracing::warn!(attempt, error = %e, "storing runs failed; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 4).min(MAX_RETRY_DELAY);
        attempt += 1;
    }
}
