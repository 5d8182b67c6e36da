//! Commands relayed through the database (`store::commands`): [`ask`] on a node that does not
//! lead, [`serve`] on the leader. No node needs to reach another over the network; the database
//! they already share carries the command and its answer.
//!
//! An asked command not taken within [`WAIT`] is withdrawn, so it never applies after its
//! caller was told it failed. One taken but not answered in time (the leader died mid-way) may
//! still have applied: the caller is told to look at the incident.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Action, AlertHandle, CommandFailed};
use crate::alert::engine::CommandError;
use crate::alert::{Incident, IncidentState};
use crate::store::Store;
use crate::store::commands::{CommandAnswer, CommandProgress, StoredCommand};

/// How long the asking node waits for the leader's answer.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often the asking node looks for the answer.
const LOOK: Duration = Duration::from_millis(100);
/// How often the leader looks for commands.
pub const POLL: Duration = Duration::from_millis(250);
const BATCH: u32 = 20;

/// Asks the leader through the store and waits for its answer.
pub async fn ask(
    store: &Store,
    node: &str,
    action: Action,
    id: i64,
    by: &str,
) -> Result<Incident, CommandFailed> {
    ask_within(store, node, (action, id, by), WAIT).await
}

async fn ask_within(
    store: &Store,
    node: &str,
    (action, id, by): (Action, i64, &str),
    wait: Duration,
) -> Result<Incident, CommandFailed> {
    let unavailable = |e: crate::store::StoreError| CommandFailed::Unavailable(e.to_string());
    let asked = store
        .commands()
        .ask_command(action.as_str(), id, by, node, Utc::now())
        .await
        .map_err(unavailable)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match store
            .commands()
            .command_progress(asked)
            .await
            .map_err(unavailable)?
        {
            CommandProgress::Answered(answer) => return decode(store, id, answer).await,
            CommandProgress::Gone => {
                return Err(CommandFailed::Unavailable(
                    "the relayed command was removed before the leader answered".into(),
                ));
            }
            CommandProgress::Waiting | CommandProgress::Taken => {}
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(LOOK).await;
    }
    if store
        .commands()
        .withdraw_command(asked)
        .await
        .map_err(unavailable)?
    {
        return Err(CommandFailed::Unavailable(format!(
            "no leader took the command within {} s; it was withdrawn \
             (GET /api/v1/nodes shows whether a node leads)",
            wait.as_secs()
        )));
    }
    // Taken just now, or taken earlier by a leader that has not answered yet.
    tokio::time::sleep(LOOK * 5).await;
    match store
        .commands()
        .command_progress(asked)
        .await
        .map_err(unavailable)?
    {
        CommandProgress::Answered(answer) => decode(store, id, answer).await,
        _ => Err(CommandFailed::Unavailable(format!(
            "the leader took the command but did not answer within {} s: \
             look at incident {id} before asking again",
            wait.as_secs()
        ))),
    }
}

