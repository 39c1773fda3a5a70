//! An app whose kit is still loading: its handle answers at once, saying
//! so, and its supervision starts the moment the kit is ready. A kit that
//! never loads leaves the app unwatched, and every answer says why.

use std::time::Duration;

use tokio::sync::watch;

use super::executor::{AppChannels, Command};
use super::state::CheckOutcome;
use super::status::LastCheck;
use crate::sandbox::Kit;
use crate::status::State;

/// Waits for `kit` while answering the app's commands; `None` when medic
/// shuts down first. A kit that fails to load is reported in the app's
/// status, and the commands keep being answered until shutdown.
pub async fn await_kit(
    kit: impl Future<Output = Result<Kit, String>>,
    channels: &mut AppChannels,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Kit> {
    tokio::pin!(kit);
    let mut why = "its kit is still loading".to_owned();
    let mut failed = false;
    channels
        .status
        .send_modify(|status| status.reason = Some(why.clone()));
    loop {
        tokio::select! {
            loaded = &mut kit, if !failed => match loaded {
                Ok(kit) => return Some(kit),
                Err(error) => {
                    failed = true;
                    why = format!("not watched: its kit did not load: {error}");
                    channels.status.send_modify(|status| {
                        status.state = State::Unknown;
                        status.reason = Some(why.clone());
                    });
                }
            },
            _ = shutdown.wait_for(|stop| *stop) => return None,
            Some(command) = channels.commands.recv() => refuse(command, &why),
        }
    }
}

/// Answers `command` with `why` nothing can be done yet.
fn refuse(command: Command, why: &str) {
    match command {
        Command::CheckNow(reply) => {
            let cannot_judge = CheckOutcome::Unknown(why.to_owned());
            let _ = reply.send(LastCheck::new(&cannot_judge, Duration::ZERO));
        }
        Command::RecoverNow { reply, .. }
        | Command::Stop { reply, .. }
        | Command::Start { reply, .. }
        | Command::Update { reply, .. } => {
            let _ = reply.send(Err(why.to_owned()));
        }
    }
}
