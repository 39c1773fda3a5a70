//! `medic unit serve`: the controller's read-only status page — units,
//! members, health, the map drawn as a picture and recent unit operations.
//! It reloads itself; the survey behind it is taken at most once per
//! [`SURVEY_EVERY`], however many browsers look, so hundreds of agents are
//! not asked once per page view.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;

use super::Controller;
use super::survey::{AgentView, Health, MemberReport, Survey};
use super::topology::{self, Map};
use crate::journal::Event;
use crate::web::{self, Document, Markup, Table, Tone, badge, escape, state_badge, time_ago};

/// The longest a page's figures may be old.
pub const SURVEY_EVERY: Duration = Duration::from_secs(10);

/// Recent unit operations shown.
const RECENT_OPERATIONS: u64 = 30;

/// How long the page waits for the controller's journal.
const JOURNAL_WAIT: Duration = Duration::from_secs(2);

/// The page, with the last survey kept for [`SURVEY_EVERY`].
pub struct UnitsPage {
    controller: Arc<Controller>,
    last: Mutex<Option<(Instant, Arc<Survey>)>>,
}

impl UnitsPage {
    /// The page of `controller`'s units.
    pub fn new(controller: Arc<Controller>) -> Self {
        Self {
            controller,
            last: Mutex::new(None),
        }
    }

    /// The survey, taken anew when the last one is older than
    /// [`SURVEY_EVERY`]; concurrent views wait for one survey.
    async fn survey(&self) -> Arc<Survey> {
        let mut last = self.last.lock().await;
        if let Some((at, survey)) = last.as_ref()
            && at.elapsed() < SURVEY_EVERY
        {
            return survey.clone();
        }
        let units: Vec<_> = self.controller.file.units.iter().collect();
        let survey = Arc::new(
            Survey::take(
                &units,
                &self.controller.agents,
                self.controller.inventory.as_deref(),
            )
            .await,
        );
        *last = Some((Instant::now(), survey.clone()));
        survey
    }
}

#[async_trait::async_trait]
impl web::StatusPage for UnitsPage {
    async fn render(&self) -> String {
        let survey = self.survey().await;
        let operations = web::recent_events(
            self.controller.file.controller.state_dir.clone(),
            RECENT_OPERATIONS,
            JOURNAL_WAIT,
        )
        .await;
        render(&self.controller, &survey, &operations)
    }
}

/// The page for one survey and the recent operations.
pub fn render(
    controller: &Controller,
    survey: &Survey,
    operations: &Result<Vec<Event>, String>,
) -> String {
    let now = SystemTime::now();
    let mut page = Document::new("medic units").refresh_every(SURVEY_EVERY);
    page.paragraph(time_ago(survey.taken_at, now));
    if let Some(error) = &survey.inventory_error {
        page.paragraph(format!(
            "The hypervisor's inventory did not answer: {error}"
        ));
    }

    page.heading("Units");
    let mut units = Table::new(&["Unit", "App", "Depends on", "Health"]);
    for unit in &controller.file.units {
        let health = Health::of(survey, &unit.name);
        let tone = match health.exit_code() {
            0 => Tone::Good,
            1 => Tone::Warn,
            _ => Tone::Bad,
        };
        units.row([
            Markup::text(&unit.name),
            Markup::text(&unit.app),
            Markup::text(&unit.depends_on.join(", ")),
            badge(&health.text(), tone),
        ]);
    }
    page.table(&units);

    rolls_in_progress(&mut page, controller);

    page.heading("Members");
    let mut members = Table::new(&[
        "Unit",
        "VM",
        "Host",
        "Power",
        "State",
        "Version",
        "Last check",
        "Detail",
    ]);
    for member in &survey.members {
        members.row(member_row(member, now));
    }
    page.table(&members);

    if controller.inventory.is_some() {
        page.heading("Map");
        let map = topology::map(survey);
        page.image(
            "units by physical host",
            "image/svg+xml",
            map_picture(&map).as_bytes(),
        );
    }

    page.heading("Recent unit operations");
    match operations {
        Ok(events) if events.is_empty() => page.paragraph(Markup::muted("none yet")),
        Ok(events) => {
            let mut table = Table::new(&["Time", "Unit", "What"]);
            for event in events {
                table.row([
                    time_ago(event.ts, now),
                    Markup::text(event.app.as_deref().unwrap_or("-")),
                    Markup::text(&web::shorten(&operation_text(event), 300)),
                ]);
            }
            page.table(&table);
        }
        Err(note) => page.paragraph(note.as_str()),
    }
    page.finish()
}

fn member_row(member: &MemberReport, now: SystemTime) -> Vec<Markup> {
    let (state, version, last, detail) = match &member.agent {
        AgentView::Reachable { app_status } => (
            state_badge(app_status.state),
            Markup::text(app_status.version.as_deref().unwrap_or("-")),
            app_status
                .last_check
                .as_ref()
                .map_or_else(|| Markup::muted("never"), |last| time_ago(last.at, now)),
            app_status.detail().unwrap_or_default().to_owned(),
        ),
        AgentView::NoSuchApp { error } => (
            badge("no such app", Tone::Bad),
            Markup::muted("-"),
            Markup::muted("-"),
            error.clone(),
        ),
        AgentView::Unreachable { error } => (
            badge("unreachable", Tone::Bad),
            Markup::muted("-"),
            Markup::muted("-"),
            error.clone(),
        ),
    };
    vec![
        Markup::text(&member.unit),
        Markup::text(&member.vm),
        Markup::text(member.host.as_deref().unwrap_or("-")),
        Markup::text(&member.power_text()),
        state,
        version,
        last,
        Markup::text(&web::shorten(&detail, 300)),
    ]
}

