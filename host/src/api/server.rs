//! The daemon's side of the admin API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

use super::messages::{
    Done, EscalationSummary, MaintenanceAnswer, MaintenanceRequest, Refusal, ReloadAnswer,
    StatusReport, StopRequest, UpdateRequest,
};
use super::peer::Peer;
use crate::config::EscalationSettings;
use crate::hypervisor::Escalator;
use crate::journal::{self, Event, Journal, Kind};
use crate::maintenance::{Book, Window};
use crate::supervisor::{AppHandle, Command, LastCheck, UpdateOrder};

/// Everything the API reads and acts on.
pub struct ApiState {
    /// The running supervisors, by app name.
    pub apps: RwLock<BTreeMap<String, AppHandle>>,
    /// The journal, for admin actions and `events`.
    pub journal: Arc<Journal>,
    /// The escalator, for the budget in `status`.
    pub escalator: Arc<Escalator>,
    /// What `[escalation]` says, for `status`.
    pub escalation: EscalationSettings,
    /// Maintenance windows.
    pub maintenance: Arc<Book>,
    /// Where the journal is, to replay it for `events`.
    pub state_dir: PathBuf,
    /// Members of this group may call (besides root and medic's user).
    pub socket_group: Option<u32>,
    /// Where `POST /v1/reload` asks the daemon to reload, and hears back.
    pub reload: tokio::sync::mpsc::Sender<oneshot::Sender<Result<super::Changes, Vec<String>>>>,
}

type Shared = Arc<ApiState>;

/// An API error: a status and a message.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let refusal = Refusal {
            error: self.1,
            errors: Vec::new(),
        };
        (self.0, Json(refusal)).into_response()
    }
}

/// Binds the socket at `path`: its directory is created, a stale socket
/// file from a previous run is replaced (a live one is an error: another
/// medic runs), and the file is made mode 0660, group `group`.
pub fn bind(path: &Path, group: Option<u32>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!(
            "{}: another medic daemon is listening there",
            path.display()
        );
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    if let Some(gid) = group {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
            .with_context(|| format!("chgrp {} to gid {gid}", path.display()))?;
    }
    Ok(listener)
}

/// Serves the API on `listener` until the future is dropped.
pub async fn serve(listener: UnixListener, state: Shared) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .await
}

/// Every route, behind the caller check and with every refusal as
/// `{"error": ...}`; apart from the socket so the TLS listener serves the
/// same routes and tests can call it in-process (with the caller as
/// `MockConnectInfo<Peer>`).
pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/apps/{app}/check", post(check))
        .route("/v1/apps/{app}/recover", post(recover))
        .route("/v1/apps/{app}/stop", post(stop))
        .route("/v1/apps/{app}/start", post(start))
        .route("/v1/apps/{app}/update", post(update))
        .route("/v1/maintenance", post(maintenance))
        .route("/v1/events", get(events))
        .route("/v1/reload", post(reload))
        .fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            permitted,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// At most this much of a refusal's text is kept when it is rewritten as
/// JSON (axum's own refusals are a line).
const REFUSAL_TEXT_MAX: usize = 64 * 1024;

/// Gives every refusal the API's shape, `{"error": "..."}`: axum's own
/// (a body that is not the JSON a route reads, a bad query or path, a
/// wrong method, a body too large) come as plain text or empty, which a
/// client could only show as it is.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status().is_success() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REFUSAL_TEXT_MAX).await {
        Ok(bytes) if !bytes.trim_ascii().is_empty() => {
            String::from_utf8_lossy(bytes.trim_ascii()).into_owned()
        }
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("refused")
            .to_owned(),
    };
    // The refusal's other headers (`Allow` of a 405) stay.
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let (json, body) = Failure(parts.status, text).into_response().into_parts();
    parts.headers.extend(json.headers);
    Response::from_parts(parts, body)
}

/// A path the API does not have.
async fn unknown_route(request: Request) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

/// Refuses callers that are not root, medic's user or in the socket group.
async fn permitted(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    if peer.is_permitted(state.socket_group) {
        next.run(request).await
    } else {
        let caller = peer.name();
        tracing::warn!(caller, path = %request.uri().path(), "admin API: caller refused");
        Failure(
            StatusCode::FORBIDDEN,
            format!("{caller} may not use medic's admin API (root, medic's user or [daemon] socket_group only)"),
        )
        .into_response()
    }
}

fn handle(state: &ApiState, app: &str) -> Result<AppHandle, Failure> {
    state
        .apps
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(app)
        .cloned()
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no app `{app}` is watched")))
}

fn admin_action(state: &ApiState, peer: &Peer, app: Option<&str>, action: &str, extra: Value) {
    let mut detail = json!({"action": action, "by": peer.name()});
    if let (Value::Object(detail), Value::Object(extra)) = (&mut detail, extra) {
        detail.extend(extra);
    }
    state
        .journal
        .record(Event::new(app, Kind::AdminAction, detail));
}

