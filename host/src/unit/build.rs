//! `medic unit build`: new members of a unit cloned from a master image,
//! each with its own name, host name and address, and written into
//! `units.toml` (comments and layout kept) where the admin sees and can
//! edit them. A clone that fails is removed by the backend and never
//! written down.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::Controller;
use super::config::{Member, Unit};
use super::ops::MemberOutcome;
use crate::api::tls::AgentUrl;
use crate::hypervisor::{CloneSpec, Inventory};
use crate::journal::{Event, Kind};

/// The agent port of new members when the unit has no member to copy it
/// from.
const DEFAULT_AGENT_PORT: u16 = 9443;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The template VM (master image) to clone.
    pub template: String,
    /// How many new members.
    pub count: u32,
    /// The first new member's address with its prefix (`10.0.0.21/24`);
    /// the next ones count up. Without it the guests use DHCP and the
    /// agents are reached by host name.
    pub first_ip: Option<(IpAddr, u8)>,
    /// The default gateway with fixed addresses.
    pub gateway: Option<IpAddr>,
    /// The agents' port; by default the unit's first member's.
    pub agent_port: Option<u16>,
}

/// Parses `--ip ADDRESS/PREFIX`.
pub fn parse_first_ip(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: give the prefix length too, e.g. 10.0.0.21/24"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|e| format!("`{address}` is not an IP address: {e}"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|prefix| (1..=max).contains(prefix))
        .ok_or_else(|| format!("`{prefix}` is not a prefix length (1 to {max})"))?;
    Ok((address, prefix))
}

/// The address `offset` after `first`, if there is one.
fn nth_address(first: IpAddr, offset: u32) -> Option<IpAddr> {
    match first {
        IpAddr::V4(v4) => u32::from(v4)
            .checked_add(offset)
            .map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(v6) => u128::from(v6)
            .checked_add(u128::from(offset))
            .map(|n| IpAddr::V6(n.into())),
    }
}

/// The names of `count` new members: `UNIT-K` for the lowest K whose name
/// neither the inventory nor the unit has.
fn new_names(unit: &Unit, taken: &BTreeSet<String>, count: u32) -> Vec<String> {
    (1u32..)
        .map(|k| format!("{}-{k}", unit.name))
        .filter(|name| !taken.contains(name) && !unit.members.iter().any(|m| &m.vm == name))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect()
}

