//! The HTTP check every web kit starts with, as `check_http` and Monit's
//! `protocol http` do it: one request (any method, headers, a body, basic or
//! bearer auth from the app's `[secrets]`) through the host's `http-send`,
//! judged by its status, body, headers, speed and, for HTTPS, how long the
//! server's certificate has left.

use regex_lite::Regex;

use super::{Answer, Auth, Error, Request, Url, send};
use crate::expect::{
    SpeedLimits, annotate_certificate, certificate_concern, is_trust_failure, regex_setting,
};
use crate::{CannotJudge, CheckResult, Context, Health, SettingDoc, host};
use wasi::clocks::monotonic_clock;

/// How much of the body [`probe`] reads to look for `expect_body` and
/// `expect_regex`.
pub const PROBE_MAX_BODY: usize = 64 * 1024;

/// How long [`probe`] waits when neither `timeout_ms` nor the call's
/// deadline says (a host before 0.1.2).
pub const PROBE_TIMEOUT_MS: u32 = 2000;

/// Settings that name a request header: `header_X-Api-Version = "2"`.
pub const HEADER_PREFIX: &str = "header_";

/// The methods `method` may name: a typo must be a setting to fix, not a
/// `405` that restarts a healthy app.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

/// The most redirects `follow_redirects` may allow.
const REDIRECTS_MAX: u32 = 10;

/// The settings [`probe`] reads, documented for a kit's `describe`.
pub fn probe_settings() -> Vec<SettingDoc> {
    vec![
        SettingDoc::required(
            "url",
            "The URL to ask, `http://host:port/path` or `https://...`; its `host:port` \
             must be in `[grants] connect`. HTTPS trusts servers as the app's `[tls]` says.",
        ),
        SettingDoc::with_default(
            "method",
            "GET",
            "The request's method: GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH.",
        ),
        SettingDoc::optional(
            "header_NAME",
            "A header to send, one setting each: `header_X-Api-Version = \"2\"`. \
             `header_Host` asks a virtual server behind an IP address.",
        ),
        SettingDoc::optional("body", "The request's body, e.g. for a POST."),
        SettingDoc::optional(
            "basic_auth",
            "Basic auth: the name of a secret in the app's `[secrets]` that holds \
             `user:password`. medic sends it; the kit never sees it.",
        ),
        SettingDoc::optional(
            "bearer_token",
            "Bearer auth: the name of a secret in the app's `[secrets]` that holds the token.",
        ),
        SettingDoc::with_default(
            "expect_status",
            "200",
            "The statuses the answer may have, comma-separated: `200,204`.",
        ),
        SettingDoc::optional(
            "expect_body",
            "Text the first 64 KiB of the body must contain.",
        ),
        SettingDoc::optional(
            "expect_regex",
            "A regular expression the first 64 KiB of the body must match.",
        ),
        SettingDoc::optional(
            "expect_header",
            "`Name: text`: a response header that must be there and contain the text.",
        ),
        SettingDoc::optional(
            "warn_ms",
            "An answer slower than this many milliseconds is `degraded`.",
        ),
        SettingDoc::optional(
            "fail_ms",
            "An answer slower than this many milliseconds is `failed`.",
        ),
        SettingDoc::optional(
            "cert_days_warn",
            "HTTPS: `degraded` when the server's certificate expires within this many \
             days. The days left and the issuer are recorded with every check.",
        ),
        SettingDoc::with_default(
            "follow_redirects",
            "0",
            "How many redirects to follow (at most 10); each hop's `host:port` must be \
             in `[grants] connect`. With 0 a redirect is judged as the answer.",
        ),
        SettingDoc::optional(
            "timeout_ms",
            "Longest wait for the whole exchange, in milliseconds. It always ends \
             shortly before the app's `timeout` (a tenth of it, 20 to 500 ms, before), \
             so a hung server is `failed`, not a kit fault; set this only to give up \
             sooner. Default: all of that time (2000 on hosts before medic:kit 0.1.2).",
        ),
    ]
}

