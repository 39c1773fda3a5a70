//! Watching apps: one task per app runs checks on its schedule, feeds what
//! happens into the pure ladder in [`state`], and does what the ladder says.

mod commands;
mod executor;
pub mod state;

pub use commands::run_command;
pub use executor::{AppRuntime, supervise};
pub use state::{Action, AppState, CheckOutcome, Event, KitRecovery, Phase, Policy, ResetOutcome};
