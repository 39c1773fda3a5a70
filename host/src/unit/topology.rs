//! Where each unit's VMs run, from the hypervisor's inventory: the map
//! (application ↔ VM ↔ physical host and cluster) and what a host's failure
//! would cost each unit. Pure functions over a [`Survey`], so the answers
//! are unit-tested without a hypervisor.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::survey::{MemberReport, Survey};

/// What the failure of one physical host would cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// The host that would fail.
    pub host: String,
    /// Every unit, with what it would lose.
    pub units: Vec<UnitImpact>,
}

/// What one unit would lose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitImpact {
    /// The unit.
    pub unit: String,
    /// Its members.
    pub members: usize,
    /// The members on the failed host.
    pub lost: Vec<String>,
    /// Members left: `members - lost`.
    pub left: usize,
    /// Members the inventory does not place on any host: whether they
    /// would be lost is unknown.
    pub unplaced: Vec<String>,
}

/// `medic unit impact`'s exit codes: a maintenance script evacuating a
/// host acts on them, so an unknown placement never reads as safe.
pub mod exit {
    /// No unit loses a member.
    pub const NONE: u8 = 0;
    /// Some unit loses capacity (or a placement is unknown).
    pub const SOME: u8 = 1;
    /// Some unit would lose every member.
    pub const ALL: u8 = 2;
}

impl Impact {
    /// The exit code for this impact (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        let whole = self
            .units
            .iter()
            .any(|unit| unit.members > 0 && unit.left == 0);
        let some = self
            .units
            .iter()
            .any(|unit| !unit.lost.is_empty() || !unit.unplaced.is_empty());
        if whole {
            exit::ALL
        } else if some {
            exit::SOME
        } else {
            exit::NONE
        }
    }

    /// One line per unit, for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for unit in &self.units {
            let _ = write!(out, "{}: {} of {} left", unit.unit, unit.left, unit.members);
            if !unit.lost.is_empty() {
                let _ = write!(out, "; loses {}", unit.lost.join(", "));
            }
            if unit.left == 0 && unit.members > 0 {
                out.push_str(" (ALL MEMBERS)");
            }
            if !unit.unplaced.is_empty() {
                let _ = write!(out, "; host unknown for {}", unit.unplaced.join(", "));
            }
            out.push('\n');
        }
        out
    }
}

/// Why an impact cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum ImpactError {
    /// The host is not one the inventory knows (a typo must never read as
    /// "no unit is affected").
    #[error("no host `{host}` in the hypervisor's inventory; known hosts: {}", known.join(", "))]
    UnknownHost {
        /// The host asked about.
        host: String,
        /// The hosts the inventory has.
        known: Vec<String>,
    },
}

/// What the failure of `host` would cost each unit of `survey`.
pub fn impact(survey: &Survey, host: &str) -> Result<Impact, ImpactError> {
    if !survey.hosts.iter().any(|known| known == host) {
        return Err(ImpactError::UnknownHost {
            host: host.to_owned(),
            known: survey.hosts.clone(),
        });
    }
    let mut units: BTreeMap<&str, UnitImpact> = BTreeMap::new();
    for member in &survey.members {
        let unit = units
            .entry(member.unit.as_str())
            .or_insert_with(|| UnitImpact {
                unit: member.unit.clone(),
                members: 0,
                lost: Vec::new(),
                left: 0,
                unplaced: Vec::new(),
            });
        unit.members += 1;
        match member.host.as_deref() {
            Some(on) if on == host => unit.lost.push(member.vm.clone()),
            Some(_) => unit.left += 1,
            None => {
                unit.left += 1;
                unit.unplaced.push(member.vm.clone());
            }
        }
    }
    // Units in the order the file lists them.
    let units = survey
        .unit_names
        .iter()
        .filter_map(|name| units.remove(name.as_str()))
        .collect();
    Ok(Impact {
        host: host.to_owned(),
        units,
    })
}

