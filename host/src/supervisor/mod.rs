//! Watching apps: one task per app runs checks on its schedule, feeds what
//! happens into the pure ladder in [`state`], and does what the ladder says.

mod commands;
mod executor;
mod loading;
mod pidfd;
mod schedule;
pub mod state;
mod status;
mod stop;
mod update;

pub use commands::run_command;
pub use executor::{
    AppChannels, AppCheck, AppHandle, AppRuntime, Command, Shared, channels, supervise,
};
pub use loading::await_kit;
pub use state::{Action, AppState, CheckOutcome, Event, KitRecovery, Phase, Policy};
pub use status::{AppStatus, LastCheck};
pub use update::UpdateOrder;
