//! Integration tests of the vSphere backend.
//!
//! SOAP runs against govmomi's vCenter simulator (tests/vcsim/main.go), which
//! enforces credentials and raises real vim25 faults. REST runs against
//! `fixtures::rest_fake`, a fake of the Automation REST API, since the
//! simulator has none.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;
use crate::vsphere_fixtures as fixtures;

use std::time::Duration;

use fixtures::rest_fake::{self, RestFake};
use fixtures::vcsim::Vcsim;
use medic::config::{VmSelector, VsphereApi};
use medic::hypervisor::vsphere::vm_uuid::byte_swapped;
use medic::hypervisor::vsphere::{ClientTimeouts, Vsphere};
use medic::hypervisor::{ErrorKind, Hypervisor, HypervisorError, PowerState};

const VM: &str = "DC0_H0_VM0";

fn soap(sim: &Vcsim, vm: VmSelector) -> Vsphere {
    Vsphere::new(&sim.settings(vm), fixtures::credentials()).unwrap()
}

/// identify + power_state both succeed and name the expected VM.
async fn assert_status(backend: &Vsphere, id: &str, name: &str) {
    assert_eq!(backend.identify().await.unwrap(), format!("{id} ({name})"));
    assert_eq!(backend.power_state().await.unwrap(), PowerState::On);
}

fn assert_kind(err: &HypervisorError, kind: ErrorKind, retryable: bool) {
    assert_eq!(err.kind, kind, "{err}");
    assert_eq!(err.is_retryable(), retryable, "{err}");
}

// ---- SOAP against the simulator ----

#[tokio::test]
async fn soap_status_by_uuid() {
    let sim = Vcsim::start();
    let vm = sim.vm(VM);
    // Upper case in the configuration still matches.
    let backend = soap(&sim, VmSelector::Uuid(vm.uuid.to_uppercase()));
    assert_eq!(backend.name(), "vsphere");
    assert_status(&backend, &vm.moref, VM).await;
}

#[tokio::test]
async fn soap_status_by_moref() {
    let sim = Vcsim::start();
    let vm = sim.vm(VM);
    assert_status(
        &soap(&sim, VmSelector::Moref(vm.moref.clone())),
        &vm.moref,
        VM,
    )
    .await;
}

#[tokio::test]
async fn soap_status_by_path() {
    let sim = Vcsim::start();
    let vm = sim.vm(VM);
    assert_eq!(vm.path, format!("/DC0/vm/{VM}"));
    assert_status(
        &soap(&sim, VmSelector::Path(vm.path.clone())),
        &vm.moref,
        VM,
    )
    .await;
}

#[tokio::test]
async fn soap_status_auto_with_plain_and_byte_swapped_dmi_uuid() {
    let sim = Vcsim::start();
    let vm = sim.vm(VM);
    let plain = sim.dmi_file("plain", &format!("{}\n", vm.uuid.to_uppercase()));
    let swapped = sim.dmi_file("swapped", &byte_swapped(&vm.uuid).unwrap());
    for dmi in [plain, swapped] {
        let mut settings = sim.settings(VmSelector::Auto);
        settings.dmi_uuid_file = dmi;
        let backend = Vsphere::new(&settings, fixtures::credentials()).unwrap();
        assert_status(&backend, &vm.moref, VM).await;
    }
}

#[tokio::test]
async fn soap_reset_succeeds_and_vm_is_on_afterwards() {
    let sim = Vcsim::start();
    let vm = sim.vm(VM);
    let backend = soap(&sim, VmSelector::Moref(vm.moref.clone()));
    let proof = backend.reset().await.unwrap();
    assert!(proof.starts_with("task task-"), "{proof}");
    assert!(proof.contains("succeeded"), "{proof}");
    assert!(proof.contains(&vm.moref), "{proof}");
    assert_eq!(backend.power_state().await.unwrap(), PowerState::On);
    // Sessions were logged out, so operations can be repeated indefinitely.
    backend.reset().await.unwrap();
}

