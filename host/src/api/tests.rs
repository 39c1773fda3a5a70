//! No request can panic the admin API, hang it, or make it fail on its
//! side: any JSON, any bytes, any path and any query, to every route, from a
//! permitted caller and from a stranger. The router is called in-process,
//! behind the same middleware as on the socket, with a fake supervisor for
//! the app `web` and a fake daemon answering reloads.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tower::ServiceExt as _;

use super::ApiState;
use super::peer::{Local, Peer};
use super::server::router;
use crate::api::Changes;
use crate::config::EscalationSettings;
use crate::hypervisor::Escalator;
use crate::journal::Journal;
use crate::maintenance::Book;
use crate::supervisor::{AppHandle, AppStatus, Command, LastCheck};

/// The one app the fake daemon watches.
const APP: &str = "web";

/// A daemon's API state in a temp dir: a journal, the dry-run escalator,
/// an empty maintenance book, `web` answered by a fake supervisor and
/// reloads answered by a fake daemon (applied and refused in turn). Holds
/// the only reference to the state besides the router's, so dropping both
/// ends every `events?follow` stream.
struct Daemon {
    state: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Needs a runtime: the fakes are tasks.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path()).unwrap());
        let escalation = EscalationSettings::default();
        let escalator =
            Arc::new(Escalator::from_settings(&escalation, journal.clone(), &[]).unwrap());
        let (reload, mut reloads) =
            mpsc::channel::<oneshot::Sender<Result<Changes, Vec<String>>>>(4);
        tokio::spawn(async move {
            let mut applied = false;
            while let Some(reply) = reloads.recv().await {
                applied = !applied;
                let _ = reply.send(if applied {
                    Ok(Changes::default())
                } else {
                    Err(vec!["medic.toml:1:1: refused".to_owned()])
                });
            }
        });
        let state = Arc::new(ApiState {
            apps: std::sync::RwLock::new([(APP.to_owned(), fake_supervisor())].into()),
            journal,
            escalator,
            escalation,
            maintenance: Arc::new(Book::open(dir.path())),
            state_dir: dir.path().to_path_buf(),
            socket_group: None,
            reload,
        });
        Self { state, _dir: dir }
    }
}

/// A supervisor for `web` that answers every check healthy and every
/// recovery done and refused in turn.
fn fake_supervisor() -> AppHandle {
    let (commands, mut received) = mpsc::channel(16);
    let (_, status) = watch::channel(AppStatus::bare(APP, crate::status::State::Healthy));
    tokio::spawn(async move {
        let mut done = false;
        while let Some(command) = received.recv().await {
            match command {
                Command::CheckNow(reply) => {
                    let _ = reply.send(LastCheck {
                        at: SystemTime::now(),
                        result: crate::status::CheckResult::Healthy,
                        reason: None,
                        duration_ms: 1.0,
                    });
                }
                Command::RecoverNow { reply, .. }
                | Command::Stop { reply, .. }
                | Command::Start { reply, .. }
                | Command::Update { reply, .. } => {
                    done = !done;
                    let _ = reply.send(if done {
                        Ok("restarted".to_owned())
                    } else {
                        Err("held in manual".to_owned())
                    });
                }
            }
        }
    });
    AppHandle { commands, status }
}

/// One request as a test sends it.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    /// Path and query, already a valid URI.
    uri: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// Root, or a stranger the socket refuses.
    root: bool,
}

/// How long a request may take, body included; a `follow` stream ends when
/// the daemon's state is dropped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API answered: the status, the headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

/// Sends `call` to a fresh daemon's router and returns the answer. Fails
/// the case if the router panics or does not answer.
fn answer(call: Call) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let daemon = Daemon::start();
        let own = rustix::process::geteuid().as_raw();
        let uid = if call.root { 0 } else { own.wrapping_add(4242) };
        let peer = Peer::Local(Local {
            uid,
            gid: uid,
            groups: Arc::new([]),
        });
        let app = router(daemon.state.clone()).layer(MockConnectInfo(peer));
        let mut request = Request::builder().method(call.method).uri(&call.uri);
        if let Some(content_type) = call.content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(call.body)).unwrap();
        let response = tokio::time::timeout(ANSWER_TIMEOUT, app.oneshot(request))
            .await
            .expect("the API answers")
            .expect("the router is infallible");
        drop(daemon);
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(ANSWER_TIMEOUT, axum::body::to_bytes(body, usize::MAX))
            .await
            .expect("the body ends")
            .expect("the body reads");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
}

