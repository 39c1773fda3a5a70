//! Recovery kit `ocf`: runs any OCF resource agent (the ones Pacemaker
//! uses; Debian's `resource-agents` ships over a hundred) unchanged.
//!
//! `check` is the agent's `monitor` at `OCF_CHECK_LEVEL`; local recovery is
//! its `stop` then `start`. Every setting besides the kit's own (`agent`,
//! `check_level`, `timeout_ms`) is passed to the agent as
//! `OCF_RESKEY_<name>`, the way Pacemaker passes a resource's parameters.
//!
//! | monitor exit | OCF meaning | medic |
//! |---|---|---|
//! | 0, 8 | running (8: as promoted) | healthy |
//! | 190, 191 | running but degraded (191: as promoted) | degraded |
//! | 1, 7, 9 | generic error, not running, failed as promoted | failed |
//! | killed | no answer in time | failed |
//! | 2, 3, 4, 5, 6 | invalid argument, unimplemented, insufficient privileges, not installed, not configured | unknown |
//! | other | not an OCF code | unknown |
//!
//! 2–6 are what Pacemaker calls hard errors: the agent cannot look at the
//! app at all, a configuration problem that no restart fixes, so Pacemaker
//! stops recovering the resource there, and medic alerts and waits. A
//! monitor killed at its timeout is a failure, as in Pacemaker.
//!
//! `medic kit inspect ocf.wasm --app APP.toml` lists the agent's own
//! parameters, read from its `meta-data`, next to the kit's settings.

use medic_kit::{
    CannotJudge, Capability, CheckResult, Command, Context, ExecOutput, Health, Kit, KitInfo,
    NextStep, SettingDoc, export,
};

/// Where OCF agents and their shell library live on Debian.
const OCF_ROOT: &str = "/usr/lib/ocf";
/// The settings the kit reads itself; every other one goes to the agent.
const OWN_SETTINGS: [&str; 3] = ["agent", "check_level", "timeout_ms"];
/// How long one action may run when neither `timeout_ms` nor the call's
/// deadline says (a host before medic:kit 0.1.2).
const TIMEOUT_MS: u32 = 20_000;

/// The kit; all state lives in the app's settings.
struct Ocf;

/// What the kit sets for an agent besides `PATH`, `OCF_ROOT` and
/// `OCF_FUNCTIONS_DIR`, which medic sets itself: the app's `[grants] env`
/// must open these.
const ENV_WANTED: [&str; 4] = [
    "OCF_RESKEY_*",
    "OCF_RESOURCE_*",
    "OCF_RA_VERSION_*",
    "OCF_CHECK_LEVEL",
];

impl Kit for Ocf {
    fn env_wanted() -> Vec<String> {
        ENV_WANTED.iter().map(|name| (*name).to_owned()).collect()
    }

    fn describe() -> KitInfo {
        KitInfo {
            name: "ocf".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Runs an OCF resource agent: monitor to check, stop + start to recover."
                .into(),
            settings: vec![
                SettingDoc::required(
                    "agent",
                    &format!(
                        "The agent as `provider/type` (e.g. `heartbeat/nginx`, found under \
                         {OCF_ROOT}/resource.d/) or an absolute path; the agent's path must \
                         be in `[grants] exec`."
                    ),
                ),
                SettingDoc::with_default(
                    "check_level",
                    "0",
                    "OCF_CHECK_LEVEL for monitor: 0, 10 or 20 (deeper checks, where the \
                     agent has them).",
                ),
                SettingDoc::optional(
                    "timeout_ms",
                    "Longest one agent action may run, in milliseconds. An action is \
                     always killed shortly before the call's deadline (the app's \
                     `timeout`); set this only to stop it sooner. Default: all of that \
                     time (20000 on hosts before medic:kit 0.1.2).",
                ),
                SettingDoc::optional(
                    "any other key",
                    "Passed to the agent as OCF_RESKEY_<key>: the agent's parameters, as \
                     its `meta-data` lists them.",
                ),
            ],
            wants: vec![Capability::Exec("the agent's path".into())],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(monitor(ctx))
    }

    fn app_settings(ctx: &Context) -> Result<Vec<SettingDoc>, String> {
        let output = action(ctx, "meta-data")?;
        if output.exit_code != Some(0) {
            return Err(said("meta-data", &output));
        }
        let mut settings: Vec<SettingDoc> = Self::describe()
            .settings
            .into_iter()
            .filter(|s| OWN_SETTINGS.contains(&s.key.as_str()))
            .collect();
        settings.extend(parameters(&output.stdout)?);
        Ok(settings)
    }

    fn recover(ctx: &Context) -> Result<NextStep, String> {
        let stopped = action(ctx, "stop")?;
        if stopped.exit_code != Some(0) {
            return Err(said("stop", &stopped));
        }
        let started = action(ctx, "start")?;
        match started.exit_code {
            Some(0) => Ok(NextStep::Done),
            _ => Err(said("start", &started)),
        }
    }
}

/// Runs `monitor` and takes the agent's verdict; settings that do not say
/// how to run it are `unknown`, an agent that cannot be started `failed`.
fn monitor(ctx: &Context) -> CheckResult {
    let output = action(ctx, "monitor")?;
    Ok(verdict(&output))
}

/// The check's answer by the exit code of `monitor` (see the table above).
fn verdict(output: &ExecOutput) -> Health {
    let said = said("monitor", output);
    match output.exit_code {
        Some(0 | 8) => Health::Healthy,
        Some(190 | 191) => Health::Degraded(said),
        Some(1 | 7 | 9) | None => Health::Failed(said),
        Some(_) => Health::Unknown(format!("the agent cannot monitor: {said}")),
    }
}

/// Why an action did not run: the settings do not say how (which no
/// restart fixes), or the agent could not be started.
#[derive(Debug)]
enum ActionError {
    /// A missing or bad setting.
    Settings(CannotJudge),
    /// The host could not start the agent; the text says why.
    Run(String),
}

impl From<CannotJudge> for ActionError {
    fn from(e: CannotJudge) -> Self {
        Self::Settings(e)
    }
}

/// `unknown` for a setting, `failed` for an agent that cannot be started.
impl From<ActionError> for Health {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Settings(e) => e.into(),
            ActionError::Run(reason) => Health::Failed(reason),
        }
    }
}

