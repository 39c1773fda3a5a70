//! One look at the units: every member's agent asked for its app's status
//! and the hypervisor's inventory read once, joined per member. `status`,
//! `list`, `map`, `impact` and the web page are all views of a survey.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::agents::Agents;
use super::config::{Member, Unit};
use crate::hypervisor::{Inventory, PowerState, VmInfo};
use crate::status::State;
use crate::supervisor::AppStatus;

/// Every member of the surveyed units, as seen at `taken_at`.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    /// When the survey was taken.
    #[serde(serialize_with = "crate::journal::rfc3339")]
    pub taken_at: SystemTime,
    /// The units surveyed, in the order the file lists them.
    pub unit_names: Vec<String>,
    /// Every member of those units.
    pub members: Vec<MemberReport>,
    /// Every physical host the inventory has a VM on, whether or not a
    /// unit's member runs there, sorted.
    pub hosts: Vec<String>,
    /// Why the inventory could not be read, when a hypervisor is
    /// configured and did not answer.
    pub inventory_error: Option<String>,
}

/// One member as the survey found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberReport {
    /// The member's unit.
    pub unit: String,
    /// The app the unit runs.
    pub app: String,
    /// The VM.
    pub vm: String,
    /// The agent's address.
    pub agent_url: String,
    /// The physical host the VM runs on, if the inventory says.
    pub host: Option<String>,
    /// The host's cluster, if it is in one.
    pub cluster: Option<String>,
    /// The VM's power state, if a hypervisor is configured and knows it.
    pub power: Option<PowerState>,
    /// What the agent said.
    #[serde(flatten)]
    pub agent: AgentView,
}

/// What a member's agent said about the unit's app.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "agent", rename_all = "snake_case")]
pub enum AgentView {
    /// The agent answered with the app's status.
    Reachable {
        /// The app's status.
        app_status: AppStatus,
    },
    /// The agent answered, but does not watch the unit's app.
    NoSuchApp {
        /// What to fix.
        error: String,
    },
    /// The agent could not be asked (down, refused, TLS...).
    Unreachable {
        /// Why.
        error: String,
    },
}

impl MemberReport {
    /// Whether the member serves: its agent answers and the app is healthy
    /// or degraded (working, if not well).
    pub fn is_healthy(&self) -> bool {
        matches!(
            &self.agent,
            AgentView::Reachable { app_status } if matches!(app_status.state, State::Healthy | State::Degraded)
        )
    }

    /// The app's state, or why it is not known.
    pub fn state_text(&self) -> String {
        match &self.agent {
            AgentView::Reachable { app_status } => app_status.state.to_string(),
            AgentView::NoSuchApp { .. } => "no such app".to_owned(),
            AgentView::Unreachable { .. } => "agent unreachable".to_owned(),
        }
    }

    /// The power state, or `-` without a hypervisor.
    pub fn power_text(&self) -> String {
        self.power
            .map_or_else(|| "-".to_owned(), |power| power.to_string())
    }
}

impl Survey {
    /// Surveys `units`: every agent asked at once (at most `parallel`
    /// in flight, each bounded in time), the inventory read once.
    pub async fn take(units: &[&Unit], agents: &Agents, inventory: Option<&dyn Inventory>) -> Self {
        let (vms, inventory_error) = match inventory {
            Some(inventory) => match inventory.list().await {
                Ok(vms) => (vms, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            },
            None => (Vec::new(), None),
        };
        let by_name: BTreeMap<&str, &VmInfo> =
            vms.iter().map(|vm| (vm.name.as_str(), vm)).collect();
        let mut hosts: Vec<String> = vms.iter().filter_map(|vm| vm.host.clone()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let pairs: Vec<(&Unit, &Member)> = units
            .iter()
            .flat_map(|unit| unit.members.iter().map(move |member| (*unit, member)))
            .collect();
        let views = agents
            .each(&pairs, |unit, member| async move {
                view(&unit.app, agents.status(member).await)
            })
            .await;
        let members = pairs
            .iter()
            .zip(views)
            .map(|((unit, member), agent)| {
                let vm = by_name.get(member.vm.as_str());
                MemberReport {
                    unit: unit.name.clone(),
                    app: unit.app.clone(),
                    vm: member.vm.clone(),
                    agent_url: member.agent.to_string(),
                    host: vm.and_then(|vm| vm.host.clone()),
                    cluster: vm.and_then(|vm| vm.cluster.clone()),
                    power: vm.map(|vm| vm.power),
                    agent,
                }
            })
            .collect();
        Self {
            taken_at: SystemTime::now(),
            unit_names: units.iter().map(|unit| unit.name.clone()).collect(),
            members,
            hosts,
            inventory_error,
        }
    }

    /// The members of `unit`.
    pub fn members_of<'a>(&'a self, unit: &'a str) -> impl Iterator<Item = &'a MemberReport> {
        self.members
            .iter()
            .filter(move |member| member.unit == unit)
    }
}

/// The agent's answer about `app`.
fn view(app: &str, answer: Result<crate::api::messages::StatusReport, String>) -> AgentView {
    match answer {
        Ok(report) => match report.app(app) {
            Some(status) => AgentView::Reachable {
                app_status: status.clone(),
            },
            None => AgentView::NoSuchApp {
                error: format!("the agent does not watch an app `{app}`"),
            },
        },
        Err(error) => AgentView::Unreachable { error },
    }
}

/// How many members of a unit serve, for `unit list` and `unit status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Members healthy (or degraded).
    pub healthy: usize,
    /// Members in all.
    pub members: usize,
}

impl Health {
    /// The health of `unit` in `survey`.
    pub fn of(survey: &Survey, unit: &str) -> Self {
        let (healthy, members) = survey
            .members_of(unit)
            .fold((0, 0), |(healthy, all), member| {
                (healthy + usize::from(member.is_healthy()), all + 1)
            });
        Self { healthy, members }
    }

    /// `unit status`'s exit code: 0 every member healthy, 1 some, 2 none
    /// (a unit without members is not healthy: it serves nothing).
    pub fn exit_code(self) -> u8 {
        match (self.healthy, self.members) {
            (h, m) if m > 0 && h == m => 0,
            (0, _) => 2,
            _ => 1,
        }
    }

    /// `2/3 healthy`.
    pub fn text(self) -> String {
        format!("{}/{} healthy", self.healthy, self.members)
    }
}
