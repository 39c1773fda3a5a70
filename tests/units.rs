//! The unit controller (`medic unit`) against real agents: medic daemons on
//! their own loopback addresses (127.0.0.21, .22, ...), each watching a real
//! nginx and serving its admin API over mutual TLS with certificates the
//! test makes; and against govmomi's vCenter simulator for the inventory
//! (map and host-failure impact). The status page is read in headless
//! Chromium, and a screenshot is kept.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::Setup;
use common::nginx::Nginx;
use common::tls::{Ca, free_port_on};
use medic::journal::{Event, Kind};
use serde_json::Value;

use crate::vsphere_fixtures as fixtures;

/// One member: a medic agent on its own loopback address watching a real
/// nginx as app `app`.
pub struct Agent {
    pub setup: Setup,
    pub daemon: common::Daemon,
    pub url: String,
    pub nginx: Nginx,
}

impl Agent {
    /// An agent at `ip` whose certificate the `ca` signed, letting in the
    /// client named `controller`.
    pub fn start(ca: &Ca, ip: &str, app: &str) -> Self {
        Self::start_with(ca, ip, app, |nginx| nginx.http_app("200ms"))
    }

    /// The same, with the app file `app_file` writes for the agent's nginx.
    pub fn start_with(
        ca: &Ca,
        ip: &str,
        app: &str,
        app_file: impl FnOnce(&Nginx) -> String,
    ) -> Self {
        let nginx = Nginx::start();
        let port = free_port_on(ip);
        let (cert, key) = ca.server(&format!("agent-{ip}"), &[ip]);
        let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"")
            .with_daemon(&format!(
                "listen = \"{ip}:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
                 client_ca = \"{}\"\nclients = [\"controller\"]\n",
                cert.display(),
                key.display(),
                ca.file().display()
            ))
            .with_kit("http")
            .app(app, &app_file(&nginx));
        let daemon = setup.daemon();
        Self {
            setup,
            daemon,
            url: format!("https://{ip}:{port}"),
            nginx,
        }
    }

    /// The time of this agent's first event of `kind`.
    pub fn first(&self, kind: Kind) -> SystemTime {
        let events: Vec<Event> = self.setup.events();
        events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} at {}: {}", self.url, self.daemon.log_text()))
            .ts
    }
}

/// A controller's directory: its certificate and `units.toml` with
/// `units` (TOML) appended to the `[controller]` table.
pub struct ControllerFiles {
    pub dir: tempfile::TempDir,
}