#[tokio::test]
async fn soap_wrong_password_is_bad_credentials() {
    let sim = Vcsim::start();
    let settings = sim.settings(VmSelector::Moref(sim.vm(VM).moref.clone()));
    let backend = Vsphere::new(&settings, fixtures::wrong_credentials()).unwrap();
    let err = backend.power_state().await.unwrap_err();
    assert_kind(&err, ErrorKind::BadCredentials, false);
    assert!(err.message.contains("InvalidLogin"), "{err}");
    assert!(!err.message.contains("wrong"), "password leaked: {err}");
}

#[tokio::test]
async fn soap_unknown_vm_is_not_found() {
    let sim = Vcsim::start();
    let unknown = "00000000-1111-2222-3333-444444444444";
    let err = soap(&sim, VmSelector::Uuid(unknown.into()))
        .identify()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::NotFound, false);
    assert!(err.message.contains(unknown), "{err}");

    let err = soap(&sim, VmSelector::Moref("vm-999999".into()))
        .power_state()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::NotFound, false);
    assert!(err.message.contains("ManagedObjectNotFound"), "{err}");

    let err = soap(&sim, VmSelector::Path("/DC0/vm/nope".into()))
        .reset()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::NotFound, false);
    assert!(err.message.contains("/DC0/vm/nope"), "{err}");

    // auto names both forms it searched for.
    let mut settings = sim.settings(VmSelector::Auto);
    settings.dmi_uuid_file = sim.dmi_file("dmi", unknown);
    let err = Vsphere::new(&settings, fixtures::credentials())
        .unwrap()
        .identify()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::NotFound, false);
    assert!(err.message.contains(unknown), "{err}");
    assert!(
        err.message.contains(&byte_swapped(unknown).unwrap()),
        "{err}"
    );
}

#[tokio::test]
async fn soap_reset_of_powered_off_vm_is_wrong_power_state() {
    let sim = Vcsim::start_with_powered_off(&["DC0_H0_VM1"]);
    let vm = sim.vm("DC0_H0_VM1");
    assert_eq!(vm.power_state, "poweredOff");
    let backend = soap(&sim, VmSelector::Uuid(vm.uuid.clone()));
    assert_eq!(backend.power_state().await.unwrap(), PowerState::Off);
    let err = backend.reset().await.unwrap_err();
    assert_kind(&err, ErrorKind::WrongPowerState, false);
    assert!(err.message.contains("InvalidPowerState"), "{err}");
}

#[tokio::test]
async fn soap_insecure_accepts_an_untrusted_certificate() {
    let sim = Vcsim::start();
    let mut settings = sim.settings(VmSelector::Moref(sim.vm(VM).moref.clone()));
    settings.ca_file = None;
    settings.insecure = true;
    let backend = Vsphere::new(&settings, fixtures::credentials()).unwrap();
    assert_eq!(backend.power_state().await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn untrusted_certificate_is_tls() {
    let sim = Vcsim::start();
    let mut settings = sim.settings(VmSelector::Moref(sim.vm(VM).moref.clone()));
    settings.ca_file = None;
    let err = Vsphere::new(&settings, fixtures::credentials())
        .unwrap()
        .power_state()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Tls, false);
}

#[tokio::test]
async fn missing_ca_file_is_named() {
    let mut settings = fixtures::settings(
        "https://127.0.0.1:1/sdk",
        VsphereApi::Soap,
        VmSelector::Moref("vm-1".into()),
    );
    settings.ca_file = Some("/nonexistent/medic-ca.pem".into());
    let err = Vsphere::new(&settings, fixtures::credentials()).unwrap_err();
    assert_kind(&err, ErrorKind::Tls, false);
    assert!(err.message.contains("/nonexistent/medic-ca.pem"), "{err}");
}

#[tokio::test]
async fn ca_file_without_certificates_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let mut settings = fixtures::settings(
        "https://127.0.0.1:1/sdk",
        VsphereApi::Soap,
        VmSelector::Moref("vm-1".into()),
    );
    settings.ca_file = Some(path.clone());
    let err = Vsphere::new(&settings, fixtures::credentials()).unwrap_err();
    assert_kind(&err, ErrorKind::Tls, false);
    assert!(err.message.contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn hypervisor_down_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for api in [VsphereApi::Soap, VsphereApi::Rest] {
        let settings = fixtures::settings(
            &format!("https://127.0.0.1:{port}/sdk"),
            api,
            VmSelector::Moref("vm-1".into()),
        );
        let err = Vsphere::new(&settings, fixtures::credentials())
            .unwrap()
            .power_state()
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::Unreachable, true);
    }
}