/// What [`probe`] sends and asks of the answer, read from the settings
/// [`probe_settings`] documents.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    /// The URL to ask.
    pub url: &'a str,
    /// The method, upper-case.
    pub method: String,
    /// The `header_NAME` settings, as `(NAME, value)`.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The request body, empty for none.
    pub body: &'a str,
    /// The secret to authenticate with.
    pub auth: Option<Auth>,
    /// The statuses the answer may have.
    pub expect_status: Vec<u16>,
    /// Text the start of the body must contain, if any.
    pub expect_body: Option<&'a str>,
    /// A pattern the start of the body must match, if any.
    pub expect_regex: Option<Regex>,
    /// A header (name, lower-case) that must contain a text, if any.
    pub expect_header: Option<(String, &'a str)>,
    /// `warn_ms` and `fail_ms`.
    pub speed: SpeedLimits,
    /// A certificate expiring within this many days is `degraded`.
    pub cert_days_warn: Option<u32>,
    /// How many redirects to follow.
    pub follow_redirects: u32,
    /// The bound of the whole exchange, already capped by the call's deadline.
    pub timeout_ms: u32,
}

impl<'a> Probe<'a> {
    /// Reads the settings; a missing or bad one cannot be judged.
    pub fn read(ctx: &'a Context) -> Result<Self, CannotJudge> {
        let url = ctx.require("url")?;
        let parsed =
            Url::parse(url).map_err(|e| CannotJudge::new(format!("setting `url`: {e}")))?;
        let method = ctx.setting("method").unwrap_or("GET").trim().to_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(CannotJudge::new(format!(
                "setting `method` = {method:?} is not one of {}",
                METHODS.join(", ")
            )));
        }
        let auth = match (ctx.setting("basic_auth"), ctx.setting("bearer_token")) {
            (Some(_), Some(_)) => {
                return Err(CannotJudge::new(
                    "settings `basic_auth` and `bearer_token` exclude each other",
                ));
            }
            (Some(name), None) => Some(Auth::Basic(name.trim().to_owned())),
            (None, Some(name)) => Some(Auth::Bearer(name.trim().to_owned())),
            (None, None) => None,
        };
        let expect_regex = regex_setting(ctx, "expect_regex")?;
        let speed = SpeedLimits::read(ctx)?;
        let cert_days_warn = ctx.parse::<u32>("cert_days_warn")?;
        if cert_days_warn.is_some() && !parsed.https {
            return Err(CannotJudge::new(
                "setting `cert_days_warn` needs an https:// `url`",
            ));
        }
        let follow_redirects = ctx.parse_or("follow_redirects", 0u32)?;
        if follow_redirects > REDIRECTS_MAX {
            return Err(CannotJudge::new(format!(
                "setting `follow_redirects` must be at most {REDIRECTS_MAX}"
            )));
        }
        Ok(Self {
            url,
            method,
            headers: headers(ctx)?,
            body: ctx.setting("body").unwrap_or_default(),
            auth,
            expect_status: statuses(ctx.setting("expect_status").unwrap_or("200"))?,
            expect_body: ctx.setting("expect_body"),
            expect_regex,
            expect_header: ctx
                .setting("expect_header")
                .map(expected_header)
                .transpose()?,
            speed,
            cert_days_warn,
            follow_redirects,
            timeout_ms: ctx.timeout_ms_setting("timeout_ms", PROBE_TIMEOUT_MS)?,
        })
    }

    /// Sends the request, following redirects as far as allowed, and
    /// judges the last answer.
    pub fn run(&self) -> CheckResult {
        if self.is_plain_get() {
            return self.judge(&self.plain_get()?);
        }
        let origin = Url::parse(self.url).map(|u| u.host_port()).ok();
        let mut url = self.url.to_owned();
        let mut method = self.method.clone();
        let mut body = self.body;
        let mut hops = 0;
        loop {
            // Credentials go only where the admin pointed them.
            let same_origin = Url::parse(&url).map(|u| u.host_port()).ok() == origin;
            let request = Request {
                method: method.clone(),
                url: url.clone(),
                headers: self
                    .headers
                    .iter()
                    .map(|(key, value)| crate::Setting {
                        key: (*key).to_owned(),
                        value: (*value).to_owned(),
                    })
                    .collect(),
                body: body.as_bytes().to_vec(),
                auth: self.auth.clone().filter(|_| same_origin),
                timeout_ms: self.timeout_ms,
                max_body: PROBE_MAX_BODY as u32,
            };
            let answer = send(&request).map_err(|e| e.into_probe_health(&method, &url))?;
            let location = header(&answer, "location");
            let redirected =
                (300..400).contains(&answer.status) && !self.expect_status.contains(&answer.status);
            match location {
                Some(location) if redirected && hops < self.follow_redirects => {
                    url = redirect_target(&url, location)?;
                    if answer.status == 303 {
                        method = "GET".to_owned();
                        body = "";
                    }
                    hops += 1;
                }
                _ => {
                    if let Some(certificate) = &answer.certificate {
                        annotate_certificate(certificate);
                    }
                    return self.judge(&answer);
                }
            }
        }
    }

    /// Whether the request is a plain GET of an `http://` URL whose answer
    /// is judged without its headers: the host's `http-get` carries it,
    /// the cheapest check there is (no headers to hand over), measured in
    /// docs/benchmarks.md.
    fn is_plain_get(&self) -> bool {
        self.method == "GET"
            && self.headers.is_empty()
            && self.body.is_empty()
            && self.auth.is_none()
            && self.expect_header.is_none()
            && self.follow_redirects == 0
            && self.url.starts_with("http://")
    }

    /// The plain GET through `http-get`, timed by the kit.
    fn plain_get(&self) -> Result<Answer, Health> {
        let started = monotonic_clock::now();
        let response = host::http_get(self.url, self.timeout_ms, PROBE_MAX_BODY as u32)
            .map_err(|e| Error::Host(e).into_probe_health(&self.method, self.url))?;
        let elapsed_ns = monotonic_clock::now().saturating_sub(started);
        Ok(Answer {
            status: response.status,
            headers: Vec::new(),
            body: response.body,
            truncated: response.truncated,
            elapsed_ms: u32::try_from(elapsed_ns / 1_000_000).unwrap_or(u32::MAX),
            certificate: None,
        })
    }

    /// Whether `answer` is the expected one: `failed` for a wrong status,
    /// body or header, or too slow an answer (a restart may well bring the
    /// right one back); `unknown` when the server refused the credentials;
    /// `degraded` for a slow answer or a certificate close to its end.
    pub fn judge(&self, answer: &Answer) -> CheckResult {
        if !self.expect_status.contains(&answer.status) {
            let expected = list(&self.expect_status);
            if self.auth.is_some() && matches!(answer.status, 401 | 403) {
                return Err(Health::Unknown(format!(
                    "status {}, expected {expected}: the server refused the credentials",
                    answer.status
                )));
            }
            return Err(Health::Failed(format!(
                "status {}, expected {expected}",
                answer.status
            )));
        }
        let text = String::from_utf8_lossy(&answer.body);
        let within = if answer.truncated {
            " (in its first 64 KiB)"
        } else {
            ""
        };
        if let Some(needle) = self.expect_body
            && !text.contains(needle)
        {
            return Err(Health::Failed(format!("body lacks {needle:?}{within}")));
        }
        if let Some(pattern) = &self.expect_regex
            && !pattern.is_match(&text)
        {
            return Err(Health::Failed(format!(
                "body does not match {:?}{within}",
                pattern.as_str()
            )));
        }
        if let Some((name, needle)) = &self.expect_header {
            match header(answer, name) {
                Some(value) if value.contains(needle) => {}
                Some(value) => {
                    return Err(Health::Failed(format!(
                        "header {name}: {value:?} lacks {needle:?}"
                    )));
                }
                None => return Err(Health::Failed(format!("no header {name}"))),
            }
        }
        let mut concerns: Vec<String> = self.speed.judge(answer.elapsed_ms)?.into_iter().collect();
        if let (Some(warn_days), Some(certificate)) = (self.cert_days_warn, &answer.certificate) {
            concerns.extend(certificate_concern(certificate, warn_days)?);
        }
        if concerns.is_empty() {
            Ok(Health::Healthy)
        } else {
            Ok(Health::Degraded(concerns.join("; ")))
        }
    }
}