/// `recover` and `app_settings` answer with the reason alone.
impl From<ActionError> for String {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Settings(e) => e.into(),
            ActionError::Run(reason) => reason,
        }
    }
}

/// Runs the agent's `name` action with the OCF environment.
fn action(ctx: &Context, name: &str) -> Result<ExecOutput, ActionError> {
    let (path, command) = command(ctx, name)?;
    command
        .run()
        .map_err(|e| ActionError::Run(format!("cannot run {path} {name}: {e}")))
}

/// The agent's `name` action with the OCF environment, and the agent's
/// path, as the settings say.
fn command(ctx: &Context, name: &str) -> Result<(String, Command), CannotJudge> {
    let agent = ctx.require("agent")?;
    let (path, provider, kind) = resolve(agent)?;
    let check_level = ctx.parse_or("check_level", 0u32)?;
    let timeout_ms = ctx.timeout_ms_setting("timeout_ms", TIMEOUT_MS)?;
    let mut command = Command::new(&path)
        .arg(name)
        .timeout_ms(timeout_ms)
        .env("OCF_RA_VERSION_MAJOR", "1")
        .env("OCF_RA_VERSION_MINOR", "1")
        .env("OCF_RESOURCE_INSTANCE", &ctx.app)
        .env("OCF_RESOURCE_PROVIDER", provider)
        .env("OCF_RESOURCE_TYPE", kind)
        .env("OCF_CHECK_LEVEL", &check_level.to_string())
        .env("OCF_RESKEY_CRM_meta_timeout", &timeout_ms.to_string());
    for setting in &ctx.settings {
        if !OWN_SETTINGS.contains(&setting.key.as_str()) {
            command = command.env(&format!("OCF_RESKEY_{}", setting.key), &setting.value);
        }
    }
    Ok((path, command))
}

/// The agent's path, provider and type, from `provider/type` or a path.
fn resolve(agent: &str) -> Result<(String, &str, &str), CannotJudge> {
    if agent.starts_with('/') {
        let kind = agent.rsplit('/').next().unwrap_or(agent);
        return Ok((agent.to_owned(), "custom", kind));
    }
    match agent.split_once('/') {
        Some((provider, kind))
            if !provider.is_empty() && !kind.is_empty() && !kind.contains('/') =>
        {
            Ok((
                format!("{OCF_ROOT}/resource.d/{provider}/{kind}"),
                provider,
                kind,
            ))
        }
        _ => Err(CannotJudge::new(format!(
            "setting `agent` = {agent:?}: expected `provider/type` or an absolute path"
        ))),
    }
}

/// What the agent said about an action that did not succeed: its exit
/// with the OCF meaning, then its last line of stderr (agents log there),
/// else of stdout.
fn said(action: &str, output: &ExecOutput) -> String {
    let exit = match output.exit_code {
        Some(code) => format!("{action} exited {code} ({})", meaning(code)),
        None => format!("{action} was killed"),
    };
    let line = [&output.stderr, &output.stdout]
        .into_iter()
        .find_map(|text| text.lines().map(str::trim).rfind(|l| !l.is_empty()));
    match line {
        Some(line) => format!("{exit}: {line}"),
        None => exit,
    }
}

