//! Hot reload of the journeys directory by polling content hashes every 2 s (simpler and more
//! dependable than file notifications across editors, bind mounts and network filesystems).
//!
//! Rules: a changed, added or removed file changes the schedule; a file with problems keeps the
//! last good version of its journeys running and its diagnostics are listed in the API's
//! `problems`; a deleted file stops its journeys. Files are read and parsed on a thread of their
//! own with a known stack; if loading ever panicked, the journeys already loaded keep running.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::journey::Journey;
use crate::journey::Schedule;
use crate::journey::parse::{self, ParseOptions};
use crate::scheduler::Scheduler;
use crate::service::catalog::Catalog;
use crate::store::Store;

pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Stack of the thread that reads and parses the journey files. The parser bounds every
/// recursion by the YAML depth limit, so this is a margin, not a requirement; a dedicated
/// thread also means a panic while loading cannot take a runtime worker with it.
const LOAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// File → hash of its content (or of the error reading it).
type Fingerprint = BTreeMap<PathBuf, String>;

pub struct Reloader {
    dir: PathBuf,
    store: Store,
    catalog: Arc<RwLock<Catalog>>,
    scheduler: Arc<Scheduler>,
    /// `None` until the first load.
    seen: Option<Fingerprint>,
    /// Versions already recorded in the store, by (name, sha256).
    recorded: HashSet<(String, String)>,
    loading: Loading,
}

/// How the reloader reads the files and what it schedules.
#[derive(Clone, Default)]
pub struct Loading {
    /// Variables supplied from outside the files (an embedding's overrides).
    pub parse: ParseOptions,
    /// Every journey runs on this schedule instead of its own (`waymark demo --every`).
    pub schedule: Option<Schedule>,
    /// This node's location: journeys that list others are in the catalog, not scheduled
    /// (those listing no location run everywhere). `None`: every journey is scheduled.
    pub location: Option<String>,
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let files = parse::journey_files(dir).unwrap_or_default();
    files
        .into_iter()
        .map(|f| {
            let hash = match std::fs::read(&f) {
                Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
                Err(e) => format!("error: {e}"),
            };
            (f, hash)
        })
        .collect()
}

/// The new catalog: what loads now, plus, for files that exist but have problems, the
/// journeys they defined at the last good load.
pub fn merge(previous: &Catalog, loaded: parse::Loaded, existing: &Fingerprint) -> Catalog {
    let mut journeys: BTreeMap<String, Arc<Journey>> = loaded
        .journeys
        .into_iter()
        .map(|j| (j.name.clone(), Arc::new(j)))
        .collect();
    let broken: HashSet<&PathBuf> = loaded
        .diagnostics
        .iter()
        .map(|d| &d.file)
        .filter(|f| existing.contains_key(*f))
        .collect();
    let loaded_files: HashSet<PathBuf> = journeys.values().map(|j| j.source.path.clone()).collect();
    for old in previous.journeys.values() {
        let path = &old.source.path;
        if broken.contains(path)
            && !loaded_files.contains(path)
            && !journeys.contains_key(&old.name)
        {
            tracing::warn!(
                journey = %old.name,
                file = %path.display(),
                "journey file has problems; keeping its last good version"
            );
            journeys.insert(old.name.clone(), old.clone());
        }
    }
    Catalog {
        journeys,
        problems: loaded.diagnostics,
    }
}

impl Reloader {
    pub fn new(
        dir: PathBuf,
        store: Store,
        catalog: Arc<RwLock<Catalog>>,
        scheduler: Arc<Scheduler>,
        loading: Loading,
    ) -> Reloader {
        Reloader {
            dir,
            store,
            catalog,
            scheduler,
            seen: None,
            recorded: HashSet::new(),
            loading,
        }
    }

    fn runs_here(&self, journey: &Journey) -> bool {
        match &self.loading.location {
            Some(here) => journey.locations.is_empty() || journey.locations.contains(here),
            None => true,
        }
    }

    /// Loads the directory again if any file changed since the last call; `true` if it did.
    pub async fn poll(&mut self) -> bool {
        let dir = self.dir.clone();
        let first = self.seen.is_none();
        let seen = self.seen.clone();
        let options = self.loading.parse.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("journey-load".into())
            .stack_size(LOAD_STACK_BYTES)
            .spawn(move || {
                let now = fingerprint(&dir);
                let scan = if seen.as_ref() == Some(&now) {
                    None
                } else {
                    Some((now, parse::load_paths(std::slice::from_ref(&dir), &options)))
                };
                let _ = tx.send(scan);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the journey loading thread");
            return false;
        }
        let (now, mut loaded) = match rx.await {
            Ok(Some(scan)) => scan,
            Ok(None) => return false,
            // The thread ended without answering: loading panicked (a bug). What runs stays.
            Err(_) => {
                tracing::error!(
                    dir = %self.dir.display(),
                    "loading the journeys panicked; the journeys already loaded keep running"
                );
                return false;
            }
        };
        if let Some(schedule) = &self.loading.schedule {
            for j in &mut loaded.journeys {
                j.schedule = schedule.clone();
            }
        }
        let previous = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let next = merge(&previous, loaded, &now);
        for d in &next.problems {
            tracing::warn!(problem = %d, "journey problem");
        }
        self.record_versions(&next).await;
        let summary = self.scheduler.replace_journeys(
            next.journeys
                .values()
                .filter(|j| self.runs_here(j))
                .cloned(),
        );
        if !first {
            tracing::info!(
                added = ?summary.added,
                changed = ?summary.changed,
                removed = ?summary.removed,
                problems = next.problems.len(),
                "journeys reloaded"
            );
        }
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.seen = Some(now);
        true
    }

    async fn record_versions(&mut self, catalog: &Catalog) {
        for j in catalog.journeys.values() {
            let key = (j.name.clone(), j.source.content_sha256.clone());
            if self.recorded.contains(&key) {
                continue;
            }
            let text = tokio::fs::read_to_string(&j.source.path).await.ok();
            // The file may have changed since it was parsed: store its text only if it is
            // the version that runs.
            let text = text.filter(|t| hex::encode(Sha256::digest(t.as_bytes())) == key.1);
            match self
                .store
                .runs()
                .record_journey_version(j, text.as_deref(), chrono::Utc::now())
                .await
            {
                Ok(_) => {
                    self.recorded.insert(key);
                }
                Err(e) => {
                    tracing::warn!(journey = %j.name, error = %e, "journey version not recorded")
                }
            }
        }
    }

    /// Polls every `POLL_INTERVAL` until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.poll().await;
        }
    }
}
