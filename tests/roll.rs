//! `medic unit roll` with three members behind a real HAProxy (runtime API
//! over its unix socket): each member a medic agent on its own loopback
//! address watching a real nginx that serves its version, while a client
//! sends a steady stream of requests through HAProxy for the whole roll.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;
use crate::units::{Agent, ControllerFiles, text, wait_healthy};
use crate::updates::{release, serves, versioned_app};

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::haproxy::{BACKEND, Haproxy, SteadyClient};
use common::tls::Ca;
use medic::journal::Kind;

const VMS: [&str; 3] = ["web-1", "web-2", "web-3"];
const SERVERS: [&str; 3] = ["web1", "web2", "web3"];

/// Three agents (nginx serving v1, releases v1 and v2), HAProxy in front,
/// and the controller's units.toml with `[unit.lb]`.
struct Fleet {
    agents: Vec<Agent>,
    releases: Vec<tempfile::TempDir>,
    haproxy: Haproxy,
    files: ControllerFiles,
    _tls: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        let tls = tempfile::tempdir().unwrap();
        let ca = Ca::new(tls.path(), "ca");
        let releases: Vec<_> = VMS.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        let agents: Vec<Agent> = releases
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                Agent::start_with(&ca, &format!("127.0.0.{}", 41 + i), "web", |nginx| {
                    versioned_app(nginx, dir.path())
                })
            })
            .collect();
        let servers: Vec<(&str, std::net::SocketAddr)> = SERVERS
            .iter()
            .zip(&agents)
            .map(|(name, agent)| (*name, ([127, 0, 0, 1], agent.nginx.port).into()))
            .collect();
        let haproxy = Haproxy::start(&servers);
        haproxy.wait_all_up(Duration::from_secs(20));
        let members: Vec<String> = VMS
            .iter()
            .zip(&agents)
            .map(|(vm, agent)| format!("{{ vm = \"{vm}\", agent = \"{}\" }}", agent.url))
            .collect();
        let lb: Vec<String> = VMS
            .iter()
            .zip(SERVERS)
            .map(|(vm, server)| format!("\"{vm}\" = \"{server}\""))
            .collect();
        let files = ControllerFiles::new(
            &ca,
            &format!(
                "[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = [{}]\n\
                 [unit.lb]\nkind = \"haproxy\"\nsocket = \"{}\"\nbackend = \"{BACKEND}\"\nmembers = {{ {} }}\n",
                members.join(", "),
                haproxy.socket.display(),
                lb.join(", ")
            ),
        );
        wait_healthy(&files, "web");
        Self {
            agents,
            releases,
            haproxy,
            files,
            _tls: tls,
        }
    }

    fn serving(&self) -> Vec<String> {
        self.agents.iter().map(|a| serves(&a.nginx)).collect()
    }

    fn roll(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "roll",
            "web",
            "--drain-timeout",
            "10s",
            "--health-timeout",
            "30s",
        ];
        all.extend_from_slice(args);
        self.files.unit(&all)
    }

    /// How many updates to `version` each agent's journal has.
    fn updates_to(&self, version: &str) -> Vec<usize> {
        self.agents
            .iter()
            .map(|agent| {
                agent
                    .setup
                    .events()
                    .iter()
                    .filter(|e| e.kind == Kind::AppUpdateStarted && e.detail["version"] == version)
                    .count()
            })
            .collect()
    }
}

#[test]
fn a_roll_updates_every_member_with_zero_failed_requests_stops_at_a_failure_and_resumes_after_a_crash()
 {
    let fleet = Fleet::start();
    let client = SteadyClient::start(fleet.haproxy.port);
    assert!(client.wait_body("v1", Duration::from_secs(10)));

    // v1 → v2: every member, one at a time.
    let roll = fleet.roll(&["--version", "v2"]);
    assert_eq!(roll.status.code(), Some(0), "{}", text(&roll));
    let progress = text(&roll);
    for vm in VMS {
        for step in ["draining", "drained", "updating", "updated", "ready"] {
            assert!(
                progress.contains(&format!("web/{vm}: {step}")),
                "{vm} {step}: {progress}"
            );
        }
    }
    assert_eq!(fleet.serving(), ["v2", "v2", "v2"]);
    let statuses = fleet.haproxy.statuses();
    assert!(statuses.values().all(|s| s == "UP"), "{statuses:?}");
    assert!(client.wait_body("v2", Duration::from_secs(5)));

    // v3 is released on web-1 and web-3 only: the roll stops at web-2,
    // which is rolled back to v2 and left out of service.
    release(fleet.releases[0].path(), &["v3"]);
    release(fleet.releases[2].path(), &["v3"]);
    let failed = fleet.roll(&["--version", "v3"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("stopped at web-2"),
        "{}",
        text(&failed)
    );
    assert_eq!(fleet.serving(), ["v3", "v2", "v2"]);
    let statuses = fleet.haproxy.statuses();
    assert!(
        statuses["web2"].contains("DRAIN") || statuses["web2"].contains("MAINT"),
        "{statuses:?}"
    );
    assert_eq!(fleet.updates_to("v3"), [1, 1, 0], "web-3 keeps v2");

    // v4 everywhere; the controller is killed while web-2 updates, and the
    // resumed roll finishes without updating any member twice.
    for dir in &fleet.releases {
        release(dir.path(), &["v4"]);
    }
    let mut controller = common::medic()
        .args(["unit", "--units"])
        .arg(fleet.files.path())
        .args(["roll", "web", "--version", "v4", "--health-timeout", "30s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(controller.stdout.take().unwrap());
    for line in lines.lines() {
        if line.unwrap().starts_with("web/web-2: updating") {
            break;
        }
    }
    // Long enough for the update to reach the agent, which goes on with it:
    // the resumed roll must wait for it rather than update web-2 again.
    std::thread::sleep(Duration::from_millis(50));
    common::kill9(controller.id());
    let _ = controller.wait();
    let status = text(&fleet.files.unit(&["status", "web"]));
    assert!(status.contains("roll to v4 in progress"), "{status}");
    assert!(status.contains("web-1 ready"), "{status}");
    let dom = fleet.files.with_page(common::chromium::dump_dom);
    assert!(dom.contains("Rolling updates in progress"), "{dom}");
    assert!(dom.contains("web-1: ready"), "{dom}");
    let refused = fleet.roll(&["--version", "v4"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(text(&refused).contains("--resume"), "{}", text(&refused));
    let resumed = fleet.roll(&["--version", "v4", "--resume"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(
        !text(&resumed).contains("web/web-1:"),
        "web-1 was done: {}",
        text(&resumed)
    );
    assert_eq!(fleet.serving(), ["v4", "v4", "v4"]);
    assert_eq!(fleet.updates_to("v4"), [1, 1, 1], "no member updated twice");
    let statuses = fleet.haproxy.statuses();
    assert!(statuses.values().all(|s| s == "UP"), "{statuses:?}");

    let report = client.stop();
    println!(
        "{}\n{}\n{}\nclient: {} ok, order {:?}",
        text(&roll),
        text(&failed),
        text(&resumed),
        report.ok,
        report.bodies_in_order
    );
    assert_eq!(report.failures, 0, "failed requests: {:?}", report.failed);
    let order: Vec<&str> = report
        .bodies_in_order
        .iter()
        .map(|(body, _)| body.as_str())
        .collect();
    assert_eq!(order.first(), Some(&"v1"), "{order:?}");
    assert_eq!(order.last(), Some(&"v4"), "{order:?}");
    let status = fleet.files.unit(&["status", "web", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["members"][1]["app_status"]["version"], "v4",
        "{status}"
    );
}