impl ControllerFiles {
    pub fn new(ca: &Ca, rest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.client_files("controller");
        std::fs::write(
            dir.path().join("units.toml"),
            format!(
                "[controller]\nstate_dir = \"state\"\nca_file = \"{}\"\ncert_file = \"{}\"\n\
                 key_file = \"{}\"\nagent_timeout = \"20s\"\n\n{rest}",
                ca.file().display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("units.toml")
    }

    /// Runs `medic unit serve` on a free port while `look` reads its page
    /// at the URL given, then stops it (by its pid).
    pub fn with_page<T>(&self, look: impl FnOnce(&str) -> T) -> T {
        let port = common::free_port();
        let mut serve = common::medic()
            .args(["unit", "--units"])
            .arg(self.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap();
        let listening = common::wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let seen = listening.then(|| look(&format!("http://127.0.0.1:{port}/")));
        common::terminate(serve.id());
        let _ = serve.wait();
        seen.expect("medic unit serve never listened")
    }

    /// `medic unit --units FILE ARGS...`.
    pub fn unit(&self, args: &[&str]) -> Output {
        common::medic()
            .arg("unit")
            .arg("--units")
            .arg(self.path())
            .args(args)
            .output()
            .unwrap()
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn members(agents: &[&Agent], vms: &[&str]) -> String {
    let entries: Vec<String> = agents
        .iter()
        .zip(vms)
        .map(|(agent, vm)| format!("{{ vm = \"{vm}\", agent = \"{}\" }}", agent.url))
        .collect();
    format!("[{}]", entries.join(", "))
}

/// Waits until every agent answers the controller (the daemons start).
pub fn wait_healthy(files: &ControllerFiles, unit: &str) {
    let mut last = None;
    let healthy = common::wait_for(Duration::from_secs(60), || {
        let out = files.unit(&["status", unit]);
        let ok = out.status.code() == Some(0);
        last = Some(out);
        ok
    });
    assert!(healthy, "{unit} never healthy: {}", text(&last.unwrap()));
}

/// Two units, `web` (two members) depending on `db` (one): list and
/// status through the agents, a bulk stop in reverse dependency order and
/// a bulk start in dependency order (read back from the agents' own
/// journals), exit codes for every outcome, and the status page in
/// Chromium.
#[test]
fn bulk_stop_and_start_follow_depends_on_and_the_page_shows_every_member() {
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(tls_dir.path(), "ca");
    let db = Agent::start(&ca, "127.0.0.21", "db");
    let web1 = Agent::start(&ca, "127.0.0.22", "web");
    let web2 = Agent::start(&ca, "127.0.0.23", "web");
    let ghost = format!("https://127.0.0.24:{}", free_port_on("127.0.0.24"));
    let files = ControllerFiles::new(
        &ca,
        &format!(
            "[[unit]]\nname = \"web\"\napp = \"web\"\ndepends_on = [\"db\"]\nmembers = {}\n\n\
             [[unit]]\nname = \"db\"\napp = \"db\"\nmembers = {}\n\n\
             [[unit]]\nname = \"half\"\napp = \"web\"\nmembers = [{{ vm = \"web-1\", agent = \"{}\" }}, {{ vm = \"ghost\", agent = \"{ghost}\" }}]\n",
            members(&[&web1, &web2], &["web-1", "web-2"]),
            members(&[&db], &["db-1"]),
            web1.url,
        ),
    );
    wait_healthy(&files, "web");
    wait_healthy(&files, "db");

    let list = files.unit(&["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    let list = text(&list);
    assert!(
        list.lines()
            .any(|l| l.starts_with("web ") && l.contains("2/2 healthy")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("half ") && l.contains("1/2 healthy")),
        "{list}"
    );

    let half = files.unit(&["status", "half"]);
    assert_eq!(half.status.code(), Some(1), "some healthy: {}", text(&half));
    assert!(text(&half).contains("agent unreachable"), "{}", text(&half));
    let unknown = files.unit(&["status", "webb"]);
    assert_eq!(unknown.status.code(), Some(3), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no unit `webb`"),
        "{}",
        text(&unknown)
    );
    let json = files.unit(&["status", "web", "--json"]);
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["members"][0]["agent"], "reachable", "{json}");
    assert_eq!(
        json["members"][0]["app_status"]["state"], "healthy",
        "{json}"
    );

    // Stop: web before db.
    let stop = files.unit(&["stop", "db", "web"]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    let progress = text(&stop);
    assert!(progress.contains("web/web-1: ok"), "{progress}");
    assert!(
        progress.contains("stop db, web: 3 of 3 members ok"),
        "{progress}"
    );
    let db_stopped = db.first(Kind::AppStopped);
    for web in [&web1, &web2] {
        assert!(
            web.first(Kind::AppStopped) < db_stopped,
            "web stops before db"
        );
    }
    let stopped = files.unit(&["status", "web"]);
    assert_eq!(
        stopped.status.code(),
        Some(2),
        "none healthy: {}",
        text(&stopped)
    );
    assert!(text(&stopped).contains("stopped"), "{}", text(&stopped));

    // Start: db before web, each healthy again.
    let start = files.unit(&["start", "web", "db", "--health-timeout", "30s"]);
    assert_eq!(start.status.code(), Some(0), "{}", text(&start));
    let db_started = db.first(Kind::AppStarted);
    for web in [&web1, &web2] {
        assert!(
            web.first(Kind::AppStarted) > db_started,
            "db starts before web"
        );
    }
    assert_eq!(files.unit(&["status", "web"]).status.code(), Some(0));

    // A bulk verb with a dead member: the others go on, the exit says so.
    let partial = files.unit(&["stop", "half"]);
    assert_eq!(partial.status.code(), Some(1), "{}", text(&partial));
    assert!(
        text(&partial).contains("half/ghost: FAILED"),
        "{}",
        text(&partial)
    );
    let journal = medic::journal::read_all(&files.dir.path().join("state")).unwrap();
    assert!(
        journal.iter().any(|e| e.kind == Kind::UnitMember
            && e.detail["vm"] == "ghost"
            && e.detail["ok"] == false),
        "{journal:?}"
    );

    let (dom, shot) = files.with_page(|url| {
        let shot = common::chromium::artifacts("units").join("units.png");
        common::chromium::screenshot(url, &shot, (1280, 900));
        println!("screenshot: {}", shot.display());
        (common::chromium::dump_dom(url), shot)
    });
    for vm in ["web-1", "web-2", "db-1", "ghost"] {
        assert!(
            dom.contains(&format!("<td>{vm}</td>")),
            "{vm} missing: {dom}"
        );
    }
    assert!(dom.contains("unreachable"), "{dom}");
    assert!(dom.contains("stop half"), "recent operations: {dom}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// The map and a host failure's impact from the vCenter simulator's
/// inventory: which unit loses which member, with exit codes a
/// maintenance script can act on. The agents are not running: the
/// inventory alone places the VMs.
#[test]
fn map_and_impact_come_from_the_vsphere_inventory() {
    let sim = fixtures::vcsim::Vcsim::start();
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(tls_dir.path(), "ca");
    let agent = |n: u8| format!("https://127.0.0.{n}:{}", free_port_on("127.0.0.1"));
    let files = ControllerFiles::new(
        &ca,
        &format!(
            "{}\n[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = [{{ vm = \"DC0_H0_VM0\", agent = \"{}\" }}, {{ vm = \"DC0_C0_RP0_VM0\", agent = \"{}\" }}]\n\n\
             [[unit]]\nname = \"db\"\napp = \"db\"\nmembers = [{{ vm = \"DC0_H0_VM1\", agent = \"{}\" }}]\n",
            vsphere_section(&sim),
            agent(31),
            agent(32),
            agent(33),
        ),
    );
    let map = files.unit(&["map", "--json"]);
    assert_eq!(map.status.code(), Some(0), "{}", text(&map));
    let map: Value = serde_json::from_slice(&map.stdout).unwrap();
    let hosts = map["hosts"].as_array().unwrap();
    let standalone = hosts.iter().find(|h| h["name"] == "DC0_H0").unwrap();
    assert!(standalone["cluster"].is_null(), "{map}");
    assert_eq!(standalone["members"].as_array().unwrap().len(), 2, "{map}");
    let clustered = hosts.iter().find(|h| h["cluster"] == "DC0_C0").unwrap();
    let clustered_host = clustered["name"].as_str().unwrap().to_owned();
    assert_eq!(clustered["members"][0]["vm"], "DC0_C0_RP0_VM0", "{map}");
    let dot = text(&files.unit(&["map", "--dot"]));
    assert!(dot.contains("label=\"DC0_H0\""), "{dot}");
    assert!(
        dot.contains("\"unit:web\" -> \"vm:DC0_C0_RP0_VM0\""),
        "{dot}"
    );

    // DC0_H0 holds db's only member and one of web's two.
    let impact = files.unit(&["impact", "DC0_H0"]);
    assert_eq!(impact.status.code(), Some(2), "{}", text(&impact));
    let impact = text(&impact);
    assert!(
        impact.contains("web: 1 of 2 left; loses DC0_H0_VM0"),
        "{impact}"
    );
    assert!(
        impact.contains("db: 0 of 1 left; loses DC0_H0_VM1 (ALL MEMBERS)"),
        "{impact}"
    );
    let impact = files.unit(&["impact", &clustered_host, "--json"]);
    assert_eq!(impact.status.code(), Some(1), "{}", text(&impact));
    let impact: Value = serde_json::from_slice(&impact.stdout).unwrap();
    assert_eq!(impact["units"][0]["lost"][0], "DC0_C0_RP0_VM0", "{impact}");
    let idle_host = hosts
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .find(|h| *h != "DC0_H0" && *h != clustered_host);
    if let Some(idle) = idle_host {
        assert_eq!(files.unit(&["impact", idle]).status.code(), Some(0));
    }
    let typo = files.unit(&["impact", "DC0_H9"]);
    assert_eq!(typo.status.code(), Some(3), "a typo never reads as safe");
    assert!(text(&typo).contains("no host `DC0_H9`"), "{}", text(&typo));
}

/// `[hypervisor]` for the simulator `sim`, its credentials in a 0600 file.
fn vsphere_section(sim: &fixtures::vcsim::Vcsim) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let credentials = sim.dir.path().join("vsphere.cred");
    std::fs::write(
        &credentials,
        format!(
            "username = {}\npassword = {}\n",
            toml::Value::from(fixtures::USER),
            toml::Value::from(fixtures::PASSWORD)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[hypervisor]\nbackend = \"vsphere\"\n[hypervisor.vsphere]\nurl = \"{}\"\ncredentials = \"{}\"\nca_file = \"{}\"\n",
        sim.url,
        credentials.display(),
        sim.ca_file.display(),
    )
}

/// `unit build` clones new members from a powered-off master VM in the
/// vCenter simulator, each with its own name and a guest customization
/// (host name, address), and writes them into the unit in units.toml,
/// keeping the file's comments; a missing master is refused up front.
#[test]
fn build_clones_members_and_writes_them_into_units_toml() {
    let sim = fixtures::vcsim::Vcsim::start_with_powered_off(&["DC0_H0_VM1"]);
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(tls_dir.path(), "ca");
    let files = ControllerFiles::new(
        &ca,
        &format!(
            "{}\n# the shop's front end\n[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = [\n  {{ vm = \"DC0_H0_VM0\", agent = \"https://127.0.0.31:9444\" }},\n]\n",
            vsphere_section(&sim)
        ),
    );
    let build = files.unit(&[
        "build",
        "web",
        "--from",
        "DC0_H0_VM1",
        "--count",
        "2",
        "--ip",
        "10.0.0.21/24",
        "--gateway",
        "10.0.0.1",
    ]);
    assert_eq!(build.status.code(), Some(0), "{}", text(&build));
    let progress = text(&build);
    assert!(
        progress.contains("web/web-1: ok built, agent https://10.0.0.21:9444"),
        "{progress}"
    );
    assert!(
        progress.contains("web/web-2: ok built, agent https://10.0.0.22:9444"),
        "{progress}"
    );
    let written = std::fs::read_to_string(files.path()).unwrap();
    assert!(written.contains("# the shop's front end"), "{written}");
    assert!(
        written.contains("{ vm = \"web-2\", agent = \"https://10.0.0.22:9444\" }"),
        "{written}"
    );
    let map = files.unit(&["map", "--json"]);
    assert_eq!(map.status.code(), Some(0), "{}", text(&map));
    let map: Value = serde_json::from_slice(&map.stdout).unwrap();
    let placed: Vec<&str> = map["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|host| host["members"].as_array().unwrap())
        .map(|member| member["vm"].as_str().unwrap())
        .collect();
    assert!(
        placed.contains(&"web-1") && placed.contains(&"web-2"),
        "{map}"
    );
    let guest = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(sim.guest("web-2"));
    assert!(
        !guest.pending_customization.is_empty(),
        "customized: {guest:?}"
    );

    let missing = files.unit(&["build", "web", "--from", "no-such-master", "--count", "1"]);
    assert_eq!(missing.status.code(), Some(3), "{}", text(&missing));
    assert!(
        text(&missing).contains("no VM or template `no-such-master`"),
        "{}",
        text(&missing)
    );
}

/// Verbs that need the inventory say so without one; a broken file is
/// reported at its line with exit 3.
#[test]
fn verbs_say_what_is_missing_and_bad_files_are_reported_at_their_line() {
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(tls_dir.path(), "ca");
    let files = ControllerFiles::new(
        &ca,
        "[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = []\n",
    );
    for verb in [
        &["map"][..],
        &["impact", "h1"],
        &["build", "web", "--from", "t", "--count", "1"],
    ] {
        let out = files.unit(verb);
        assert_eq!(out.status.code(), Some(3), "{verb:?}: {}", text(&out));
        assert!(
            text(&out).contains("add a [hypervisor] table"),
            "{}",
            text(&out)
        );
    }
    std::fs::write(
        files.path(),
        format!(
            "{}\n[[unit]]\nname = \"api\"\napp = \"api\"\nmembers = [{{ vm = \"a\", agent = \"http://10.0.0.1:9443\" }}]\n",
            std::fs::read_to_string(files.path()).unwrap()
        ),
    )
    .unwrap();
    let out = files.unit(&["list"]);
    assert_eq!(out.status.code(), Some(3));
    let error = text(&out);
    assert!(
        error.contains(&format!("{}:", files.path().display()))
            && error.contains("unit[1].members[0].agent")
            && error.contains("https://"),
        "{error}"
    );
}

/// A unit whose member VM lives in the vCenter simulator and whose agent
/// is a real medic: `stop --power-off` stops the app, then shuts the guest
/// down; `start` powers the VM on, waits for the agent, starts the app and
/// waits for its check to pass.
#[test]
fn stop_with_power_off_and_start_drive_the_vm_and_the_app() {
    let sim = fixtures::vcsim::Vcsim::start();
    let tls_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(tls_dir.path(), "ca");
    let web = Agent::start(&ca, "127.0.0.25", "web");
    let files = ControllerFiles::new(
        &ca,
        &format!(
            "{}\n[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = [{{ vm = \"DC0_H0_VM0\", agent = \"{}\" }}]\n",
            vsphere_section(&sim),
            web.url
        ),
    );
    wait_healthy(&files, "web");
    let power = |files: &ControllerFiles| {
        let status = files.unit(&["status", "web", "--json"]);
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        status["members"][0]["power"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(power(&files), "on");

    let stop = files.unit(&["stop", "web", "--power-off", "--shutdown-timeout", "20s"]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    assert!(
        text(&stop).contains("web/DC0_H0_VM0: ok web stopped, shut down"),
        "{}",
        text(&stop)
    );
    assert_eq!(power(&files), "off");

    let start = files.unit(&["start", "web", "--health-timeout", "30s"]);
    assert_eq!(start.status.code(), Some(0), "{}", text(&start));
    assert!(
        text(&start).contains("web/DC0_H0_VM0: ok powered on, web started, healthy"),
        "{}",
        text(&start)
    );
    assert_eq!(power(&files), "on");
    assert!(web.first(Kind::AppStarted) > web.first(Kind::AppStopped));
}