impl Error {
    /// The check's answer when `method url` got no answer: `unknown` for a
    /// URL the kit cannot use or a TLS failure that is medic's trust at
    /// fault (an unknown issuer, a hostname mismatch, a client certificate
    /// the server wants): no restart could cure those. Everything else on
    /// the way to the server (refused, timed out, reset, an expired
    /// certificate) is `failed`.
    pub fn into_probe_health(self, method: &str, url: &str) -> Health {
        match self {
            Error::InvalidUrl(reason) => Health::Unknown(reason),
            other => {
                let said = format!("{method} {url}: {other}");
                if is_trust_failure(&said) {
                    Health::Unknown(format!("{said}; a restart cannot cure this: see [tls]"))
                } else {
                    Health::Failed(said)
                }
            }
        }
    }
}

/// The HTTP check every web kit starts with: the request the settings
/// describe, judged as [`Probe::judge`] says, all within `timeout_ms` and
/// the call's deadline. `Err` is `unknown` for a bad setting and `failed`
/// when the app does not answer as expected; `Ok` is `healthy` or
/// `degraded`.
pub fn probe(ctx: &Context) -> CheckResult {
    Probe::read(ctx)?.run()
}

/// The `header_NAME` settings, each a valid header name.
fn headers(ctx: &Context) -> Result<Vec<(&str, &str)>, CannotJudge> {
    ctx.settings
        .iter()
        .filter_map(|s| Some((s.key.strip_prefix(HEADER_PREFIX)?, s.value.as_str())))
        .map(|(name, value)| {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(CannotJudge::new(format!(
                    "setting `{HEADER_PREFIX}{name}`: {name:?} is not a header name"
                )));
            }
            Ok((name, value))
        })
        .collect()
}