#[tokio::test]
async fn hypervisor_silent_is_timeout() {
    // Accepts connections and never answers, not even the TLS handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeouts = ClientTimeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(500),
    };
    for api in [VsphereApi::Soap, VsphereApi::Rest] {
        let settings = fixtures::settings(
            &format!("https://127.0.0.1:{port}/sdk"),
            api,
            VmSelector::Moref("vm-1".into()),
        );
        let backend = Vsphere::with_timeouts(&settings, fixtures::credentials(), timeouts).unwrap();
        let started = std::time::Instant::now();
        let err = backend.reset().await.unwrap_err();
        assert_kind(&err, ErrorKind::Timeout, true);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    holder.abort();
}

// ---- REST against the fake ----

fn rest(fake: &RestFake, vm: VmSelector) -> Vsphere {
    let settings = fixtures::settings(&fake.url, VsphereApi::Rest, vm);
    Vsphere::new(&settings, fixtures::credentials()).unwrap()
}

#[tokio::test]
async fn rest_status_by_moref_path_uuid_and_auto() {
    let fake = RestFake::start().await;
    let (id, name, uuid) = rest_fake::VM_ON;
    let dir = tempfile::tempdir().unwrap();
    let swapped_dmi = dir.path().join("product_uuid");
    std::fs::write(&swapped_dmi, byte_swapped(uuid).unwrap().to_uppercase()).unwrap();
    let mut auto = fixtures::settings(&fake.url, VsphereApi::Rest, VmSelector::Auto);
    auto.dmi_uuid_file = swapped_dmi;
    let backends = [
        rest(&fake, VmSelector::Moref(id.into())),
        rest(&fake, VmSelector::Path(format!("/DC0/vm/{name}"))),
        rest(&fake, VmSelector::Uuid(uuid.to_uppercase())),
        Vsphere::new(&auto, fixtures::credentials()).unwrap(),
    ];
    for backend in backends {
        assert_status(&backend, id, name).await;
    }
    // Every session was deleted again.
    fake.with(|s| {
        assert!(s.sessions.is_empty(), "{:?}", s.sessions);
        assert_eq!(s.sessions_created, 8);
    });
}

#[tokio::test]
async fn rest_reset_succeeds_once() {
    let fake = RestFake::start().await;
    let backend = rest(&fake, VmSelector::Moref(rest_fake::VM_ON.0.into()));
    let proof = backend.reset().await.unwrap();
    assert!(proof.contains("vm-42"), "{proof}");
    assert!(proof.contains("204"), "{proof}");
    fake.with(|s| {
        assert_eq!(s.resets, 1);
        assert!(s.sessions.is_empty());
    });
}

#[tokio::test]
async fn rest_wrong_password_is_bad_credentials() {
    let fake = RestFake::start().await;
    let settings = fixtures::settings(
        &fake.url,
        VsphereApi::Rest,
        VmSelector::Moref(rest_fake::VM_ON.0.into()),
    );
    let err = Vsphere::new(&settings, fixtures::wrong_credentials())
        .unwrap()
        .reset()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::BadCredentials, false);
    fake.with(|s| assert_eq!(s.resets, 0));
}

#[tokio::test]
async fn rest_unknown_vm_is_not_found() {
    let fake = RestFake::start().await;
    for vm in [
        VmSelector::Moref("vm-999".into()),
        VmSelector::Uuid("00000000-1111-2222-3333-444444444444".into()),
        VmSelector::Path("/DC0/vm/nope".into()),
    ] {
        let err = rest(&fake, vm).reset().await.unwrap_err();
        assert_kind(&err, ErrorKind::NotFound, false);
    }
    fake.with(|s| {
        assert_eq!(s.resets, 0);
        assert!(s.sessions.is_empty(), "sessions left open after failures");
    });
}

