//! Runs govmomi's vCenter simulator (tests/vcsim/main.go) for a test.
//!
//! The launcher is built once per `cargo test` run, and only again when
//! main.go is newer than the binary. Each test starts its own simulator and
//! kills it (by its PID, through `Child::kill`) when the handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use medic::config::{VmSelector, VsphereApi, VsphereSettings};
use serde::Deserialize;

/// One VM of the simulator, as the launcher reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct SimVm {
    /// Managed object id, e.g. "vm-57".
    pub moref: String,
    /// Display name.
    pub name: String,
    /// Inventory path.
    pub path: String,
    /// BIOS uuid (`config.uuid`).
    pub uuid: String,
    /// Power state when the simulator started.
    pub power_state: String,
}

/// What the simulator's guest of a VM reports (tests/vcsim/main.go's
/// `/medic-test/guest`): set by a guest customization at power-on.
#[derive(Debug, Clone, Deserialize)]
pub struct SimGuest {
    /// `guest.hostName`.
    pub host_name: String,
    /// `guest.ipAddress`.
    pub ip_address: String,
    /// `config.tools.pendingCustomization`: set until the VM powers on.
    pub pending_customization: String,
    /// `runtime.powerState`.
    pub power_state: String,
}

/// A running simulator.
pub struct Vcsim {
    child: Child,
    /// SDK URL, e.g. "https://127.0.0.1:PORT/sdk".
    pub url: String,
    /// PEM file of the CA that signed the simulator's certificate.
    pub ca_file: PathBuf,
    /// Its VMs, sorted by name.
    pub vms: Vec<SimVm>,
    /// Scratch space that lives as long as the simulator.
    pub dir: tempfile::TempDir,
}

impl Vcsim {
    /// Starts a simulator with every VM powered on.
    pub fn start() -> Self {
        Self::start_with_powered_off(&[])
    }

    /// Starts a simulator with the named VMs powered off.
    pub fn start_with_powered_off(names: &[&str]) -> Self {
        Self::start_with_args(&["-power-off", &names.join(",")])
    }

    /// Starts a simulator with more of the launcher's flags (tests/vcsim/main.go).
    pub fn start_with_args(args: &[&str]) -> Self {
        let binary = launcher();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        let info_file = dir.path().join("vms.json");
        let log_file = dir.path().join("vcsim.log");
        let mut child = Command::new(binary)
            .arg("-user")
            .arg(super::USER)
            .arg("-password")
            .arg(super::PASSWORD)
            .arg("-ca-out")
            .arg(&ca_file)
            .arg("-info-out")
            .arg(&info_file)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_file).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if read == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "vcsim exited before printing its URL: {}",
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        }
        let vms: Vec<SimVm> =
            serde_json::from_str(&std::fs::read_to_string(&info_file).unwrap()).unwrap();
        Self {
            child,
            url: line.trim().to_string(),
            ca_file,
            vms,
            dir,
        }
    }

    /// The VM with this name.
    pub fn vm(&self, name: &str) -> &SimVm {
        self.vms
            .iter()
            .find(|vm| vm.name == name)
            .unwrap_or_else(|| panic!("no VM {name} in {:?}", self.vms))
    }

    /// SOAP settings trusting the simulator's CA.
    pub fn settings(&self, vm: VmSelector) -> VsphereSettings {
        let mut settings = super::settings(&self.url, VsphereApi::Soap, vm);
        settings.ca_file = Some(self.ca_file.clone());
        settings
    }

    /// What the guest of the VM named `name` reports.
    pub async fn guest(&self, name: &str) -> SimGuest {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca_file).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_path("/medic-test/guest");
        url.query_pairs_mut().append_pair("name", name);
        let answer = client.get(url).send().await.unwrap();
        assert!(answer.status().is_success(), "{answer:?}");
        answer.json().await.unwrap()
    }

    /// Writes a DMI uuid file holding `text` and returns its path.
    pub fn dmi_file(&self, file_name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(file_name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The launcher binary, built if missing or older than main.go.
pub fn launcher() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vcsim/main.go");
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vcsim-launcher");
        let binary = work.join("vcsim");
        let fresh = match (std::fs::metadata(&binary), std::fs::metadata(&source)) {
            (Ok(bin), Ok(src)) => bin.modified().unwrap() >= src.modified().unwrap(),
            _ => false,
        };
        if !fresh {
            build_launcher(&source, &work, &binary);
        }
        binary
    })
}

/// `go build` against Debian's govmomi in /usr/share/gocode, in GOPATH mode.
fn build_launcher(source: &Path, work: &Path, binary: &Path) {
    std::fs::create_dir_all(work.join("gopath")).unwrap();
    let gopath = format!("{}:/usr/share/gocode", work.join("gopath").display());
    let started = std::time::Instant::now();
    let output = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(binary)
        .arg(source)
        .env("GOPATH", gopath)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", work.join("gocache"))
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run `go` (apt-get install golang-go golang-github-vmware-govmomi-dev): {err}")
        });
    assert!(
        output.status.success(),
        "building the vcsim launcher failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("built vcsim launcher in {:?}", started.elapsed());
}
