//! Acknowledge and resolve from the API: commands sent to the task that owns the incident
//! state machine (the service's analysis task), answered once the change is committed.
//!
//! With several nodes only the leader's task holds the incidents, so a node that does not lead
//! relays the command through the database ([`relay`]) and answers with the leader's answer.

pub mod relay;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::alert::Incident;
use crate::alert::engine::CommandError;
use crate::store::Store;

crate::words::words! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Acknowledge,
        Resolve,
    }
}

pub struct Command {
    pub action: Action,
    pub id: i64,
    /// Who asked (recorded in the incident and its timeline).
    pub by: String,
    pub reply: oneshot::Sender<Result<Incident, CommandFailed>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandFailed {
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The change could not be stored, or the service is stopping.
    #[error("{0}")]
    Unavailable(String),
}

/// The API's side of the command queue.
#[derive(Clone)]
pub struct AlertHandle {
    local: mpsc::Sender<Command>,
    relay: Option<Arc<Relay>>,
}

/// What a node needs to relay commands while it does not lead.
struct Relay {
    store: Store,
    node: String,
    leading: watch::Receiver<bool>,
}

impl AlertHandle {
    pub fn channel() -> (AlertHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (
            AlertHandle {
                local: tx,
                relay: None,
            },
            rx,
        )
    }

    /// Commands asked while `leading` is false go through the database to the leader.
    pub fn relayed(self, store: Store, node: String, leading: watch::Receiver<bool>) -> Self {
        AlertHandle {
            relay: Some(Arc::new(Relay {
                store,
                node,
                leading,
            })),
            ..self
        }
    }

    /// The same queue, never relayed: the leader's side of the relay uses it.
    pub fn local(&self) -> AlertHandle {
        AlertHandle {
            local: self.local.clone(),
            relay: None,
        }
    }

    pub async fn send(&self, action: Action, id: i64, by: &str) -> Result<Incident, CommandFailed> {
        if let Some(r) = &self.relay
            && !*r.leading.borrow()
        {
            return relay::ask(&r.store, &r.node, action, id, by).await;
        }
        let (reply, answer) = oneshot::channel();
        let stopping = || CommandFailed::Unavailable("the service is stopping".into());
        self.local
            .send(Command {
                action,
                id,
                by: by.to_string(),
                reply,
            })
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}