#[tokio::test]
async fn rest_reset_of_powered_off_vm_is_wrong_power_state() {
    let fake = RestFake::start().await;
    let backend = rest(&fake, VmSelector::Moref(rest_fake::VM_OFF.0.into()));
    assert_eq!(backend.power_state().await.unwrap(), PowerState::Off);
    let err = backend.reset().await.unwrap_err();
    assert_kind(&err, ErrorKind::WrongPowerState, false);
    fake.with(|s| assert_eq!(s.resets, 0));
}

#[tokio::test]
async fn rest_unavailable_is_server_error() {
    let fake = RestFake::start().await;
    fake.with(|s| s.unavailable = true);
    let err = rest(&fake, VmSelector::Moref(rest_fake::VM_ON.0.into()))
        .reset()
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::ServerError, true);
}

/// A medic setup escalating to the simulator with `vm = "auto"`, the
/// simulator's CA and a 0600 credentials file with `password`.
fn daemon_setup(sim: &Vcsim, password: &str) -> common::Setup {
    use std::os::unix::fs::PermissionsExt;
    let vm = sim.vm(VM);
    let dmi = sim.dmi_file("product_uuid", &vm.uuid.to_uppercase());
    let cred = sim.dir.path().join("vsphere.cred");
    std::fs::write(
        &cred,
        format!(
            "username = {}\npassword = {}\n",
            toml::Value::from(fixtures::USER),
            toml::Value::from(password)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    common::Setup::new(&format!(
        "backend = \"vsphere\"\nmax_resets = 1\nmin_uptime = \"0s\"\n[escalation.vsphere]\n\
         url = \"{}\"\nvm = \"auto\"\ncredentials = \"{}\"\nca_file = \"{}\"\ndmi_uuid_file = \"{}\"",
        sim.url,
        cred.display(),
        sim.ca_file.display(),
        dmi.display()
    ))
}

#[test]
fn medic_vm_status_against_the_simulator() {
    let sim = Vcsim::start();
    let out = daemon_setup(&sim, fixtures::PASSWORD).run(&["vm", "status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let vm = sim.vm(VM);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "backend: vsphere\nvm: {} ({VM})\npower: on\nresets left: 1 of 1 per 1h\n",
            vm.moref
        )
    );

    let out = daemon_setup(&sim, "wrong").run(&["vm", "status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidLogin") && stderr.contains("bad_credentials, not retryable"),
        "{stderr}"
    );
}

#[test]
fn the_daemon_resets_through_vsphere_once_then_refuses() {
    let sim = Vcsim::start();
    let setup = daemon_setup(&sim, fixtures::PASSWORD).with_stuck_app();
    let events = setup.daemon_until("stuck", medic::journal::Kind::ResetRefused);
    let outcomes: Vec<_> = events
        .iter()
        .filter(|e| e.kind == medic::journal::Kind::VmReset)
        .collect();
    assert_eq!(outcomes.len(), 1);
    let detail = &outcomes[0].detail;
    assert_eq!(detail["outcome"], "done", "{detail}");
    let proof = detail["proof"].as_str().unwrap();
    assert!(
        proof.starts_with("task task-") && proof.contains("succeeded"),
        "{proof}"
    );
    assert_eq!(detail["power_state"], "on");
    let journal = serde_json::to_string(&setup.events()).unwrap();
    assert!(
        !journal.contains(fixtures::PASSWORD),
        "the password is never journaled"
    );
}

#[test]
fn config_validate_refuses_a_ca_file_without_certificates() {
    let sim = Vcsim::start();
    let setup = daemon_setup(&sim, fixtures::PASSWORD);
    std::fs::write(&sim.ca_file, "not a certificate\n").unwrap();
    let out = setup.run(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("escalation.vsphere:")
            && stderr.contains(&sim.ca_file.display().to_string()),
        "{stderr}"
    );
}
