//! The libvirt backend against libvirt's own `test:///` driver (no daemon:
//! the driver runs inside the client library), a node file of the test's
//! own for a shut-off domain, and a remote URI nobody serves.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::path::Path;
use std::time::Duration;

use medic::config::LibvirtSettings;
use medic::hypervisor::{ErrorKind, Guarded, Hypervisor, Libvirt, PowerState};
use medic::journal::Kind;

/// The domain libvirt's default test node always has.
const TEST_DOMAIN_UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";

fn libvirt(uri: &str, domain: &str) -> Libvirt {
    Libvirt::new(LibvirtSettings {
        uri: uri.to_owned(),
        domain: domain.to_owned(),
    })
}

/// A test-driver node with a running `web` and a shut-off `stopped`.
fn node_file(dir: &Path) -> String {
    let path = dir.join("node.xml");
    std::fs::write(
        &path,
        "<node>\n\
           <domain type='test'><name>web</name><memory>65536</memory><os><type>hvm</type></os></domain>\n\
           <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n\
             <name>stopped</name><memory>65536</memory><os><type>hvm</type></os>\n\
             <test:runstate>5</test:runstate>\n\
           </domain>\n\
         </node>\n",
    )
    .unwrap();
    format!("test://{}", path.display())
}

#[tokio::test]
async fn status_and_reset_of_the_test_domain_by_name_and_uuid() {
    for domain in ["test", TEST_DOMAIN_UUID] {
        let backend = libvirt("test:///default", domain);
        let id = backend.identify().await.unwrap();
        assert_eq!(
            id,
            format!("domain `test` ({TEST_DOMAIN_UUID}) on test:///default")
        );
        assert_eq!(backend.power_state().await.unwrap(), PowerState::On);
        let proof = backend.reset().await.unwrap();
        assert_eq!(proof, "virDomainReset succeeded");
    }
}

#[tokio::test]
async fn an_unknown_domain_is_not_found_and_not_retryable() {
    let error = libvirt("test:///default", "no-such-vm")
        .power_state()
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
    assert!(!error.is_retryable());
    assert!(error.message.contains("no-such-vm"), "{error}");
}

#[tokio::test]
async fn a_shut_off_domain_is_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let uri = node_file(dir.path());
    let stopped = libvirt(&uri, "stopped");
    assert_eq!(stopped.power_state().await.unwrap(), PowerState::Off);
    let error = stopped.reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::WrongPowerState, "{error}");
    assert!(!error.is_retryable());
    assert_eq!(
        libvirt(&uri, "web").power_state().await.unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn a_remote_libvirt_that_is_down_is_retryable() {
    let uri = format!("qemu+tcp://127.0.0.1:{}/system", common::free_port());
    let error = libvirt(&uri, "web").reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unreachable, "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_remote_libvirt_that_never_answers_times_out() {
    let port = common::silent::tcp(Duration::from_secs(3));
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let backend = Guarded::new(Box::new(libvirt(&uri, "web")), Duration::from_millis(300));
    let error = backend.reset().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.is_retryable());
}

#[test]
fn the_daemon_resets_through_libvirt_once_then_refuses() {
    let setup = common::Setup::new(
        "backend = \"libvirt\"\nmax_resets = 1\nmin_uptime = \"0s\"\n\
         [escalation.libvirt]\nuri = \"test:///default\"\ndomain = \"test\"",
    )
    .with_stuck_app();
    let events = setup.daemon_until("stuck", Kind::ResetRefused);
    let outcomes: Vec<_> = events.iter().filter(|e| e.kind == Kind::VmReset).collect();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].detail["outcome"], "done");
    assert_eq!(outcomes[0].detail["backend"], "libvirt");
    assert_eq!(outcomes[0].detail["proof"], "virDomainReset succeeded");
    assert_eq!(outcomes[0].detail["power_state"], "on");
}
