//! Recovery kit `nginx`: an HTTP check of a URL nginx serves, plus nginx's
//! own `stub_status` page when the admin points at one; recovery reloads
//! nginx before it asks for a restart.
//!
//! A reload (`nginx -s reload`) starts fresh worker processes and lets the
//! old ones finish, without dropping the listening sockets: it cures a
//! wedged or leaking worker at no cost to clients, so it is the first
//! step. When it does not help (or cannot run: the master is gone), the
//! second step asks medic to restart nginx with the app's `stop`/`start`.
//!
//! Verdicts follow the SDK's `http::probe` (no answer or a wrong one is
//! `failed`, a bad setting `unknown`); a `status_url` that does not lead to
//! a `stub_status` page is `unknown` too, since nginx itself just answered.

use medic_kit::http;
use medic_kit::{
    Capability, CheckResult, Command, Context, Health, Kit, KitInfo, NextStep, SettingDoc, export,
    host,
};

/// nginx's binary on Debian.
const NGINX: &str = "/usr/sbin/nginx";

/// The kit; all state lives in the app's settings.
struct Nginx;

impl Kit for Nginx {
    fn describe() -> KitInfo {
        let mut settings = http::probe_settings();
        settings.extend([
            SettingDoc::optional(
                "status_url",
                "URL of a `stub_status` location; when set, its counters are added to the \
                 check's record, and connections nginx dropped since the last check \
                 (accepted but not handled: out of worker_connections) make it degraded. \
                 Its `host:port` must be in `[grants] connect`.",
            ),
            SettingDoc::with_default(
                "nginx",
                NGINX,
                "nginx's binary, run as `nginx [-c conf] [-p prefix] -s reload` for the \
                 first recovery step; it must be in `[grants] exec`.",
            ),
            SettingDoc::optional("conf", "nginx's config file (`-c`), if not the default."),
            SettingDoc::optional("prefix", "nginx's prefix (`-p`), if not the default."),
        ]);
        KitInfo {
            name: "nginx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Checks a URL nginx serves (and stub_status); recovers by reloading nginx, \
                      then by restarting it."
                .into(),
            settings,
            wants: vec![
                Capability::Connect("host:port of url and of status_url".into()),
                Capability::Exec("nginx".into()),
            ],
        }
    }

    fn check(ctx: &Context) -> Health {
        medic_kit::verdict(probe(ctx))
    }

    fn recover(ctx: &Context) -> Result<NextStep, String> {
        if ctx.attempt > 1 {
            return Ok(NextStep::RestartApp);
        }
        let binary = ctx.setting("nginx").unwrap_or(NGINX);
        let mut reload = Command::new(binary);
        if let Some(conf) = ctx.setting("conf") {
            reload = reload.args(["-c", conf]);
        }
        if let Some(prefix) = ctx.setting("prefix") {
            reload = reload.args(["-p", prefix]);
        }
        let output = reload.args(["-s", "reload"]).timeout_ms(5_000).run()?;
        match output.exit_code {
            // The new workers take over; medic checks again.
            Some(0) => Ok(NextStep::Done),
            _ => {
                let said = output.stderr.lines().last().unwrap_or_default().trim();
                medic_kit::warn!("reload did not work ({said}); asking for a restart");
                Ok(NextStep::RestartApp)
            }
        }
    }
}

/// The `http` kit's check, then `stub_status` when `status_url` is set.
fn probe(ctx: &Context) -> CheckResult {
    let answered = http::probe(ctx)?;
    let counted = match ctx.setting("status_url") {
        Some(url) => stub_status(ctx, url)?,
        None => Health::Healthy,
    };
    // A slow answer or an expiring certificate is said before the counters.
    Ok(match answered {
        Health::Healthy => counted,
        degraded => degraded,
    })
}