/// The rolls started and not ended, each member's last step.
fn rolls_in_progress(page: &mut Document, controller: &Controller) {
    let mut table = Table::new(&["Unit", "Version", "Members"]);
    for unit in &controller.file.units {
        let Some(roll) = super::roll::in_progress(controller, &unit.name) else {
            continue;
        };
        let steps: Vec<String> = roll
            .steps
            .iter()
            .map(|(vm, step)| format!("{vm}: {step}"))
            .collect();
        table.row([
            Markup::text(&unit.name),
            Markup::text(&roll.version),
            Markup::text(&steps.join(", ")),
        ]);
    }
    if !table.is_empty() {
        page.heading("Rolling updates in progress");
        page.table(&table);
    }
}

/// A journaled operation in a line.
fn operation_text(event: &Event) -> String {
    let detail = &event.detail;
    let field = |key: &str| detail[key].as_str().unwrap_or_default().to_owned();
    if event.kind == crate::journal::Kind::UnitRoll {
        return match detail["phase"].as_str() {
            Some("member") => format!(
                "roll to {}: {} {} {}",
                field("version"),
                field("vm"),
                field("step"),
                field("detail")
            ),
            Some("ended") if detail["ok"] == true => format!("roll to {} done", field("version")),
            Some("ended") => format!("roll to {} stopped: {}", field("version"), field("error")),
            _ => format!("roll to {} started by {}", field("version"), field("by")),
        };
    }
    match detail["phase"].as_str() {
        Some(phase) => format!(
            "{} {} {phase}{}",
            field("verb"),
            detail["units"]
                .as_array()
                .map(|units| {
                    units
                        .iter()
                        .filter_map(|u| u.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            match detail["ok"].as_bool() {
                Some(true) => ": all ok".to_owned(),
                Some(false) => format!(": failed {}", detail["failed"]),
                None => String::new(),
            }
        ),
        None => format!(
            "{} {}: {} {}",
            field("verb"),
            field("vm"),
            if detail["ok"] == true { "ok" } else { "FAILED" },
            field("detail")
        ),
    }
}

/// Box sizes of the map picture.
const COLUMN: usize = 230;
const ROW: usize = 46;

/// The map as an SVG picture: a column per physical host (named with its
/// cluster), a box per member coloured by its health. Every text is
/// escaped: VM and host names come from the inventory.
pub fn map_picture(map: &Map<'_>) -> String {
    let mut columns: Vec<(String, &[&MemberReport])> = map
        .hosts
        .iter()
        .map(|host| {
            let title = match &host.cluster {
                Some(cluster) => format!("{} ({cluster})", host.name),
                None => host.name.clone(),
            };
            (title, host.members.as_slice())
        })
        .collect();
    if !map.unplaced.is_empty() {
        columns.push(("host unknown".to_owned(), map.unplaced.as_slice()));
    }
    let rows = columns
        .iter()
        .map(|(_, members)| members.len())
        .max()
        .unwrap_or(0);
    let width = COLUMN * columns.len().max(1) + 10;
    let height = ROW * (rows + 1) + 20;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"13\">"
    );
    for (index, (title, members)) in columns.iter().enumerate() {
        let x = 10 + index * COLUMN;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"5\" width=\"{}\" height=\"{}\" rx=\"8\" fill=\"#eef1f5\" stroke=\"#8a94a6\"/>\
             <text x=\"{}\" y=\"28\" font-weight=\"bold\">{}</text>",
            COLUMN - 12,
            height - 10,
            x + 10,
            escape(title)
        );
        for (row, member) in members.iter().enumerate() {
            let y = 5 + ROW * (row + 1);
            let colour = if member.is_healthy() {
                "#2e7d32"
            } else if matches!(&member.agent, AgentView::Reachable { app_status } if app_status.state == crate::status::State::Stopped)
            {
                "#78808c"
            } else {
                "#c62828"
            };
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"{colour}\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"#fff\">{} · {}: {}</text>",
                x + 8,
                COLUMN - 28,
                ROW - 8,
                x + 16,
                y + 24,
                escape(&member.vm),
                escape(&member.unit),
                escape(&member.state_text())
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Serves the page at `/` on `listener` until the future is dropped: a
/// read-only page, so any GET of `/` (or `/index.html`) gets it and
/// everything else is a 404.
pub async fn serve(listener: tokio::net::TcpListener, page: Arc<UnitsPage>) -> std::io::Result<()> {
    use axum::response::IntoResponse as _;
    let show = move || {
        let page = page.clone();
        async move {
            let html = web::StatusPage::render(&*page).await;
            let headers = web::HEADERS.map(|(name, value)| (name, value));
            (headers, html).into_response()
        }
    };
    let router = axum::Router::new()
        .route("/", axum::routing::get(show.clone()))
        .route("/index.html", axum::routing::get(show));
    axum::serve(listener, router).await
}