/// The map: physical hosts (with their cluster), the unit members on each,
/// and the members the inventory does not place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Map<'a> {
    /// Each host with the members on it, by host name.
    pub hosts: Vec<HostNode<'a>>,
    /// Members on no known host.
    pub unplaced: Vec<&'a MemberReport>,
}

/// One physical host on the map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostNode<'a> {
    /// The host's name.
    pub name: String,
    /// Its cluster, if it is in one.
    pub cluster: Option<String>,
    /// The unit members on it.
    pub members: Vec<&'a MemberReport>,
}

/// The map of `survey`.
pub fn map(survey: &Survey) -> Map<'_> {
    let mut hosts: BTreeMap<&str, HostNode<'_>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for member in &survey.members {
        match member.host.as_deref() {
            Some(host) => hosts
                .entry(host)
                .or_insert_with(|| HostNode {
                    name: host.to_owned(),
                    cluster: member.cluster.clone(),
                    members: Vec::new(),
                })
                .members
                .push(member),
            None => unplaced.push(member),
        }
    }
    Map {
        hosts: hosts.into_values().collect(),
        unplaced,
    }
}

impl Map<'_> {
    /// The map for people: each host, then its members with their app's
    /// state; members on no known host last.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut group = |title: String, members: &[&MemberReport]| {
            let _ = writeln!(out, "{title}");
            for member in members {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<12} {:<10} {}",
                    member.vm,
                    member.unit,
                    member.power_text(),
                    member.state_text()
                );
            }
        };
        for host in &self.hosts {
            let title = match &host.cluster {
                Some(cluster) => format!("{} (cluster {cluster})", host.name),
                None => host.name.clone(),
            };
            group(title, &host.members);
        }
        if !self.unplaced.is_empty() {
            group("(host unknown)".to_owned(), &self.unplaced);
        }
        out
    }

    /// The map as Graphviz DOT: a box per physical host (grouped by
    /// cluster), a node per VM, an edge from each unit to its VMs.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph medic_units {\n  rankdir=LR;\n  node [shape=box];\n");
        for (index, host) in self.hosts.iter().enumerate() {
            let label = match &host.cluster {
                Some(cluster) => format!("{} ({cluster})", host.name),
                None => host.name.clone(),
            };
            let _ = writeln!(
                out,
                "  subgraph cluster_{index} {{\n    label={};",
                quoted(&label)
            );
            for member in &host.members {
                vm_node(&mut out, member);
            }
            out.push_str("  }\n");
        }
        for member in &self.unplaced {
            vm_node(&mut out, member);
        }
        let mut units: Vec<&str> = self
            .hosts
            .iter()
            .flat_map(|host| host.members.iter())
            .chain(self.unplaced.iter())
            .map(|member| member.unit.as_str())
            .collect();
        units.sort_unstable();
        units.dedup();
        for unit in units {
            let _ = writeln!(
                out,
                "  {} [shape=ellipse, label={}];",
                quoted(&format!("unit:{unit}")),
                quoted(unit)
            );
        }
        for member in self
            .hosts
            .iter()
            .flat_map(|host| host.members.iter())
            .chain(self.unplaced.iter())
        {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quoted(&format!("unit:{}", member.unit)),
                quoted(&format!("vm:{}", member.vm))
            );
        }
        out.push_str("}\n");
        out
    }
}

fn vm_node(out: &mut String, member: &MemberReport) {
    let _ = writeln!(
        out,
        "    {} [label={}];",
        quoted(&format!("vm:{}", member.vm)),
        quoted(&format!("{}\n{}", member.vm, member.state_text()))
    );
}