/// Reads `stub_status`, records its counters, and says whether nginx has
/// dropped connections since the last check.
fn stub_status(ctx: &Context, url: &str) -> CheckResult {
    let timeout_ms = ctx.timeout_ms_setting("timeout_ms", http::PROBE_TIMEOUT_MS)?;
    let timeout = std::time::Duration::from_millis(timeout_ms.into());
    let response = http::get(url, timeout, 4096).map_err(|e| e.into_health(url))?;
    let status = read_status_page(url, &response)?;
    host::annotate("active", &status.active.to_string());
    host::annotate("requests", &status.requests.to_string());
    let dropped = status.accepts.saturating_sub(status.handled);
    let before: u64 = host::state_get("dropped")
        .and_then(|v| v.parse().ok())
        .unwrap_or(dropped);
    host::state_set("dropped", &dropped.to_string());
    match dropped.saturating_sub(before) {
        0 => Ok(Health::Healthy),
        n => Ok(Health::Degraded(format!(
            "nginx dropped {n} connections since the last check (worker_connections reached?)"
        ))),
    }
}

/// The counters on the page `status_url` answered. nginx has just served
/// `url`, so a page refused (4xx: no such location, `deny`) or not a
/// `stub_status` page is the setting's fault, which a restart cannot fix:
/// `unknown`. Any other status is nginx failing: `failed`.
fn read_status_page(url: &str, response: &http::Response) -> Result<Status, Health> {
    match response.status {
        200 => {}
        status @ 400..=499 => {
            return Err(Health::Unknown(format!(
                "GET {url}: status {status} (is `status_url` a stub_status location \
                 that allows medic?)"
            )));
        }
        status => return Err(Health::Failed(format!("GET {url}: status {status}"))),
    }
    Status::parse(&String::from_utf8_lossy(&response.body))
        .ok_or_else(|| Health::Unknown(format!("{url} is not an nginx stub_status page")))
}

/// The counters of nginx's `stub_status` page.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
}

impl Status {
    /// Parses `Active connections: 1 \n server accepts handled requests\n 5 5 9 \n...`.
    fn parse(page: &str) -> Option<Self> {
        let mut lines = page.lines();
        let active = lines
            .next()?
            .strip_prefix("Active connections:")?
            .trim()
            .parse()
            .ok()?;
        let counters: Vec<u64> = lines
            .nth(1)?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match counters[..] {
            [accepts, handled, requests] => Some(Self {
                active,
                accepts,
                handled,
                requests,
            }),
            _ => None,
        }
    }
}

export!(Nginx);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stub_status() {
        let page = "Active connections: 2 \nserver accepts handled requests\n 10 9 31 \nReading: 0 Writing: 1 Waiting: 1 \n";
        assert_eq!(
            Status::parse(page),
            Some(Status {
                active: 2,
                accepts: 10,
                handled: 9,
                requests: 31
            })
        );
        assert_eq!(Status::parse("<html>not it</html>"), None);
    }

    /// A response with this status and body.
    fn response(status: u16, body: &str) -> http::Response {
        http::Response {
            status,
            body: body.into(),
            truncated: false,
        }
    }

    #[test]
    fn a_status_url_that_is_no_status_page_is_unknown() {
        let url = "http://127.0.0.1/nginx_status";
        let page = "Active connections: 1 \nserver accepts handled requests\n 1 1 1 \n";
        assert!(read_status_page(url, &response(200, page)).is_ok());
        for (status, body) in [(404, "Not Found"), (403, "Forbidden"), (200, "<html>")] {
            let answer = read_status_page(url, &response(status, body));
            assert!(
                matches!(answer, Err(Health::Unknown(_))),
                "{status}: {answer:?}"
            );
        }
        assert_eq!(
            read_status_page(url, &response(502, "Bad Gateway")).err(),
            Some(Health::Failed(format!("GET {url}: status 502")))
        );
    }

    #[test]
    fn bad_settings_are_unknown_before_any_request() {
        medic_kit::testing::assert_unknown_for(
            &[
                &[],
                &[("url", "localhost/healthz")],
                &[("url", "http://h/"), ("expect_status", "two hundred")],
                &[("url", "http://h/"), ("timeout_ms", "0")],
            ],
            probe,
        );
    }
}
