//! `[[alert]]` tables of `medic.toml`: where events go besides the journal.
//!
//! ```toml
//! [[alert]]
//! kind    = "webhook"                       # or "exec"
//! url     = "https://hooks.example/medic"   # webhook
//! command = ["/usr/local/bin/page", "ops"]  # exec: argv, event JSON on stdin
//! events  = ["vm_reset", "reset_refused", "alert", "manual"]   # default: all
//! timeout = "5s"
//! retries = 3
//! name    = "pager"                         # default: alert-N
//! ```

use std::time::Duration;

use super::reader::{Read, Table, non_empty};
use crate::alerts::{SinkSettings, SinkTarget};
use crate::journal::Kind;

/// Reads every `[[alert]]` table; invalid ones are reported and left out.
pub(super) fn read(root: &mut Table<'_, '_>) -> Vec<SinkSettings> {
    let mut sinks = Vec::new();
    for (index, mut table) in root.tables("alert").into_iter().enumerate() {
        let name = table
            .parsed("name", |s| non_empty(s).map(str::to_owned))
            .or(format!("alert-{}", index + 1));
        let kind = table.required("kind", |s| match s {
            "webhook" | "exec" => Ok(s.to_owned()),
            _ => Err(format!("unknown kind `{s}`; expected webhook or exec")),
        });
        let url = table.parsed("url", |s| match s.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() => Ok(s.to_owned()),
            _ => Err("expected an http:// or https:// URL".to_owned()),
        });
        let command = table.argv("command");
        let kinds = table.list("events", event_kind).or(Vec::new());
        let timeout = table
            .duration("timeout", Duration::from_millis(10))
            .or(Duration::from_secs(5));
        let retries = table.u32_in("retries", 0..=100).or(3);
        let target = match (kind.as_deref(), url, command) {
            (Some("webhook"), Read::Valid(url, _), Read::Absent) => {
                Some(SinkTarget::Webhook { url })
            }
            (Some("exec"), Read::Absent, Read::Valid(argv, _)) => Some(SinkTarget::Exec { argv }),
            (Some("webhook"), Read::Absent, _) => {
                table.missing("url", "a webhook needs `url`");
                None
            }
            (Some("exec"), _, Read::Absent) => {
                table.missing("command", "an exec sink needs `command`");
                None
            }
            (Some(_), _, _) => {
                table.missing(
                    "kind",
                    "a webhook takes `url` only, an exec sink `command` only",
                );
                None
            }
            (None, _, _) => None,
        };
        table.finish();
        sinks.extend(target.map(|target| SinkSettings {
            name,
            kinds,
            target,
            timeout,
            retries,
        }));
    }
    sinks
}

/// An event kind by its journal name (`vm_reset`).
fn event_kind(name: &str) -> Result<Kind, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("unknown event kind `{name}`"))
}
