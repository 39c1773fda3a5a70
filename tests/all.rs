//! medic's integration tests, one module per area, linked as one binary
//! (wasmtime and libvirt are linked once, not once per area): real servers,
//! real hypervisors and real guests built from `plugins/` and
//! `tests/guests/` when the tests first run. Run one area with
//! `cargo test -p medic --test all -- sandbox::`.
#![allow(clippy::unwrap_used)] // a panic is a failed test

mod common;

mod adapters;
mod admin;
mod alerts;
mod alerts_logs;
mod app_kits;
mod cache_trust;
mod cli;
mod daemon;
mod env_grant;
mod every_address;
mod haproxy_lb;
mod hostile_text;
mod http_checks;
mod hypervisor_fence;
mod hypervisor_inventory;
#[cfg(feature = "libvirt")]
mod hypervisor_libvirt;
mod hypervisor_qmp;
mod hypervisor_vsphere;
mod journal_history;
mod ladder;
mod languages;
mod metrics;
mod no_harm;
mod remote_admin;
mod reset_guard;
mod roll;
mod sandbox;
mod signing;
mod startup;
mod systemd;
mod tcp_checks;
mod units;
mod updates;
#[path = "vsphere_fixtures/mod.rs"]
mod vsphere_fixtures;
mod wat_guests;
mod web_page;
