//! The service's background duties as one list: each has a name, says whether it runs on
//! every node or only on the leader (then it runs for each term of the lease, stopped when the
//! term ends), and in which stage of stopping it is told to stop. One loop spawns them all.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::service::cluster::{self, Cluster};
use crate::service::outbox::Outbox;
use crate::service::{Reloader, analysis, commands, feed, retention};
use crate::store::Store;

type Run = Box<dyn FnMut(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Where a duty runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nodes {
    Every,
    /// Only while this node holds the lease: singletons such as delivery and retention.
    Leader,
}

/// When a duty is told to stop, in the order of stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Until {
    /// With the service: as soon as it is asked to stop.
    Service,
    /// Once the analysis has drained its queue, so that what it committed is still delivered.
    AnalysisDrained,
    /// Last: the node keeps beating (and leading) while everything else stops.
    End,
}

pub(super) struct Duty {
    pub name: &'static str,
    pub nodes: Nodes,
    pub until: Until,
    pub run: Run,
}

fn duty<F, Fut>(name: &'static str, nodes: Nodes, until: Until, mut run: F) -> Duty
where
    F: FnMut(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Duty {
        name,
        nodes,
        until,
        run: Box::new(move |token| Box::pin(run(token))),
    }
}

/// Every duty of a serving node.
pub(super) fn list(
    state: &AppState,
    store: &Store,
    reloader: Reloader,
    outbox: Outbox,
    runs: analysis::Sender,
) -> Vec<Duty> {
    let (catalog, metrics, config) = (&state.catalog, &state.metrics, &state.config);
    // A duty is an `FnMut` (a leader's runs once per term); an every-node duty runs once, so
    // the reloader, which `run` consumes, is taken out on that one call.
    let mut reloader = Some(reloader);
    let outbox = Arc::new(outbox);
    let mut duties = vec![
        duty(
            "journeys reloader",
            Nodes::Every,
            Until::Service,
            move |t| {
                let reloader = reloader.take();
                async move {
                    if let Some(r) = reloader {
                        r.run(t).await;
                    }
                }
            },
        ),
        duty("cluster beats", Nodes::Every, Until::End, {
            let (cluster, catalog) = (state.cluster.clone(), catalog.clone());
            move |t| cluster.clone().run(catalog.clone(), t)
        }),
        duty("outbox", Nodes::Leader, Until::AnalysisDrained, move |t| {
            let outbox = outbox.clone();
            async move { outbox.run(t).await }
        }),
        duty("retention", Nodes::Leader, Until::Service, {
            let (store, retention) = (store.clone(), config.retention.clone());
            move |t| retention::run(store.clone(), retention.clone(), t)
        }),
        duty("claim settling", Nodes::Leader, Until::Service, {
            let (store, catalog, metrics) = (store.clone(), catalog.clone(), metrics.clone());
            move |t| cluster::settle(store.clone(), catalog.clone(), metrics.clone(), t)
        }),
        duty("command relay", Nodes::Leader, Until::Service, {
            let (store, local) = (store.clone(), state.alerts.local());
            let node = state.cluster.node_id();
            move |t| commands::relay::serve(store.clone(), local.clone(), node.clone(), t)
        }),
        duty("run feed", Nodes::Leader, Until::Service, {
            let (store, catalog) = (store.clone(), catalog.clone());
            move |t| feed::run(store.clone(), catalog.clone(), runs.clone(), t)
        }),
    ];
    if config.digest.enabled {
        let cycle = Arc::new(crate::digest::DigestCycle::new(
            config.digest.clone(),
            config.alerting.digest_delivery(),
            store.clone(),
        ));
        let catalog = catalog.clone();
        duties.push(duty(
            "digest cycle",
            Nodes::Leader,
            Until::Service,
            move |t| {
                let (cycle, catalog) = (cycle.clone(), catalog.clone());
                async move {
                    let journeys = || {
                        let c = catalog.read().unwrap_or_else(|e| e.into_inner());
                        c.journeys.values().cloned().collect()
                    };
                    cycle.run(journeys, t).await
                }
            },
        ));
    }
    duties
}

/// The spawned duties, by the stage that stops them.
pub(super) struct Running {
    stages: BTreeMap<Until, Stage>,
}

/// The duties one stage stops, with the token that tells them.
struct Stage {
    token: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Spawns every duty; those stopped with the service are stopped by `service`.
pub(super) fn start(
    duties: Vec<Duty>,
    cluster: &Arc<Cluster>,
    service: &CancellationToken,
) -> Running {
    let mut stages: BTreeMap<Until, Stage> = BTreeMap::new();
    for Duty {
        name,
        nodes,
        until,
        mut run,
    } in duties
    {
        let stage = stages.entry(until).or_insert_with(|| Stage {
            token: match until {
                Until::Service => service.clone(),
                _ => CancellationToken::new(),
            },
            tasks: Vec::new(),
        });
        let token = stage.token.clone();
        let task = match nodes {
            Nodes::Every => tokio::spawn(run(token)),
            Nodes::Leader => tokio::spawn(cluster::while_leader(cluster.leadership(), token, run)),
        };
        tracing::debug!(duty = name, ?nodes, ?until, "duty started");
        stage.tasks.push((name, task));
    }
    Running { stages }
}

impl Running {
    /// Tells the duties of `until` to stop and waits for each, at most `wait` if given.
    pub(super) async fn stop(&mut self, until: Until, wait: Option<Duration>) {
        let Some(stage) = self.stages.remove(&until) else {
            return;
        };
        stage.token.cancel();
        for (name, task) in stage.tasks {
            let done = match wait {
                Some(wait) => tokio::time::timeout(wait, task).await.is_ok(),
                None => {
                    let _ = task.await;
                    true
                }
            };
            if !done {
                tracing::warn!(duty = name, "duty did not stop in time");
            }
        }
    }
}