/// What every answer to `call` must be: a 2xx with JSON (JSON lines from
/// `events`), or a 4xx whose body is `{"error": "<something>"}`. A 5xx
/// would be medic failing on a request, which no request may cause here
/// (the state dir is writable).
fn judge(call: &Call, status: StatusCode, body: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    let json = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .map_err(|e| TestCaseError::fail(format!("{status}: not JSON ({e}): {text}")))
    };
    prop_assert!(
        status.is_success() || status.is_client_error(),
        "{status}: {text}"
    );
    if status.is_client_error() {
        let message = json(body)?["error"].as_str().unwrap_or_default().to_owned();
        prop_assert!(!message.trim().is_empty(), "{status}: {text}");
    } else if call.uri.starts_with("/v1/events") {
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            json(line)?;
        }
    } else {
        json(body)?;
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters, so any text can
/// be a path segment or a query value.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Any JSON value, nested a few levels, with the keys the API reads among
/// the object keys.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec!["on", "app", "for", "reason"]).prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Text that is sometimes what a field wants, sometimes anything.
fn text(likely: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(likely).prop_map(str::to_owned),
        1 => "\\PC{0,24}",
    ]
}

/// A maintenance request close enough to valid to get past the JSON
/// reader: the right keys, each with a likely or an arbitrary value.
fn maintenance_like() -> impl Strategy<Value = Value> {
    let field = |likely: &'static [&'static str]| {
        prop_oneof![
            6 => text(likely).prop_map(Value::from),
            1 => Just(Value::Null),
            1 => json(),
        ]
    };
    let keep = |chance| prop::bool::weighted(chance);
    (
        prop_oneof![9 => any::<bool>().prop_map(Value::from), 1 => json()],
        field(&[APP, APP, APP, "nope"]),
        field(&[
            "30m",
            "1s",
            "1h 30m",
            "2d",
            "0s",
            "584542046090y",
            "-1s",
            "1",
        ]),
        field(&["upgrade", ""]),
        (keep(0.95), keep(0.5), keep(0.8), keep(0.5)),
    )
        .prop_map(|(on, app, duration, reason, keep)| {
            let fields = [
                ("on", on, keep.0),
                ("app", app, keep.1),
                ("for", duration, keep.2),
                ("reason", reason, keep.3),
            ];
            Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, _, keep)| *keep)
                    .map(|(key, value, _)| (key.to_owned(), value))
                    .collect(),
            )
        })
}

/// A request body: JSON (any, or a maintenance request) or any bytes, under
/// any of the content types a client might send.
fn body() -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let bytes = prop_oneof![
        json().prop_map(|v| v.to_string().into_bytes()),
        maintenance_like().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    let content_type = prop::sample::select(vec![
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ]);
    (content_type, bytes)
}

/// An app name as a path segment: the watched one, an unknown one, any
/// text encoded, or raw characters with broken escapes (`%`, `%FF`).
fn app_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(APP.to_owned()),
        "\\PC{0,16}".prop_map(|name| encoded(&name)),
        "[a-z0-9%._~-]{0,12}",
        Just("%FF%FE".to_owned()),
    ]
}

/// A query for `events`: pairs of known or arbitrary keys and values, or
/// raw characters with broken escapes.
fn events_query() -> impl Strategy<Value = String> {
    let pair = (
        text(&["app", "follow"]),
        text(&[APP, "true", "false", "1", ""]),
    )
        .prop_map(|(key, value)| format!("{}={}", encoded(&key), encoded(&value)));
    prop_oneof![
        prop::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join("&")),
        "[a-z0-9%&=+._~-]{0,24}",
    ]
}

/// Any call to any route (and to paths and methods the API does not
/// have), from a permitted caller mostly: those reach the handlers. A
/// quarter are maintenance requests as JSON, most of them well-formed
/// enough to be acted on.
fn call() -> impl Strategy<Value = Call> {
    let root = || prop::bool::weighted(0.9);
    let maintenance = prop_oneof![
        3 => maintenance_like()
            .prop_map(|request| (Some("application/json"), request.to_string().into_bytes())),
        1 => body(),
    ];
    let anywhere =
        (route(), body(), root()).prop_map(|((method, uri), (content_type, body), root)| Call {
            method,
            uri,
            content_type,
            body,
            root,
        });
    let maintenance = (maintenance, root()).prop_map(|((content_type, body), root)| Call {
        method: Method::POST,
        uri: "/v1/maintenance".to_owned(),
        content_type,
        body,
        root,
    });
    prop_oneof![3 => anywhere, 1 => maintenance]
}