/// `200,204` as statuses.
fn statuses(text: &str) -> Result<Vec<u16>, CannotJudge> {
    text.split(',')
        .map(|code| match code.trim().parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(CannotJudge::new(format!(
                "setting `expect_status` = {text:?}: {code:?} is not an HTTP status"
            ))),
        })
        .collect()
}

/// `Name: text` as (lower-case name, text).
fn expected_header(text: &str) -> Result<(String, &str), CannotJudge> {
    match text.split_once(':') {
        Some((name, needle)) if !name.trim().is_empty() => {
            Ok((name.trim().to_ascii_lowercase(), needle.trim()))
        }
        _ => Err(CannotJudge::new(format!(
            "setting `expect_header` = {text:?} is not `Name: text`"
        ))),
    }
}

/// The first value of header `name` (lower-case) in `answer`.
fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Where a redirect from `from` to `location` leads: an absolute URL, an
/// absolute path on the same server, or a path relative to `from`'s.
fn redirect_target(from: &str, location: &str) -> Result<String, Health> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let base = Url::parse(from).map_err(|e| Health::Unknown(e.to_string()))?;
    let scheme = if base.https { "https" } else { "http" };
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let path = base.path_with_query.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    Ok(format!("{scheme}://{}{path}", base.authority))
}

/// `200 or 204`.
fn list(statuses: &[u16]) -> String {
    let codes: Vec<String> = statuses.iter().map(u16::to_string).collect();
    codes.join(" or ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::PeerCertificate;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn read(pairs: &[(&str, &str)]) -> Result<(), Health> {
        let ctx = Context::with_settings("web", pairs);
        Probe::read(&ctx).map(|_| ()).map_err(Health::from)
    }

    fn answer(status: u16, body: &str, elapsed_ms: u32) -> Answer {
        Answer {
            status,
            headers: vec![crate::Setting {
                key: "content-type".into(),
                value: "application/json; charset=utf-8".into(),
            }],
            body: body.as_bytes().to_vec(),
            truncated: false,
            elapsed_ms,
            certificate: None,
        }
    }

    fn judged(pairs: &[(&str, &str)], answer: &Answer) -> Health {
        let mut all = vec![("url", "https://web.test/health")];
        all.extend_from_slice(pairs);
        let ctx = Context::with_settings("web", &all);
        crate::verdict(Probe::read(&ctx).unwrap().judge(answer))
    }

    #[test]
    fn settings_with_a_typo_cannot_be_judged() {
        let unknown = |pairs: &[(&str, &str)], says: &str| match read(pairs) {
            Err(Health::Unknown(why)) => assert!(why.contains(says), "{why} lacks {says}"),
            other => panic!("{pairs:?}: {other:?}"),
        };
        let url = ("url", "http://h/");
        unknown(&[], "missing required setting `url`");
        unknown(&[("url", "localhost:80")], "must start with http://");
        unknown(&[url, ("method", "GTE")], "is not one of GET");
        unknown(
            &[url, ("expect_status", "200;204")],
            "is not an HTTP status",
        );
        unknown(&[url, ("expect_status", "20")], "is not an HTTP status");
        unknown(
            &[url, ("expect_regex", "(unclosed")],
            "setting `expect_regex`",
        );
        unknown(&[url, ("expect_header", "no colon")], "is not `Name: text`");
        unknown(&[url, ("warn_ms", "0")], "must be above 0");
        unknown(
            &[url, ("warn_ms", "500"), ("fail_ms", "100")],
            "is above `fail_ms`",
        );
        unknown(&[url, ("cert_days_warn", "10")], "needs an https://");
        unknown(&[url, ("follow_redirects", "11")], "at most 10");
        unknown(&[url, ("header_Bad Name", "1")], "is not a header name");
        unknown(
            &[url, ("basic_auth", "a"), ("bearer_token", "b")],
            "exclude each other",
        );
        assert_eq!(
            read(&[url, ("method", "post"), ("header_X-Api-Version", "2")]),
            Ok(())
        );
    }

    #[test]
    fn what_is_sent_comes_from_the_settings() {
        let ctx = Context::with_settings(
            "web",
            &[
                ("url", "http://h/"),
                ("method", "post"),
                ("header_X-Api-Version", "2"),
                ("header_Host", "web.example"),
                ("body", "{}"),
                ("basic_auth", "login"),
                ("expect_status", "200, 204"),
            ],
        );
        let probe = Probe::read(&ctx).unwrap();
        assert_eq!(probe.method, "POST");
        assert_eq!(
            probe.headers,
            [("X-Api-Version", "2"), ("Host", "web.example")]
        );
        assert_eq!(probe.body, "{}");
        assert_eq!(probe.auth, Some(Auth::Basic("login".into())));
        assert_eq!(probe.expect_status, [200, 204]);
    }

    #[test]
    fn a_wrong_answer_is_failed() {
        let failed =
            |pairs: &[(&str, &str)], answer: &Answer, says: &str| match judged(pairs, answer) {
                Health::Failed(why) => assert!(why.contains(says), "{why} lacks {says}"),
                other => panic!("{pairs:?}: {other:?}"),
            };
        failed(&[], &answer(503, "", 1), "status 503, expected 200");
        failed(
            &[("expect_status", "200,204")],
            &answer(500, "", 1),
            "expected 200 or 204",
        );
        failed(
            &[("expect_body", "ok")],
            &answer(200, "nope", 1),
            "body lacks \"ok\"",
        );
        failed(
            &[("expect_regex", "^v[0-9]+$")],
            &answer(200, "vx", 1),
            "does not match",
        );
        failed(
            &[("expect_header", "X-Ready: yes")],
            &answer(200, "", 1),
            "no header x-ready",
        );
        failed(
            &[("expect_header", "Content-Type: text/html")],
            &answer(200, "", 1),
            "lacks \"text/html\"",
        );
        failed(
            &[("fail_ms", "100")],
            &answer(200, "", 150),
            "answered in 150 ms",
        );
        let healthy = [
            ("expect_status", "200,204"),
            ("expect_regex", "^v[0-9]+$"),
            ("expect_header", "content-type: application/json"),
            ("warn_ms", "100"),
            ("fail_ms", "200"),
        ];
        assert_eq!(judged(&healthy, &answer(204, "v12", 100)), Health::Healthy);
    }

    #[test]
    fn slow_answers_and_expiring_certificates_are_degraded() {
        let slow = judged(
            &[("warn_ms", "100"), ("fail_ms", "500")],
            &answer(200, "", 300),
        );
        assert_eq!(
            slow,
            Health::Degraded("answered in 300 ms, above warn_ms 100".into())
        );
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let with_certificate = |days: i64| Answer {
            certificate: Some(PeerCertificate {
                not_after: now + days * 86_400 + 3_600,
                issuer: "CN=Test CA".into(),
                subject: "CN=web.test".into(),
            }),
            ..answer(200, "", 1)
        };
        let soon = judged(&[("cert_days_warn", "10")], &with_certificate(5));
        match soon {
            Health::Degraded(why) => {
                assert!(
                    why.starts_with("certificate expires in 5 days, on 20"),
                    "{why}"
                );
                assert!(why.ends_with("(issued by CN=Test CA)"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            judged(&[("cert_days_warn", "10")], &with_certificate(30)),
            Health::Healthy
        );
        assert!(matches!(
            judged(&[("cert_days_warn", "10")], &with_certificate(-3)),
            Health::Failed(why) if why.starts_with("certificate expired on ")
        ));
    }

    #[test]
    fn refused_credentials_and_trust_failures_cannot_be_judged() {
        let refused = judged(&[("bearer_token", "api")], &answer(401, "", 1));
        assert!(matches!(refused, Health::Unknown(why) if why.contains("refused the credentials")));
        assert!(matches!(
            judged(&[], &answer(401, "", 1)),
            Health::Failed(_)
        ));
        let untrusted = Error::Host("certificate signed by an unknown issuer (its CA ...)".into());
        assert!(matches!(
            untrusted.into_probe_health("GET", "https://h/"),
            Health::Unknown(why) if why.contains("see [tls]")
        ));
        let expired = Error::Host("certificate expired on 2026-01-01".into());
        assert_eq!(
            expired.into_probe_health("GET", "https://h/"),
            Health::Failed("GET https://h/: certificate expired on 2026-01-01".into())
        );
    }

    #[test]
    fn redirects_lead_where_location_says() {
        let to = |from, location| redirect_target(from, location).unwrap();
        assert_eq!(to("http://a:8/x/y?q", "https://b/z"), "https://b/z");
        assert_eq!(to("http://a:8/x/y?q", "/z"), "http://a:8/z");
        assert_eq!(to("https://a/x/y?q", "z"), "https://a/x/z");
    }

    #[test]
    fn timeout_ms_only_shortens_the_wait() {
        let ctx = Context::with_settings("web", &[("url", "http://h/"), ("timeout_ms", "9000")]);
        let probe = Probe::read(&ctx).unwrap();
        assert!((4_000..=4_500).contains(&probe.timeout_ms), "{probe:?}");
        let mut old = Context::with_settings("web", &[("url", "http://h/")]);
        old.deadline_ms = crate::DEADLINE_NOT_TOLD;
        assert_eq!(Probe::read(&old).unwrap().timeout_ms, PROBE_TIMEOUT_MS);
    }
}