async fn status(State(state): State<Shared>) -> Json<StatusReport> {
    let apps = state
        .apps
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .values()
        .map(|handle| handle.status.borrow().clone())
        .collect();
    Json(StatusReport {
        apps,
        escalation: EscalationSummary {
            backend: state.escalation.backend.name().to_owned(),
            resets_left: state.escalator.remaining().await,
            max_resets: state.escalation.max_resets,
            reset_window: humantime::format_duration(state.escalation.reset_window).to_string(),
        },
        maintenance: state.maintenance.snapshot(),
    })
}

async fn ask<T>(
    handle: &AppHandle,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, Failure> {
    let (reply, answer) = oneshot::channel();
    let gone = || {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the app's supervisor has stopped".to_owned(),
        )
    };
    handle
        .commands
        .send(command(reply))
        .await
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())
}

async fn check(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<LastCheck>, Failure> {
    let handle = handle(&state, &app)?;
    admin_action(&state, &peer, Some(&app), "check", json!({}));
    Ok(Json(ask(&handle, Command::CheckNow).await?))
}

async fn recover(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<Done>, Failure> {
    let handle = handle(&state, &app)?;
    act(
        &state,
        &peer,
        &app,
        handle,
        ("recover", json!({})),
        |by, reply| Command::RecoverNow { by, reply },
    )
    .await
}

/// `medic stop APP`: runs the app's `stop` and holds it stopped, across
/// restarts of medic, until `medic start APP`.
async fn stop(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(app): UrlPath<String>,
    body: bytes::Bytes,
) -> Result<Json<Done>, Failure> {
    let handle = handle(&state, &app)?;
    let StopRequest { reason } = optional_body(&body)?;
    let journaled = ("stop", json!({"reason": reason}));
    act(&state, &peer, &app, handle, journaled, |by, reply| {
        Command::Stop { by, reason, reply }
    })
    .await
}

/// `medic start APP`: runs the app's `start` and resumes supervision.
async fn start(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(app): UrlPath<String>,
) -> Result<Json<Done>, Failure> {
    let handle = handle(&state, &app)?;
    act(
        &state,
        &peer,
        &app,
        handle,
        ("start", json!({})),
        |by, reply| Command::Start { by, reply },
    )
    .await
}

/// How long an updated app may take to pass its checks unless the request
/// says.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(120);

/// `medic update APP --version V`: answers when the app is healthy on the
/// new version, or the update failed (409, after the rollback).
async fn update(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    UrlPath(app): UrlPath<String>,
    Json(request): Json<UpdateRequest>,
) -> Result<Json<Done>, Failure> {
    let handle = handle(&state, &app)?;
    let bad = |message: String| Failure(StatusCode::BAD_REQUEST, message);
    request.check_version().map_err(bad)?;
    let health_timeout = match &request.health_timeout {
        Some(text) => crate::config::parse_duration(text, Duration::from_secs(1))
            .map_err(|e| bad(format!("health_timeout: {e}")))?,
        None => DEFAULT_HEALTH_TIMEOUT,
    };
    if request.healthy_checks == Some(0) {
        return Err(bad("healthy_checks: at least 1".to_owned()));
    }
    let journaled = ("update", json!({"version": request.version}));
    let update = UpdateOrder {
        version: request.version,
        health_timeout,
        healthy_checks: request.healthy_checks,
    };
    act(&state, &peer, &app, handle, journaled, |by, reply| {
        Command::Update { by, update, reply }
    })
    .await
}

/// A body that may be left out (`curl -X POST` with none): empty is the
/// default request, anything else must be the request's JSON.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Failure> {
    if body.trim_ascii().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the request body is not the JSON expected: {e}"),
        )
    })
}

/// An admin action on one app: journaled (`action` and its detail) with
/// who asked, handed to the app's supervisor as `command`, and answered
/// with what ran, or a 409 with why nothing could.
async fn act(
    state: &ApiState,
    peer: &Peer,
    app: &str,
    handle: AppHandle,
    (action, detail): (&str, Value),
    command: impl FnOnce(String, oneshot::Sender<Result<String, String>>) -> Command,
) -> Result<Json<Done>, Failure> {
    admin_action(state, peer, Some(app), action, detail);
    let by = peer.name();
    ask(&handle, |reply| command(by, reply))
        .await?
        .map(|done| Json(Done { done }))
        .map_err(|why| Failure(StatusCode::CONFLICT, why))
}