/// Takes the commands other nodes asked and sends them to this node's incident engine through
/// `local` (a handle that is never relayed), every [`POLL`] until `stop` (a leader duty).
pub async fn serve(store: Store, local: AlertHandle, node: String, stop: CancellationToken) {
    loop {
        match store.commands().take_commands(&node, BATCH).await {
            Ok(taken) => {
                for command in taken {
                    let answer = apply(&local, &command).await;
                    if let Err(e) = store
                        .commands()
                        .answer_command(command.id, &answer, Utc::now())
                        .await
                    {
                        tracing::error!(command = command.id, error = %e, "relayed command applied, answer not stored");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "relay: commands not read"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn apply(local: &AlertHandle, c: &StoredCommand) -> CommandAnswer {
    let Some(action) = Action::from_word(&c.action) else {
        return encode(Err(CommandFailed::Unavailable(format!(
            "unknown command `{}`",
            c.action
        ))));
    };
    tracing::info!(command = c.id, incident = c.incident_id, action = c.action, asked_on = %c.asked_on, "relayed command");
    encode(local.send(action, c.incident_id, &c.by).await.map(drop))
}

fn encode(result: Result<(), CommandFailed>) -> CommandAnswer {
    let (outcome, detail) = match result {
        Ok(()) => ("ok", None),
        Err(CommandFailed::Refused(CommandError::NotFound(_))) => ("not_found", None),
        Err(CommandFailed::Refused(CommandError::Conflict { state, .. })) => {
            ("conflict", Some(state.to_string()))
        }
        Err(CommandFailed::Unavailable(why)) => ("unavailable", Some(why)),
    };
    CommandAnswer {
        outcome: outcome.into(),
        detail,
    }
}

/// The leader's answer as the API's result; a change it made is read back from the store.
async fn decode(store: &Store, id: i64, answer: CommandAnswer) -> Result<Incident, CommandFailed> {
    let detail = answer.detail.unwrap_or_default();
    match answer.outcome.as_str() {
        "ok" => match store.incidents().incident(id).await {
            Ok(Some(incident)) => Ok(incident),
            Ok(None) => Err(CommandError::NotFound(id).into()),
            Err(e) => Err(CommandFailed::Unavailable(e.to_string())),
        },
        "not_found" => Err(CommandError::NotFound(id).into()),
        "conflict" => {
            let state = [
                IncidentState::Open,
                IncidentState::Acknowledged,
                IncidentState::Resolved,
            ]
            .into_iter()
            .find(|s| s.as_str() == detail)
            .unwrap_or(IncidentState::Resolved);
            Err(CommandError::Conflict {
                id,
                state: state.as_str(),
            }
            .into())
        }
        _ => Err(CommandFailed::Unavailable(format!("the leader: {detail}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Incident, Severity};
    use crate::service::commands::Command;

    /// A leader that answers from a fake engine: acknowledges incident 1 (storing the change,
    /// as the analysis task would), says 2 is already resolved, knows no 3.
    fn leader(store: Store) -> (AlertHandle, tokio::task::JoinHandle<()>) {
        let (handle, mut rx) = AlertHandle::channel();
        let task = tokio::spawn(async move {
            while let Some(Command { id, by, reply, .. }) = rx.recv().await {
                let answer = match id {
                    1 => {
                        let mut i = store.incidents().incident(1).await.unwrap().unwrap();
                        i.state = IncidentState::Acknowledged;
                        i.acknowledged_by = Some(by);
                        store
                            .incidents()
                            .save_incident(&crate::alert::IncidentChange {
                                incident: i.clone(),
                                events: vec![],
                                notifications: vec![],
                                muted: vec![],
                            })
                            .await
                            .unwrap();
                        Ok(i)
                    }
                    2 => Err(CommandError::Conflict {
                        id,
                        state: "resolved",
                    }
                    .into()),
                    _ => Err(CommandError::NotFound(id).into()),
                };
                let _ = reply.send(answer);
            }
        });
        (handle, task)
    }

    #[tokio::test]
    async fn a_follower_gets_the_leaders_answers_through_the_store() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut open = Incident::open_for_test("shop", Severity::Failure, Utc::now());
        open.id = 0;
        let change = crate::alert::IncidentChange {
            incident: open,
            events: vec![],
            notifications: vec![],
            muted: vec![],
        };
        assert_eq!(store.incidents().save_incident(&change).await.unwrap(), 1);
        let (local, engine) = leader(store.clone());
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve(store.clone(), local, "lead".into(), stop.clone()));
        let (_lead, not_leading) = tokio::sync::watch::channel(false);
        let (follower, _unused) = AlertHandle::channel();
        let follower = follower.relayed(store.clone(), "follow".into(), not_leading);

        let acked = follower.send(Action::Acknowledge, 1, "ada").await.unwrap();
        assert_eq!(acked.state, IncidentState::Acknowledged);
        assert_eq!(acked.acknowledged_by.as_deref(), Some("ada"));
        match follower.send(Action::Resolve, 2, "ada").await {
            Err(CommandFailed::Refused(CommandError::Conflict { id: 2, state })) => {
                assert_eq!(state, "resolved")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            follower.send(Action::Resolve, 3, "ada").await,
            Err(CommandFailed::Refused(CommandError::NotFound(3)))
        ));
        stop.cancel();
        serving.await.unwrap();
        engine.abort();
    }

    /// Nobody leads: the command is withdrawn after the wait, so a later leader never applies
    /// what its caller was told failed.
    #[tokio::test]
    async fn a_command_no_leader_takes_is_withdrawn() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let asked = (Action::Acknowledge, 1, "ada");
        let failed = ask_within(&store, "follow", asked, Duration::from_millis(300)).await;
        match failed {
            Err(CommandFailed::Unavailable(why)) => assert!(why.contains("withdrawn"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(
            store
                .commands()
                .take_commands("late", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
