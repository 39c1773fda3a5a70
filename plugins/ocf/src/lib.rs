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
//! | 7 | not running | failed |
//! | 1, 9 | generic error (9: failed as promoted) | failed |
//! | 2, 3, 4, 5, 6, other, killed | bad arguments, unimplemented, no permission, not installed, not configured | kit fault |
//!
//! The last group says the agent could not look at the app at all, which
//! is a configuration problem, never a reason to restart the app: the kit
//! traps with the agent's words, and medic reports a kit fault.
//!
//! `medic kit inspect ocf.wasm --app APP.toml` lists the agent's own
//! parameters, read from its `meta-data`, next to the kit's settings.

use medic_kit::{
    Capability, Command, Context, ExecOutput, Health, Kit, KitInfo, NextStep, SettingDoc, export,
};

/// Where OCF agents and their shell library live on Debian.
const OCF_ROOT: &str = "/usr/lib/ocf";
/// The settings the kit reads itself; every other one goes to the agent.
const OWN_SETTINGS: [&str; 3] = ["agent", "check_level", "timeout_ms"];

/// The kit; all state lives in the app's settings.
struct Ocf;

impl Kit for Ocf {
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
                SettingDoc::with_default(
                    "timeout_ms",
                    "20000",
                    "Longest one agent action may run, in milliseconds; keep it below the \
                     app's `timeout` (for recovery: below `recover_timeout`).",
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
        let output = match action(ctx, "monitor") {
            Ok(output) => output,
            Err(reason) => return Health::Failed(reason),
        };
        let said = said("monitor", &output);
        match output.exit_code {
            Some(0 | 8) => Health::Healthy,
            Some(1 | 7 | 9) => Health::Failed(said),
            Some(_) | None => panic!("the agent cannot monitor: {said}"),
        }
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

/// Runs the agent's `name` action with the OCF environment.
fn action(ctx: &Context, name: &str) -> Result<ExecOutput, String> {
    let agent = ctx.require("agent")?;
    let (path, provider, kind) = resolve(agent)?;
    let check_level = ctx.parse_or("check_level", 0u32)?;
    let timeout_ms = ctx.parse_or("timeout_ms", 20_000u32)?;
    let mut command = Command::new(&path)
        .arg(name)
        .timeout_ms(timeout_ms)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", OCF_ROOT)
        .env("OCF_FUNCTIONS_DIR", &format!("{OCF_ROOT}/lib/heartbeat"))
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
    command
        .run()
        .map_err(|e| format!("cannot run {path} {name}: {e}"))
}

/// The agent's path, provider and type, from `provider/type` or a path.
fn resolve(agent: &str) -> Result<(String, &str, &str), String> {
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
        _ => Err(format!(
            "setting `agent` = {agent:?}: expected `provider/type` or an absolute path"
        )),
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
        _ => "not an OCF code",
    }
}

export!(Ocf);

#[cfg(test)]
mod tests {
    use super::*;

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
