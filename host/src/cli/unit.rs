//! `medic unit`: the controller's verbs over `units.toml`. Exit codes are
//! a public contract (maintenance scripts act on them); each verb's are in
//! its help.

use std::process::ExitCode;
use std::time::Duration;

use crate::unit::ops::{MemberOutcome, Operation, Plan};
use crate::unit::survey::{Health, Survey};
use crate::unit::topology;
use crate::unit::{Controller, Unit};

/// A config error, an unknown unit or host, a verb that needs what is not
/// configured: nothing was asked of any agent.
const BAD_INPUT: u8 = 3;

/// The verbs.
#[derive(Debug, clap::Subcommand)]
pub(super) enum UnitCommand {
    /// Every unit with its members' count and health. Exit 0, 3 on a
    /// config error.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Per member: VM, physical host, power state, agent, the app's state
    /// and last check. Exit 0 every member healthy, 1 some, 2 none, 3 an
    /// unknown unit or a config error.
    Status {
        /// The unit.
        unit: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Power on VMs that are off, wait for their agents, `start` the app
    /// and wait until its checks pass; units in `depends_on` order. Exit 0
    /// when every member started, 1 when some failed, 3 on bad input.
    Start {
        #[command(flatten)]
        bulk: Bulk,
        /// How long a powered-on VM's agent may take to answer.
        #[arg(long, default_value = "5m", value_parser = duration)]
        boot_timeout: Duration,
        /// How long the app may take to pass its check after `start`.
        #[arg(long, default_value = "2m", value_parser = duration)]
        health_timeout: Duration,
        /// One JSON object per member instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// `stop` the app (held stopped), then with --power-off a guest
    /// shutdown, powering off after --shutdown-timeout; units in reverse
    /// `depends_on` order. Exit 0 when every member stopped, 1 when some
    /// failed, 3 on bad input.
    Stop {
        #[command(flatten)]
        bulk: Bulk,
        /// Also shut the VMs down.
        #[arg(long)]
        power_off: bool,
        /// How long a guest shutdown may take before the VM is powered off.
        #[arg(long, default_value = "2m", value_parser = duration)]
        shutdown_timeout: Duration,
        /// One JSON object per member instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// N new members cloned from TEMPLATE (vSphere: a clone with a guest
    /// customization; libvirt: a qcow2 overlay and a cloud-init seed),
    /// named UNIT-K, and added to the unit in the units file. Exit 0 when
    /// every member was built, 1 when some failed (and were removed), 3 on
    /// bad input or without a [hypervisor].
    Build {
        /// The unit.
        unit: String,
        /// The template VM (the master image).
        #[arg(long)]
        from: String,
        /// How many new members.
        #[arg(long)]
        count: u32,
        /// The first new member's address and prefix (10.0.0.21/24); the
        /// next count up. Without it: DHCP, agents reached by host name.
        #[arg(long, value_parser = crate::unit::build::parse_first_ip)]
        ip: Option<(std::net::IpAddr, u8)>,
        /// The default gateway with --ip.
        #[arg(long, requires = "ip")]
        gateway: Option<std::net::IpAddr>,
        /// The new agents' port (default: the unit's first member's).
        #[arg(long)]
        agent_port: Option<u16>,
        /// One JSON object per member instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// A rolling update behind the unit's HAProxy ([unit.lb]): each member
    /// in turn drained, updated (`medic update` on its agent, proved by
    /// the app's check), put back ready and UP. Stops at the first failure
    /// with that member out of service. Exit 0 rolled out, 1 stopped at a
    /// member (named), 3 bad input or refused before it started.
    Roll {
        /// The unit.
        unit: String,
        /// The version to roll out.
        #[arg(long)]
        version: String,
        /// Members out of service at once.
        #[arg(long, default_value_t = 1)]
        max_unavailable: usize,
        /// How long a member's sessions may take to end.
        #[arg(long, default_value = "30s", value_parser = duration)]
        drain_timeout: Duration,
        /// How long a member may take to be healthy, and then UP.
        #[arg(long, default_value = "2m", value_parser = duration)]
        health_timeout: Duration,
        /// Continue the unit's interrupted roll to VERSION.
        #[arg(long)]
        resume: bool,
        /// One JSON object per step instead of progress lines.
        #[arg(long)]
        json: bool,
    },
    /// A read-only web page of the units (members, health, the map,
    /// recent operations) that refreshes itself, until stopped.
    Serve {
        /// Where to listen, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Application ↔ VM ↔ physical host (and cluster). Exit 0, 3 without
    /// a [hypervisor] or on a config error.
    Map {
        /// JSON instead of text.
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Graphviz DOT instead of text.
        #[arg(long)]
        dot: bool,
    },
    /// What each unit loses if HOST fails. Exit 0 no unit loses a member,
    /// 1 some lose capacity (or a member's host is unknown), 2 a unit
    /// loses every member, 3 an unknown host, no [hypervisor] or a config
    /// error.
    Impact {
        /// The physical host, as the inventory names it.
        host: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which units a bulk verb works on, and how many members at once.
#[derive(Debug, clap::Args)]
pub(super) struct Bulk {
    /// The units (with --all: every unit).
    #[arg(value_name = "UNIT")]
    names: Vec<String>,
    /// Every unit in the file.
    #[arg(long)]
    all: bool,
    /// Members worked on at once (default: [controller] parallel).
    #[arg(long)]
    parallel: Option<usize>,
}

fn duration(text: &str) -> Result<Duration, String> {
    crate::config::parse_duration(text, Duration::from_secs(1))
}

/// Runs `command` with the units in `units_file`.
pub(super) fn run(units_file: &std::path::Path, command: UnitCommand) -> ExitCode {
    let controller = match Controller::open(units_file) {
        Ok(controller) => controller,
        Err(e) => {
            eprintln!("medic: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let controller = std::sync::Arc::new(controller);
    let code = super::runtime().map(|rt| rt.block_on(verb(&controller, command)));
    match code {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(message)) => {
            eprintln!("medic: {message}");
            ExitCode::from(BAD_INPUT)
        }
        Err(e) => {
            eprintln!("medic: {e:#}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// The verb; `Err` is bad input (exit 3) with its message.
async fn verb(controller: &std::sync::Arc<Controller>, command: UnitCommand) -> Result<u8, String> {
    match command {
        UnitCommand::List { json } => list(controller, json).await,
        UnitCommand::Status { unit, json } => status(controller, &unit, json).await,
        UnitCommand::Start {
            bulk,
            boot_timeout,
            health_timeout,
            json,
        } => {
            let plan = Plan::start(boot_timeout, health_timeout);
            operate(controller, &plan, &bulk, json).await
        }
        UnitCommand::Stop {
            bulk,
            power_off,
            shutdown_timeout,
            json,
        } => {
            if power_off {
                controller.require_inventory("stop --power-off")?;
            }
            let plan = Plan::stop(power_off, shutdown_timeout);
            operate(controller, &plan, &bulk, json).await
        }
        UnitCommand::Build {
            unit: name,
            from,
            count,
            ip,
            gateway,
            agent_port,
            json,
        } => {
            let inventory = controller.require_inventory("build")?;
            let plan = crate::unit::build::BuildPlan {
                template: from,
                count,
                first_ip: ip,
                gateway,
                agent_port,
            };
            let unit = unit(controller, &name)?;
            let _lock = controller.lock_units([unit.name.as_str()])?;
            let outcomes =
                crate::unit::build::build(controller, inventory, unit, &plan, &printer(json))
                    .await?;
            Ok(u8::from(outcomes.iter().any(|outcome| !outcome.ok)))
        }
        UnitCommand::Roll {
            unit: name,
            version,
            max_unavailable,
            drain_timeout,
            health_timeout,
            resume,
            json,
        } => {
            let unit = unit(controller, &name)?;
            let _lock = controller.lock_units([unit.name.as_str()])?;
            let plan = crate::unit::roll::RollPlan {
                version,
                max_unavailable: max_unavailable.max(1),
                drain_timeout,
                health_timeout,
                resume,
            };
            let progress = |step: &crate::unit::roll::Step| {
                if json {
                    println!("{}", to_json(step));
                } else {
                    println!("{}/{}: {} {}", name, step.vm, step.step, step.detail);
                }
            };
            match crate::unit::roll::roll(controller, unit, &plan, &progress).await {
                Ok(()) => {
                    if !json {
                        println!("{name}: rolled out {}", plan.version);
                    }
                    Ok(0)
                }
                Err(crate::unit::roll::RollError::Stopped(error)) => {
                    eprintln!("medic: roll of {name} stopped at {error}");
                    Ok(1)
                }
                Err(crate::unit::roll::RollError::Refused(error)) => Err(error),
            }
        }
        UnitCommand::Serve { listen } => serve(controller.clone(), listen).await,
        UnitCommand::Map { json, dot } => {
            controller.require_inventory("map")?;
            let survey = survey(controller, &all_units(controller)).await?;
            let map = topology::map(&survey);
            if json {
                println!("{}", to_json(&map));
            } else if dot {
                print!("{}", map.dot());
            } else {
                print!("{}", map.text());
            }
            Ok(0)
        }
        UnitCommand::Impact { host, json } => {
            controller.require_inventory("impact")?;
            let survey = survey(controller, &all_units(controller)).await?;
            let impact = topology::impact(&survey, &host).map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&impact));
            } else {
                print!("{}", impact.text());
            }
            Ok(impact.exit_code())
        }
    }
}

/// `unit list`.
async fn list(controller: &Controller, json: bool) -> Result<u8, String> {
    let units = all_units(controller);
    let survey = Survey::take(&units, &controller.agents, controller.inventory.as_deref()).await;
    let rows: Vec<(&Unit, Health)> = units
        .iter()
        .map(|unit| (*unit, Health::of(&survey, &unit.name)))
        .collect();
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(unit, health)| {
                serde_json::json!({
                    "unit": unit.name, "app": unit.app, "depends_on": unit.depends_on,
                    "members": health.members, "healthy": health.healthy,
                })
            })
            .collect();
        println!("{}", to_json(&rows));
    } else {
        println!("{:<16} {:<16} {:>8}  HEALTH", "UNIT", "APP", "MEMBERS");
        for (unit, health) in rows {
            println!(
                "{:<16} {:<16} {:>8}  {}",
                unit.name,
                unit.app,
                health.members,
                health.text()
            );
        }
    }
    Ok(0)
}

/// `unit status UNIT`.
async fn status(controller: &Controller, name: &str, json: bool) -> Result<u8, String> {
    let unit = unit(controller, name)?;
    let survey = Survey::take(&[unit], &controller.agents, controller.inventory.as_deref()).await;
    let health = Health::of(&survey, name);
    let roll = crate::unit::roll::in_progress(controller, name);
    if json {
        /// The survey with the roll in progress.
        #[derive(serde::Serialize)]
        struct StatusView<'a> {
            #[serde(flatten)]
            survey: &'a Survey,
            roll: Option<crate::unit::roll::InProgress>,
        }
        println!(
            "{}",
            to_json(&StatusView {
                survey: &survey,
                roll
            })
        );
    } else {
        println!(
            "{:<16} {:<20} {:<10} {:<12} {:<10} {:<26} DETAIL",
            "VM", "HOST", "POWER", "STATE", "VERSION", "LAST CHECK"
        );
        for member in &survey.members {
            let (version, last, detail) = match &member.agent {
                crate::unit::survey::AgentView::Reachable { app_status } => (
                    app_status.version.clone().unwrap_or_else(|| "-".to_owned()),
                    app_status.last_check.as_ref().map_or_else(
                        || "-".to_owned(),
                        |last| {
                            format!(
                                "{} {}",
                                last.result,
                                humantime::format_rfc3339_seconds(last.at)
                            )
                        },
                    ),
                    app_status.detail().unwrap_or_default().to_owned(),
                ),
                crate::unit::survey::AgentView::NoSuchApp { error }
                | crate::unit::survey::AgentView::Unreachable { error } => {
                    ("-".to_owned(), "-".to_owned(), error.clone())
                }
            };
            println!(
                "{:<16} {:<20} {:<10} {:<12} {:<10} {:<26} {detail}",
                member.vm,
                member.host.as_deref().unwrap_or("-"),
                member.power_text(),
                member.state_text(),
                version,
                last,
            );
        }
        if let Some(error) = &survey.inventory_error {
            println!("inventory: {error}");
        }
        if let Some(roll) = &roll {
            println!("{}", roll.text());
        }
        println!("{name}: {}", health.text());
    }
    Ok(health.exit_code())
}

/// `unit start` and `unit stop`.
async fn operate(
    controller: &Controller,
    plan: &Plan,
    bulk: &Bulk,
    json: bool,
) -> Result<u8, String> {
    let units = &selected(controller, &bulk.names, bulk.all)?;
    let _locks = controller.lock_units(units.iter().map(|unit| unit.name.as_str()))?;
    let agents = match bulk.parallel {
        Some(parallel) => controller.agents.clone().with_parallel(parallel),
        None => controller.agents.clone(),
    };
    let operation = Operation {
        agents: &agents,
        inventory: controller.inventory.as_deref(),
        journal: &controller.journal,
        by: Controller::by(),
    };
    let outcomes = operation.run(plan, units, &printer(json)).await;
    let failed = outcomes.iter().filter(|outcome| !outcome.ok).count();
    if !json {
        println!(
            "{} {}: {} of {} members ok",
            plan.verb,
            units
                .iter()
                .map(|unit| unit.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            outcomes.len() - failed,
            outcomes.len()
        );
    }
    Ok(u8::from(failed > 0))
}

/// Prints each member's outcome as it comes: a progress line, or JSON.
fn printer(json: bool) -> impl Fn(&MemberOutcome) + Sync {
    move |outcome| {
        if json {
            println!("{}", to_json(outcome));
        } else {
            println!("{}", outcome.line());
        }
    }
}

/// `unit serve`: the page until Ctrl-C or SIGTERM.
async fn serve(
    controller: std::sync::Arc<Controller>,
    listen: std::net::SocketAddr,
) -> Result<u8, String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("medic unit serve: http://{listen}/");
    let page = std::sync::Arc::new(crate::unit::page::UnitsPage::new(controller));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        served = crate::unit::page::serve(listener, page) => {
            served.map_err(|e| format!("serving on {listen}: {e}"))?;
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(0)
}

/// Takes a survey for a verb that needs the inventory to have answered.
async fn survey(controller: &Controller, units: &[&Unit]) -> Result<Survey, String> {
    let survey = Survey::take(units, &controller.agents, controller.inventory.as_deref()).await;
    match &survey.inventory_error {
        Some(error) => Err(format!("the hypervisor's inventory: {error}")),
        None => Ok(survey),
    }
}

fn all_units(controller: &Controller) -> Vec<&Unit> {
    controller.file.units.iter().collect()
}

fn unit<'a>(controller: &'a Controller, name: &str) -> Result<&'a Unit, String> {
    controller.file.unit(name).ok_or_else(|| {
        let known: Vec<&str> = controller
            .file
            .units
            .iter()
            .map(|unit| unit.name.as_str())
            .collect();
        format!(
            "no unit `{name}` in {} (units: {})",
            controller.file.path.display(),
            known.join(", ")
        )
    })
}

/// The units a bulk verb works on: those named (each must exist), or all.
fn selected(controller: &Controller, names: &[String], all: bool) -> Result<Vec<Unit>, String> {
    match (names.is_empty(), all) {
        (true, true) => Ok(controller.file.units.clone()),
        (false, false) => names
            .iter()
            .map(|name| unit(controller, name).cloned())
            .collect(),
        (true, false) => Err("name the units, or give --all".to_owned()),
        (false, true) => Err("give either unit names or --all, not both".to_owned()),
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