/// A DOT string literal.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::survey::AgentView;

    fn member(unit: &str, vm: &str, host: Option<&str>) -> MemberReport {
        MemberReport {
            unit: unit.to_owned(),
            app: unit.to_owned(),
            vm: vm.to_owned(),
            agent_url: format!("https://{vm}:9443"),
            host: host.map(str::to_owned),
            cluster: host.map(|_| "C0".to_owned()),
            power: Some(crate::hypervisor::PowerState::On),
            agent: AgentView::Unreachable {
                error: "not asked".to_owned(),
            },
        }
    }

    fn survey(members: Vec<MemberReport>) -> Survey {
        let mut unit_names: Vec<String> = members.iter().map(|m| m.unit.clone()).collect();
        unit_names.dedup();
        let mut hosts: Vec<String> = members.iter().filter_map(|m| m.host.clone()).collect();
        hosts.push("idle".to_owned());
        hosts.sort_unstable();
        hosts.dedup();
        Survey {
            taken_at: std::time::SystemTime::now(),
            unit_names,
            members,
            hosts,
            inventory_error: None,
        }
    }

    #[test]
    fn a_host_failure_costs_each_unit_its_members_there() {
        let survey = survey(vec![
            member("web", "web-1", Some("h1")),
            member("web", "web-2", Some("h2")),
            member("db", "db-1", Some("h1")),
            member("cache", "cache-1", Some("h2")),
        ]);
        let impact = impact(&survey, "h1").unwrap();
        let web = &impact.units[0];
        assert_eq!(
            (web.lost.as_slice(), web.left, web.members),
            (&["web-1".to_owned()][..], 1, 2)
        );
        assert_eq!(impact.units[1].left, 0, "db loses its only member");
        assert!(impact.units[2].lost.is_empty());
        assert_eq!(impact.exit_code(), exit::ALL);
        assert!(
            impact
                .text()
                .contains("db: 0 of 1 left; loses db-1 (ALL MEMBERS)"),
            "{}",
            impact.text()
        );

        let only_web = survey_of_web_only();
        assert_eq!(impact_code(&only_web, "h2"), exit::SOME);
        assert_eq!(impact_code(&only_web, "h3"), exit::SOME);
        assert_eq!(
            impact_code(&only_web, "idle"),
            exit::NONE,
            "a host with no member"
        );
    }

    fn survey_of_web_only() -> Survey {
        survey(vec![
            member("web", "web-1", Some("h1")),
            member("web", "web-2", Some("h2")),
            member("other", "x-1", Some("h3")),
            member("other", "x-2", Some("h1")),
        ])
    }

    fn impact_code(survey: &Survey, host: &str) -> u8 {
        impact(survey, host).unwrap().exit_code()
    }

    #[test]
    fn an_unknown_host_or_placement_never_reads_as_safe() {
        let survey = survey(vec![
            member("web", "web-1", Some("h1")),
            member("web", "web-2", None),
        ]);
        let error = impact(&survey, "h9").unwrap_err().to_string();
        assert!(
            error.contains("no host `h9`") && error.contains("known hosts: h1, idle"),
            "{error}"
        );
        let impact = impact(&survey, "h1").unwrap();
        assert_eq!(impact.units[0].unplaced, ["web-2"]);
        assert_eq!(impact.exit_code(), exit::SOME);
    }

    #[test]
    fn the_map_groups_members_by_host_and_draws_as_dot() {
        let survey = survey(vec![
            member("web", "web-1", Some("h1")),
            member("web", "web\"2", Some("h2")),
            member("db", "db-1", None),
        ]);
        let map = map(&survey);
        assert_eq!(map.hosts.len(), 2);
        assert_eq!(map.unplaced.len(), 1);
        let text = map.text();
        assert!(text.starts_with("h1 (cluster C0)\n  web-1"), "{text}");
        assert!(text.contains("(host unknown)\n  db-1"), "{text}");
        let dot = map.dot();
        assert!(dot.starts_with("digraph medic_units {"), "{dot}");
        assert!(dot.contains("\"unit:web\" -> \"vm:web\\\"2\";"), "{dot}");
        assert!(dot.contains("label=\"h1 (C0)\""), "{dot}");
    }
}