/// Builds `plan.count` members of `unit` one after the other (clones
/// load the storage; one at a time is what the hypervisor copes with
/// best), reports each through `progress`, and writes the ones made into
/// the units file. Returns every outcome.
pub async fn build(
    controller: &Controller,
    inventory: &dyn Inventory,
    unit: &Unit,
    plan: &BuildPlan,
    progress: &(dyn Fn(&MemberOutcome) + Sync),
) -> Result<Vec<MemberOutcome>, String> {
    let taken: BTreeSet<String> = inventory
        .list()
        .await
        .map_err(|e| format!("the hypervisor's inventory: {e}"))?
        .into_iter()
        .map(|vm| vm.name)
        .collect();
    if !taken.contains(&plan.template) {
        return Err(format!(
            "the hypervisor has no VM or template `{}`",
            plan.template
        ));
    }
    let port = plan
        .agent_port
        .or_else(|| unit.members.first().map(|member| member.agent.port()))
        .unwrap_or(DEFAULT_AGENT_PORT);
    let names = new_names(unit, &taken, plan.count);
    controller.journal.record(Event::new(
        Some(&unit.name),
        Kind::UnitOperation,
        json!({"verb": "build", "units": [unit.name], "phase": "started", "by": Controller::by(),
               "from": plan.template, "count": plan.count}),
    ));
    let mut outcomes = Vec::new();
    let mut built = Vec::new();
    for (offset, name) in (0u32..).zip(names) {
        let started = Instant::now();
        let result = build_one(inventory, plan, &name, offset, port).await;
        if let Ok(member) = &result {
            built.push(member.clone());
        }
        let outcome = MemberOutcome {
            unit: unit.name.clone(),
            vm: name,
            ok: result.is_ok(),
            detail: result.map_or_else(|e| e, |member| format!("built, agent {}", member.agent)),
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        controller.journal.record(Event::new(
            Some(&unit.name),
            Kind::UnitMember,
            json!({"verb": "build", "vm": outcome.vm, "ok": outcome.ok, "detail": outcome.detail}),
        ));
        progress(&outcome);
        outcomes.push(outcome);
    }
    let written = add_members(&controller.file.path, &unit.name, &built);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.vm.as_str())
        .collect();
    controller.journal.record(Event::new(
        Some(&unit.name),
        Kind::UnitOperation,
        json!({"verb": "build", "units": [unit.name], "phase": "ended",
               "ok": failed.is_empty() && written.is_ok(), "failed": failed}),
    ));
    written.map_err(|e| {
        format!(
            "the VMs were built but {} could not be updated: {e}; add them by hand: {}",
            controller.file.path.display(),
            built
                .iter()
                .map(|m| format!("{{ vm = \"{}\", agent = \"{}\" }}", m.vm, m.agent))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok(outcomes)
}

/// Clones one member; its agent's address.
async fn build_one(
    inventory: &dyn Inventory,
    plan: &BuildPlan,
    name: &str,
    offset: u32,
    port: u16,
) -> Result<Member, String> {
    let address = match plan.first_ip {
        Some((first, prefix)) => Some((
            nth_address(first, offset).ok_or("no address left after --ip")?,
            prefix,
        )),
        None => None,
    };
    let spec = CloneSpec {
        name: name.to_owned(),
        host_name: name.to_owned(),
        ip: address.map(|(ip, prefix)| format!("{ip}/{prefix}")),
        gateway: plan.gateway.map(|gateway| gateway.to_string()),
    };
    inventory
        .clone_vm(&plan.template, &spec)
        .await
        .map_err(|e| format!("clone: {e}"))?;
    let host = match address {
        Some((IpAddr::V6(v6), _)) => format!("[{v6}]"),
        Some((ip, _)) => ip.to_string(),
        None => name.to_owned(),
    };
    let agent: AgentUrl = format!("https://{host}:{port}")
        .parse()
        .map_err(|e: crate::api::tls::AgentUrlError| e.to_string())?;
    Ok(Member {
        vm: name.to_owned(),
        agent,
    })
}

/// Appends `members` to unit `unit`'s `members` in the file at `path`,
/// keeping its comments and layout, written atomically.
pub fn add_members(path: &Path, unit: &str, members: &[Member]) -> Result<(), String> {
    if members.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let units = doc
        .get_mut("unit")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .ok_or("it has no [[unit]] tables")?;
    let table = units
        .iter_mut()
        .find(|table| table.get("name").and_then(toml_edit::Item::as_str) == Some(unit))
        .ok_or_else(|| format!("it has no unit `{unit}`"))?;
    let entry = |member: &Member| {
        let mut entry = toml_edit::InlineTable::new();
        entry.insert("vm", member.vm.as_str().into());
        entry.insert("agent", member.agent.to_string().into());
        entry
    };
    match table.get_mut("members") {
        Some(toml_edit::Item::ArrayOfTables(tables)) => {
            for member in members {
                tables.push(entry(member).into_table());
            }
        }
        Some(item) => {
            let array = item.as_array_mut().ok_or("its `members` is not an array")?;
            for member in members {
                array.push(entry(member));
            }
            // One member per line, as the file's example writes them.
            for value in array.iter_mut() {
                value.decor_mut().set_prefix("\n  ");
            }
            array.set_trailing("\n");
            array.set_trailing_comma(true);
        }
        None => {
            let mut array = toml_edit::Array::new();
            for member in members {
                array.push(entry(member));
            }
            table.insert("members", toml_edit::value(array));
        }
    }
    crate::fsutil::write_atomic(path, doc.to_string().as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(vm: &str, agent: &str) -> Member {
        Member {
            vm: vm.to_owned(),
            agent: agent.parse().unwrap(),
        }
    }

    #[test]
    fn new_members_are_written_into_the_unit_keeping_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("units.toml");
        let text = "# our units\n[[unit]]\nname = \"db\"\napp = \"pg\"\n\n\
                    [[unit]]\nname = \"web\" # the front\napp = \"web\"\nmembers = [\n  { vm = \"web-1\", agent = \"https://10.0.0.11:9443\" },\n]\n";
        std::fs::write(&path, text).unwrap();
        add_members(&path, "web", &[member("web-2", "https://10.0.0.12:9443")]).unwrap();
        add_members(&path, "db", &[member("db-1", "https://10.0.0.21:9443")]).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with("# our units\n"), "{written}");
        assert!(written.contains("name = \"web\" # the front"), "{written}");
        assert!(
            written.contains("  { vm = \"web-1\", agent = \"https://10.0.0.11:9443\" },\n  { vm = \"web-2\", agent = \"https://10.0.0.12:9443\" },\n]"),
            "{written}"
        );
        assert!(written.contains("members = [{ vm = \"db-1\""), "{written}");
        let error = add_members(&path, "cache", &[member("c-1", "https://c:1")]).unwrap_err();
        assert!(error.contains("no unit `cache`"), "{error}");
    }

    #[test]
    fn names_and_addresses_count_up_past_what_exists() {
        let unit = Unit {
            name: "web".into(),
            app: "web".into(),
            depends_on: Vec::new(),
            members: vec![member("web-1", "https://10.0.0.11:9443")],
            lb: None,
        };
        let taken = BTreeSet::from(["web-2".to_owned(), "template".to_owned()]);
        assert_eq!(new_names(&unit, &taken, 2), ["web-3", "web-4"]);
        let (first, prefix) = parse_first_ip("10.0.0.254/24").unwrap();
        assert_eq!(prefix, 24);
        assert_eq!(nth_address(first, 3).unwrap().to_string(), "10.0.1.1");
        assert!(parse_first_ip("10.0.0.1").unwrap_err().contains("prefix"));
        assert!(
            parse_first_ip("10.0.0.1/33")
                .unwrap_err()
                .contains("prefix length")
        );
    }
}
