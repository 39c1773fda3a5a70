//! `units.toml`: the controller's identity, the hypervisor's inventory and
//! the units, checked like `medic.toml` is: every error at once, each as
//! `FILE:LINE:COL: field: message`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::tls::AgentUrl;
use crate::config::reader::{Doc, Read, Table, non_empty};
use crate::config::{ConfigError, ConfigErrors, Dependent, Source};
use crate::hypervisor::InventorySettings;
use crate::unit::haproxy::{self, Endpoint};

/// Where `medic unit` reads its units unless `--units` says.
pub const DEFAULT_UNITS: &str = "/etc/medic/units.toml";

/// How long one call to an agent may take unless `agent_timeout` says:
/// long enough for an app's `stop` or `start`, short enough that one dead
/// agent does not hold up a status page.
const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Agent calls in flight at once unless `parallel` says: enough for
/// hundreds of VMs to answer a status in seconds, few enough for any
/// admin host.
const DEFAULT_PARALLEL: u32 = 32;

/// Everything `units.toml` says.
#[derive(Debug, Clone)]
pub struct UnitsFile {
    /// The file read, for messages and for `unit build` to write members.
    pub path: PathBuf,
    /// `[controller]`.
    pub controller: Controller,
    /// `[hypervisor]`, when the verbs that need it may use it.
    pub hypervisor: Option<InventorySettings>,
    /// Every `[[unit]]`, in the order written.
    pub units: Vec<Unit>,
}

impl UnitsFile {
    /// The unit named `name`.
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|unit| unit.name == name)
    }
}

/// `[controller]`: the controller's own state and its TLS identity.
#[derive(Debug, Clone)]
pub struct Controller {
    /// The controller's journal and locks.
    pub state_dir: PathBuf,
    /// The CA that signed the agents' certificates.
    pub ca_file: PathBuf,
    /// The client certificate the agents' `clients` allow.
    pub cert_file: PathBuf,
    /// Its key (held to the credentials rules).
    pub key_file: PathBuf,
    /// How long one call to an agent may take.
    pub agent_timeout: Duration,
    /// Agent calls in flight at once.
    pub parallel: u32,
}

/// One management unit: the VMs that run one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The unit's name.
    pub name: String,
    /// The app's name in each member's medic.
    pub app: String,
    /// Units that must be up before this one starts (and stop after it).
    pub depends_on: Vec<String>,
    /// The VMs.
    pub members: Vec<Member>,
    /// The load balancer in front of the members, for rolling updates.
    pub lb: Option<LoadBalancer>,
}

/// `[unit.lb]`: the HAProxy in front of a unit, through its runtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    /// Where its runtime API listens (`socket` or `address`).
    pub endpoint: Endpoint,
    /// The HAProxy backend of the unit.
    pub backend: String,
    /// Each member VM's server name in that backend.
    pub servers: BTreeMap<String, String>,
}

impl Dependent for Unit {
    const NOUN: &'static str = "unit";

    fn name(&self) -> &str {
        &self.name
    }

    fn depends_on(&self) -> &[String] {
        &self.depends_on
    }
}

/// One VM of a unit and the medic agent in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The VM's name in the hypervisor's inventory.
    pub vm: String,
    /// The agent's admin API: `https://HOST:PORT`.
    pub agent: AgentUrl,
}

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<UnitsFile, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            field: "(file)".to_owned(),
            message: format!("cannot read file: {e}"),
        }])
    })?;
    read(&Source {
        origin: path.to_path_buf(),
        text,
    })
}