async fn maintenance(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Json(request): Json<MaintenanceRequest>,
) -> Result<Json<MaintenanceAnswer>, Failure> {
    let app = request.app.as_deref();
    if let Some(app) = app {
        handle(&state, app)?;
    }
    let saved = |e: crate::maintenance::BookError| {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    if !request.on {
        admin_action(&state, &peer, app, "maintenance_off", json!({}));
        let ended = state.maintenance.end(app).map_err(saved)?;
        if let Some(window) = &ended {
            state.journal.record(Event::new(
                app,
                Kind::MaintenanceEnded,
                json!({"why": "ended by an admin", "by": peer.name(), "reason": window.reason}),
            ));
        }
        return Ok(Json(MaintenanceAnswer::Ended {
            ended: ended.is_some(),
        }));
    }
    let text = request.duration.as_deref().ok_or_else(|| {
        Failure(
            StatusCode::BAD_REQUEST,
            "maintenance needs an end: give `for` (e.g. 30m)".to_owned(),
        )
    })?;
    let duration = crate::config::parse_duration(text, Duration::from_secs(1))
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e))?;
    let until = SystemTime::now().checked_add(duration).ok_or_else(|| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is too far ahead"),
        )
    })?;
    let window = Window {
        until,
        reason: request.reason.unwrap_or_default(),
        by: peer.name(),
    };
    admin_action(&state, &peer, app, "maintenance_on", json!({"for": text}));
    state
        .maintenance
        .start(app, window.clone())
        .map_err(saved)?;
    state.journal.record(Event::new(
        app,
        Kind::MaintenanceStarted,
        serde_json::to_value(&window).unwrap_or(Value::Null),
    ));
    Ok(Json(MaintenanceAnswer::Started { window }))
}

async fn reload(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Result<Json<ReloadAnswer>, Response> {
    admin_action(&state, &peer, None, "reload", json!({}));
    let (reply, answer) = oneshot::channel();
    let gone = || {
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down".to_owned(),
        )
        .into_response()
    };
    state.reload.send(reply).await.map_err(|_| gone())?;
    match answer.await.map_err(|_| gone())? {
        Ok(applied) => Ok(Json(ReloadAnswer { applied })),
        Err(errors) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Refusal {
                error: errors.join("\n"),
                errors,
            }),
        )
            .into_response()),
    }
}

/// `GET /v1/events`: which events, as `medic events` asks for them.
#[derive(serde::Deserialize)]
struct EventsQuery {
    app: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    /// RFC 3339.
    until: Option<String>,
    /// Kinds, comma-separated.
    kind: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    follow: bool,
}

impl EventsQuery {
    /// The journal filter, or a 400 naming the bad parameter.
    fn filter(&self) -> Result<journal::Filter, Failure> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Failure(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
        };
        let time = |what: &str, text: &Option<String>| {
            text.as_deref()
                .map(humantime::parse_rfc3339)
                .transpose()
                .map_err(|e| bad(what, &e))
        };
        let kinds = match &self.kind {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|k| k.parse::<Kind>().map_err(|e| bad("kind", &e)))
                .collect::<Result<_, _>>()?,
        };
        Ok(journal::Filter {
            app: self.app.clone(),
            kinds,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit,
        })
    }
}

/// How many lines the journal reader may have ready before it waits for
/// the client: the reply is streamed, so its size costs no memory.
const EVENTS_AHEAD: usize = 256;

/// The journal as JSON lines; with `follow`, new events follow as they are
/// written. The follower subscribes before the replay, so nothing written in
/// between is lost; what both would send is sent once. The replay is read
/// on a blocking thread and streamed, so neither the history's size nor a
/// slow client holds memory or the runtime.
async fn events(
    State(state): State<Shared>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, Failure> {
    use futures_util::StreamExt as _;
    let filter = query.filter()?;
    let subscribed = SystemTime::now() - std::time::Duration::from_secs(1);
    let live = query.follow.then(|| state.journal.follow());
    // Lines the follower may see again: those written since it subscribed.
    let recent = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (lines, replay) = tokio::sync::mpsc::channel::<bytes::Bytes>(EVENTS_AHEAD);
    let state_dir = state.state_dir.clone();
    let reader_filter = filter.clone();
    let seen = recent.clone();
    tokio::task::spawn_blocking(move || {
        let sent = journal::query(&state_dir, &reader_filter, |event| {
            let line = line(&event);
            if event.ts >= subscribed {
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(line.clone());
            }
            // A client that went away ends the reply; nothing to do then.
            let _ = lines.blocking_send(line);
        });
        if let Err(e) = sent {
            tracing::warn!("events: {e}");
        }
    });
    let replay = tokio_stream_of(replay);
    let Some(live) = live else {
        return Ok(Body::from_stream(replay).into_response());
    };
    let follow = futures_util::stream::unfold(live, move |mut live| {
        let filter = filter.clone();
        let recent = recent.clone();
        async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match live.recv().await {
                    Ok(event) if filter.matches(&event) => {
                        let line = line(&event);
                        let again = recent
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .contains(&line);
                        if !again {
                            return Some((Ok(line), live));
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Body::from_stream(replay.chain(follow)).into_response())
}

/// The lines a channel receives, as a body stream.
fn tokio_stream_of(
    mut lines: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> {
    futures_util::stream::poll_fn(move |cx| lines.poll_recv(cx).map(|line| line.map(Ok)))
}

/// One event as a JSON line, exactly as the journal file has it.
fn line(event: &Event) -> bytes::Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    bytes::Bytes::from(line)
}
