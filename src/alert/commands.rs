//! Acknowledge and resolve from the API: commands sent to the task that owns the incident
//! state machine (the service's analysis task), answered once the change is committed.

use tokio::sync::{mpsc, oneshot};

use super::Incident;
use super::engine::CommandError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Resolve,
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
pub struct AlertHandle(mpsc::Sender<Command>);

impl AlertHandle {
    pub fn channel() -> (AlertHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (AlertHandle(tx), rx)
    }

    pub async fn send(&self, action: Action, id: i64, by: &str) -> Result<Incident, CommandFailed> {
        let (reply, answer) = oneshot::channel();
        let stopping = || CommandFailed::Unavailable("the service is stopping".into());
        self.0
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
