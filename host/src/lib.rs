//! medic keeps applications on a server or VM alive.
//!
//! The flow is config → kit registry → supervisor → escalation; see
//! `docs/architecture.md`. This library is what the `medic` binary and the
//! integration tests share.

pub mod alerts;
pub mod api;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod fsutil;
pub mod hypervisor;
pub mod journal;
pub mod maintenance;
pub mod metrics;
pub mod process;
pub mod sandbox;
pub mod signing;
pub mod status;
pub mod stopped;
pub mod supervisor;
pub mod unit;
pub mod versions;
pub mod web;