/// Checks a `units.toml` text; relative paths resolve against its
/// directory.
pub fn read(source: &Source) -> Result<UnitsFile, ConfigErrors> {
    let base = source
        .origin
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let doc = Doc::new(&source.origin, &source.text);
    let Some(parsed) = doc.parse() else {
        return Err(ConfigErrors(doc.into_errors()));
    };
    let mut root = Table::root(&doc, parsed.get_ref());
    let controller = controller(root.table("controller"), &base);
    let hypervisor = {
        let mut table = root.table("hypervisor");
        let settings = table
            .is_present()
            .then(|| crate::hypervisor::read_inventory_settings(&doc, &mut table, &base))
            .flatten();
        table.finish();
        settings
    };
    let units = units(&doc, &mut root);
    root.finish();
    let errors = doc.into_errors();
    match (controller, errors.is_empty()) {
        (Some(controller), true) => Ok(UnitsFile {
            path: source.origin.clone(),
            controller,
            hypervisor,
            units,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn controller(mut table: Table<'_, '_>, base: &Path) -> Option<Controller> {
    let mut required = |key| {
        let read = table.path(key, base);
        if matches!(read, Read::Absent) {
            table.missing(key, "required key is missing");
        }
        read.ok()
    };
    let state_dir = required("state_dir");
    let ca_file = required("ca_file");
    let cert_file = required("cert_file");
    let key_file = required("key_file");
    let agent_timeout = table
        .duration("agent_timeout", Duration::from_secs(1))
        .or(DEFAULT_AGENT_TIMEOUT);
    let parallel = table.u32_in("parallel", 1..=1024).or(DEFAULT_PARALLEL);
    table.finish();
    Some(Controller {
        state_dir: state_dir?,
        ca_file: ca_file?,
        cert_file: cert_file?,
        key_file: key_file?,
        agent_timeout,
        parallel,
    })
}

/// Every `[[unit]]`, each checked; then names unique and `depends_on`
/// naming units without a cycle.
fn units(doc: &Doc<'_>, root: &mut Table<'_, '_>) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut depends_at = Vec::new();
    let mut names = BTreeSet::new();
    for mut table in root.tables("unit") {
        let unit_name = table.parsed("name", |s| name(s).map(str::to_owned));
        match &unit_name {
            Read::Absent => table.missing("name", "required key is missing"),
            Read::Valid(unit_name, at) if !names.insert(unit_name.clone()) => {
                doc.error(
                    *at,
                    &table.field("name"),
                    format!("a second unit `{unit_name}`"),
                );
            }
            _ => {}
        }
        let app = table.required("app", |s| name(s).map(str::to_owned));
        let depends_on = table.list("depends_on", |s| name(s).map(str::to_owned));
        let at = match &depends_on {
            Read::Valid(_, at) => Some(*at),
            _ => None,
        };
        let members = members(doc, &mut table);
        let lb = {
            let mut lb = table.table("lb");
            let read = lb
                .is_present()
                .then(|| load_balancer(doc, &mut lb, &members));
            lb.finish();
            read.flatten()
        };
        let field = table.field("depends_on");
        table.finish();
        if let (Some(name), Some(app)) = (unit_name.ok(), app) {
            depends_at.push((at, field));
            units.push(Unit {
                name,
                app,
                depends_on: depends_on.or(Vec::new()),
                members,
                lb,
            });
        }
    }
    for (unit, message) in crate::config::dependency_problems(&units) {
        let index = units
            .iter()
            .position(|u| u.name == unit.name)
            .unwrap_or_default();
        let (at, field) = &depends_at[index];
        doc.error(at.unwrap_or_default(), field, message);
    }
    units
}

/// A unit's `members`: each a VM name (unique in the unit) and its agent.
fn members(doc: &Doc<'_>, unit: &mut Table<'_, '_>) -> Vec<Member> {
    let mut members = Vec::new();
    let mut vms = BTreeSet::new();
    for mut table in unit.tables("members") {
        let vm = table.parsed("vm", |s| non_empty(s).map(str::to_owned));
        if let Read::Valid(vm, at) = &vm
            && !vms.insert(vm.clone())
        {
            doc.error(
                *at,
                &table.field("vm"),
                format!("VM `{vm}` is listed twice"),
            );
        }
        if matches!(vm, Read::Absent) {
            table.missing("vm", "required key is missing");
        }
        let agent = table.required("agent", agent_url);
        table.finish();
        if let (Some(vm), Some(agent)) = (vm.ok(), agent) {
            members.push(Member { vm, agent });
        }
    }
    members
}

/// `[unit.lb]`: `kind = "haproxy"`, `socket` or `address`, `backend`, and
/// `members`, each a VM of the unit mapped to its HAProxy server.
fn load_balancer(
    doc: &Doc<'_>,
    lb: &mut Table<'_, '_>,
    members: &[Member],
) -> Option<LoadBalancer> {
    let kind = lb.required("kind", |kind| match kind {
        "haproxy" => Ok(()),
        other => Err(format!(
            "unknown load balancer `{other}`; expected: haproxy"
        )),
    });
    let socket = lb.parsed("socket", |s| non_empty(s).map(PathBuf::from));
    let address = lb.parsed("address", |s| {
        s.parse::<std::net::SocketAddr>()
            .map_err(|e| format!("`{s}` is not IP:PORT: {e}"))
    });
    let backend = lb.required("backend", |s| haproxy::valid_name(s).map(|()| s.to_owned()));
    // A problem is reported at its key, and fails the whole file.
    let servers: BTreeMap<String, String> = lb
        .scalars("members", |vm, server| {
            if members.iter().any(|member| member.vm == vm) {
                haproxy::valid_name(server)
            } else {
                Err(format!("`{vm}` is not a member of this unit"))
            }
        })
        .into_iter()
        .collect();
    let endpoint = match (socket, address) {
        (Read::Valid(path, _), Read::Absent) => Some(Endpoint::Socket(path)),
        (Read::Absent, Read::Valid(address, _)) => Some(Endpoint::Address(address)),
        (Read::Valid(_, at), Read::Valid(..)) => {
            doc.error(
                at,
                &lb.field("socket"),
                "set either `socket` or `address`, not both",
            );
            None
        }
        (Read::Absent, Read::Absent) => {
            lb.missing(
                "socket",
                "give HAProxy's runtime API: `socket` or `address`",
            );
            None
        }
        _ => None,
    };
    Some(LoadBalancer {
        endpoint: endpoint?,
        backend: backend?,
        servers,
    })
    .filter(|_| kind.is_some())
}

/// Unit and app names: what an app file's name may be.
fn name(text: &str) -> Result<&str, String> {
    let valid = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(text)
    } else {
        Err(format!(
            "`{text}` is not a name: letters, digits, `_`, `.` and `-` only"
        ))
    }
}

/// An agent's address: `https://HOST:PORT`. The agents speak mutual TLS
/// only, so `http://` is a mistake to report, not to try.
fn agent_url(text: &str) -> Result<AgentUrl, String> {
    text.parse()
        .map_err(|e: crate::api::tls::AgentUrlError| e.problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROLLER: &str = "[controller]\nstate_dir = \"state\"\nca_file = \"ca.pem\"\n\
                              cert_file = \"controller.pem\"\nkey_file = \"controller.key\"\n";

    fn read_text(text: &str) -> Result<UnitsFile, ConfigErrors> {
        read(&Source {
            origin: PathBuf::from("/etc/medic/units.toml"),
            text: text.to_owned(),
        })
    }

    fn errors(text: &str) -> Vec<String> {
        read_text(text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_documented_example_reads() {
        let text = format!(
            "{CONTROLLER}\n[[unit]]\nname = \"db\"\napp = \"postgres\"\nmembers = [{{ vm = \"db-1\", agent = \"https://10.0.0.21:9443\" }}]\n\n\
             [[unit]]\nname = \"web\"\napp = \"web\"\ndepends_on = [\"db\"]\nmembers = [\n  {{ vm = \"web-1\", agent = \"https://10.0.0.11:9443\" }},\n  {{ vm = \"web-2\", agent = \"https://web-2.example:9443\" }},\n]\n"
        );
        let file = read_text(&text).unwrap();
        assert_eq!(file.controller.state_dir, PathBuf::from("/etc/medic/state"));
        assert_eq!(
            file.controller.key_file,
            PathBuf::from("/etc/medic/controller.key")
        );
        assert_eq!(file.controller.parallel, DEFAULT_PARALLEL);
        assert!(file.hypervisor.is_none());
        let web = file.unit("web").unwrap();
        assert_eq!(web.depends_on, ["db"]);
        assert_eq!(web.members.len(), 2);
        assert_eq!(
            web.members[1].agent.to_string(),
            "https://web-2.example:9443"
        );
        let order: Vec<&str> = crate::config::start_order(&file.units)
            .iter()
            .map(|unit| unit.name.as_str())
            .collect();
        assert_eq!(order, ["db", "web"]);
    }

    #[test]
    fn every_error_is_reported_at_its_line() {
        let text = format!(
            "{CONTROLLER}parralel = 4\n\n[[unit]]\nname = \"web\"\napp = \"web\"\ndepends_on = [\"dbb\"]\n\
             members = [\n  {{ vm = \"web-1\", agent = \"http://10.0.0.11:9443\" }},\n  {{ vm = \"web-1\", agent = \"https://10.0.0.12:9443\" }},\n]\n\n\
             [[unit]]\nname = \"web\"\napp = \"web 2\"\n"
        );
        let errors = errors(&text);
        let expected = [
            "/etc/medic/units.toml:6:1: controller.parralel: unknown key",
            "/etc/medic/units.toml:11:14: unit[0].depends_on: no unit named `dbb`",
            "/etc/medic/units.toml:13:27: unit[0].members[0].agent:",
            "/etc/medic/units.toml:14:10: unit[0].members[1].vm: VM `web-1` is listed twice",
            "/etc/medic/units.toml:18:8: unit[1].name: a second unit `web`",
            "/etc/medic/units.toml:19:7: unit[1].app: `web 2` is not a name",
        ];
        for (error, expected) in errors.iter().zip(expected) {
            assert!(
                error.starts_with(expected),
                "{error}\n  expected {expected}\n{errors:#?}"
            );
        }
        assert!(errors[2].contains("https://"), "{}", errors[2]);
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn dependencies_must_name_units_without_a_cycle() {
        let unit = |name: &str, depends: &str| {
            format!(
                "[[unit]]\nname = \"{name}\"\napp = \"{name}\"\ndepends_on = [{depends}]\nmembers = []\n"
            )
        };
        let unknown = errors(&format!("{CONTROLLER}{}", unit("web", "\"dbb\"")));
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(
            unknown[0].ends_with("unit[0].depends_on: no unit named `dbb`"),
            "{unknown:?}"
        );
        let cycle = errors(&format!(
            "{CONTROLLER}{}{}",
            unit("web", "\"db\""),
            unit("db", "\"web\"")
        ));
        assert_eq!(cycle.len(), 2, "{cycle:?}");
        assert!(
            cycle[0].contains("dependency cycle: web → db → web"),
            "{cycle:?}"
        );
    }

    #[test]
    fn a_load_balancer_maps_members_to_haproxy_servers() {
        let unit = "[[unit]]\nname = \"web\"\napp = \"web\"\nmembers = [{ vm = \"web-1\", agent = \"https://10.0.0.11:9443\" }]\n";
        let file = read_text(&format!(
            "{CONTROLLER}{unit}[unit.lb]\nkind = \"haproxy\"\nsocket = \"/run/haproxy/admin.sock\"\nbackend = \"web_back\"\nmembers = {{ \"web-1\" = \"web1\" }}\n"
        ))
        .unwrap();
        let lb = file.unit("web").unwrap().lb.as_ref().unwrap();
        assert_eq!(
            lb.endpoint,
            Endpoint::Socket(PathBuf::from("/run/haproxy/admin.sock"))
        );
        assert_eq!(lb.servers["web-1"], "web1");
        let errors = errors(&format!(
            "{CONTROLLER}{unit}[unit.lb]\nkind = \"nginx\"\naddress = \"127.0.0.1:9999\"\nbackend = \"web back\"\nmembers = {{ \"web-9\" = \"web1\", \"web-1\" = \"a;b\" }}\n"
        ));
        let expected = [
            "unit[0].lb.kind: unknown load balancer `nginx`",
            "unit[0].lb.backend:",
            "unit[0].lb.members.web-9: `web-9` is not a member of this unit",
            "unit[0].lb.members.web-1:",
        ];
        for expected in expected {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:#?}"
            );
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn the_controller_s_identity_is_required() {
        let errors = errors("[[unit]]\nname = \"web\"\napp = \"web\"\n");
        for key in ["state_dir", "ca_file", "cert_file", "key_file"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(&format!("controller.{key}: required key is missing"))),
                "{key}: {errors:?}"
            );
        }
    }
}