/// The parameters an agent's `meta-data` XML declares, as settings (each
/// is passed to the agent as `OCF_RESKEY_<name>`).
fn parameters(meta_data: &str) -> Result<Vec<SettingDoc>, String> {
    // Agents start their meta-data with `<!DOCTYPE resource-agent SYSTEM
    // "ra-api-1.dtd">`; the DTD itself is not read.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(meta_data, options)
        .map_err(|e| format!("the agent's meta-data is not XML: {e}"))?;
    let text = |node: roxmltree::Node<'_, '_>, tag: &str| {
        node.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("parameter"))
        .filter_map(|parameter| {
            let content = parameter.children().find(|c| c.has_tag_name("content"));
            Some(SettingDoc {
                key: parameter.attribute("name")?.to_owned(),
                required: parameter.attribute("required") == Some("1"),
                default: content
                    .and_then(|c| c.attribute("default"))
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
                doc: text(parameter, "shortdesc")
                    .or_else(|| text(parameter, "longdesc"))
                    .unwrap_or_default(),
            })
        })
        .collect())
}

/// The OCF name of an agent's exit code.
fn meaning(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "generic error",
        2 => "invalid argument",
        3 => "unimplemented",
        4 => "insufficient privileges",
        5 => "not installed",
        6 => "not configured",
        7 => "not running",
        8 => "running as promoted",
        9 => "failed as promoted",
        190 => "degraded",
        191 => "degraded as promoted",
        _ => "not an OCF code",
    }
}

export!(Ocf);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What a `monitor` that exited `code` and logged `stderr` leaves.
    fn exited(code: Option<i32>, stderr: &str) -> ExecOutput {
        ExecOutput {
            exit_code: code,
            stdout: String::new(),
            stderr: stderr.into(),
            truncated: false,
        }
    }

    #[test]
    fn monitor_exits_map_to_verdicts() {
        for code in [0, 8] {
            assert_eq!(verdict(&exited(Some(code), "")), Health::Healthy, "{code}");
        }
        for code in [190, 191] {
            let answer = verdict(&exited(Some(code), ""));
            assert!(matches!(answer, Health::Degraded(_)), "{code}: {answer:?}");
        }
        assert_eq!(
            verdict(&exited(Some(7), "INFO: nginx not running\n")),
            Health::Failed("monitor exited 7 (not running): INFO: nginx not running".into())
        );
        for code in [Some(1), Some(9), None] {
            let answer = verdict(&exited(code, ""));
            assert!(matches!(answer, Health::Failed(_)), "{code:?}: {answer:?}");
        }
        assert_eq!(
            verdict(&exited(Some(6), "ERROR: parameter config is required\n")),
            Health::Unknown(
                "the agent cannot monitor: monitor exited 6 (not configured): \
                 ERROR: parameter config is required"
                    .into()
            )
        );
        for code in [2, 3, 4, 5, 42] {
            let answer = verdict(&exited(Some(code), ""));
            assert!(matches!(answer, Health::Unknown(_)), "{code}: {answer:?}");
        }
    }

    #[test]
    fn settings_that_say_no_agent_are_unknown() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("agent", "nginx")],
                &[("agent", "heartbeat/")],
                &[("agent", "heartbeat/nginx"), ("check_level", "deep")],
                &[("agent", "heartbeat/nginx"), ("timeout_ms", "0")],
            ],
            monitor,
        );
        let recover = Ocf::recover(&Context::with_settings("web", &[]));
        assert_eq!(recover, Err("missing required setting `agent`".into()));
    }

    #[test]
    fn the_agent_is_told_its_timeout() {
        let ctx = Context::with_settings(
            "web",
            &[("agent", "heartbeat/Dummy"), ("timeout_ms", "900")],
        );
        let (path, command) = command(&ctx, "monitor").unwrap();
        assert_eq!(path, "/usr/lib/ocf/resource.d/heartbeat/Dummy");
        let request = command.request();
        assert_eq!(
            (request.args.as_slice(), request.timeout_ms),
            (&["monitor".to_string()][..], 900)
        );
        let told = request
            .env
            .iter()
            .find(|v| v.key == "OCF_RESKEY_CRM_meta_timeout");
        assert_eq!(told.map(|v| v.value.as_str()), Some("900"));
    }

    #[test]
    fn reads_parameters_from_meta_data() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="nginx"><parameters>
 <parameter name="configfile" unique="1" required="1">
  <longdesc lang="en">The full pathname of the config file.</longdesc>
  <shortdesc lang="en">configuration
   file path</shortdesc>
  <content type="string" default=""/>
 </parameter>
 <parameter name="httpd"><longdesc lang="en">Binary.</longdesc>
  <content type="string" default="/usr/sbin/nginx"/></parameter>
</parameters></resource-agent>"#;
        let settings = parameters(xml).unwrap();
        assert_eq!(settings.len(), 2);
        assert_eq!(settings[0].key, "configfile");
        assert!(settings[0].required);
        assert_eq!(settings[0].default, None);
        assert_eq!(settings[0].doc, "configuration file path");
        assert_eq!(settings[1].default.as_deref(), Some("/usr/sbin/nginx"));
        assert_eq!(settings[1].doc, "Binary.");
        assert!(parameters("not xml").is_err());
    }
}