/// A method and a path (with its query): every route, paths and methods
/// the API does not have.
fn route() -> impl Strategy<Value = (Method, String)> {
    prop_oneof![
        Just((Method::GET, "/v1/status".to_owned())),
        app_segment().prop_map(|app| (Method::POST, format!("/v1/apps/{app}/check"))),
        app_segment().prop_map(|app| (Method::POST, format!("/v1/apps/{app}/recover"))),
        app_segment().prop_map(|app| (Method::POST, format!("/v1/apps/{app}/stop"))),
        app_segment().prop_map(|app| (Method::POST, format!("/v1/apps/{app}/start"))),
        app_segment().prop_map(|app| (Method::POST, format!("/v1/apps/{app}/update"))),
        Just((Method::POST, "/v1/maintenance".to_owned())),
        events_query().prop_map(|query| (Method::GET, format!("/v1/events?{query}"))),
        Just((Method::POST, "/v1/reload".to_owned())),
        (
            prop::sample::select(vec![
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
            ]),
            "(/[a-z0-9%._~-]{0,10}){0,4}",
        )
            .prop_map(|(method, path)| (method, format!("/{path}"))),
    ]
}

/// A call from root with a JSON body.
fn root_call(method: Method, uri: &str, body: &str) -> Call {
    Call {
        method,
        uri: uri.to_owned(),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        root: true,
    }
}

/// The `error` text of an answer that must be a refusal with `status`.
fn refusal(call: Call, status: StatusCode) -> String {
    let answer = answer(call);
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert_eq!(answer.status, status, "{text}");
    assert_eq!(answer.headers["content-type"], "application/json", "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    error["error"].as_str().unwrap().to_owned()
}

#[test]
fn refusals_say_why_as_json() {
    let maintenance = |body: &str| root_call(Method::POST, "/v1/maintenance", body);
    let error = refusal(maintenance("{\"on\": 1}"), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error.contains("invalid type: integer `1`, expected a boolean"),
        "{error}"
    );
    let error = refusal(maintenance("{\"on\""), StatusCode::BAD_REQUEST);
    assert!(error.contains("EOF while parsing"), "{error}");
    let error = refusal(maintenance("{\"on\": true}"), StatusCode::BAD_REQUEST);
    assert!(error.contains("give `for`"), "{error}");
    let mut untyped = maintenance("{\"on\": false}");
    untyped.content_type = None;
    let error = refusal(untyped, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(error.contains("Content-Type: application/json"), "{error}");
    let error = refusal(
        root_call(Method::POST, "/v1/apps/%FF/check", ""),
        StatusCode::BAD_REQUEST,
    );
    assert!(error.contains("UTF-8"), "{error}");
    let error = refusal(
        root_call(Method::POST, "/v1/apps/nope/recover", ""),
        StatusCode::NOT_FOUND,
    );
    assert_eq!(error, "no app `nope` is watched");
    let error = refusal(
        root_call(Method::GET, "/v2/status", ""),
        StatusCode::NOT_FOUND,
    );
    assert_eq!(error, "no route GET /v2/status");
    let error = refusal(
        root_call(Method::GET, "/v1/events?follow=maybe", ""),
        StatusCode::BAD_REQUEST,
    );
    assert!(error.contains("follow"), "{error}");
    let wrong_method = answer(root_call(Method::GET, "/v1/reload", ""));
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "POST");
    judge(
        &root_call(Method::GET, "/v1/reload", ""),
        wrong_method.status,
        &wrong_method.body,
    )
    .unwrap();
}

#[test]
fn well_formed_requests_are_answered() {
    let started = answer(root_call(
        Method::POST,
        "/v1/maintenance",
        "{\"on\": true, \"app\": \"web\", \"for\": \"30m\", \"reason\": \"upgrade\"}",
    ));
    assert_eq!(started.status, StatusCode::OK);
    let started: Value = serde_json::from_slice(&started.body).unwrap();
    assert_eq!(started["window"]["reason"], "upgrade");
    let checked = answer(root_call(Method::POST, "/v1/apps/web/check", ""));
    assert_eq!(checked.status, StatusCode::OK);
    // A stop's body may be left out; one that is given must be the request.
    let stopped = answer(root_call(Method::POST, "/v1/apps/web/stop", ""));
    assert_eq!(stopped.status, StatusCode::OK, "{:?}", stopped.body);
    let refused = refusal(
        root_call(Method::POST, "/v1/apps/web/stop", "{\"reasn\": \"disk\"}"),
        StatusCode::BAD_REQUEST,
    );
    assert!(refused.contains("unknown field `reasn`"), "{refused}");
    // A follower's stream ends with the daemon.
    let events = answer(root_call(Method::GET, "/v1/events?follow=true", ""));
    assert_eq!(events.status, StatusCode::OK);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a caller sends, the answer is a 2xx or a 4xx with an
    /// `{"error": ...}` body, within the timeout, and nothing panics.
    #[test]
    fn any_request_gets_an_answer_or_a_clear_refusal(call in call()) {
        let answer = answer(call.clone());
        judge(&call, answer.status, &answer.body)?;
        if !call.root {
            prop_assert_eq!(answer.status, StatusCode::FORBIDDEN);
        }
    }
}
