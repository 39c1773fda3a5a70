//! A fake of the vSphere Automation REST API: the simulator has none.
//!
//! It serves, over plain HTTP on 127.0.0.1, just what the backend uses:
//! `POST`/`DELETE /api/session` (basic auth, `vmware-api-session-id`),
//! `GET /api/vcenter/vm[?names=]`, `GET /api/vcenter/vm/{vm}`,
//! `GET /api/vcenter/vm/{vm}/power` and `POST /api/vcenter/vm/{vm}/power?action=reset`,
//! with the answers and error bodies (`error_type`, `messages`) of `/api`.
//! It keeps power state, open sessions and a count of resets so tests can
//! check what the backend did.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::json;

/// One VM of the fake.
#[derive(Debug, Clone)]
pub struct FakeVm {
    /// Display name.
    pub name: String,
    /// BIOS uuid, reported as `identity.bios_uuid`.
    pub bios_uuid: String,
    /// "POWERED_ON", "POWERED_OFF" or "SUSPENDED".
    pub power: String,
}

/// What the fake holds and has seen.
#[derive(Debug, Default)]
pub struct FakeState {
    /// VMs by id.
    pub vms: BTreeMap<String, FakeVm>,
    /// Open session tokens.
    pub sessions: HashSet<String>,
    /// Sessions created so far.
    pub sessions_created: usize,
    /// Resets performed so far.
    pub resets: usize,
    /// When set, every request gets 503 service_unavailable.
    pub unavailable: bool,
    next_token: u64,
}

/// A running fake; the server task ends with the test's runtime.
pub struct RestFake {
    /// Base URL, e.g. "http://127.0.0.1:PORT/sdk" (the path is ignored by REST).
    pub url: String,
    /// Shared state, for setting up and checking.
    pub state: Arc<Mutex<FakeState>>,
}

/// The VM the fake starts with powered on.
pub const VM_ON: (&str, &str, &str) = ("vm-42", "web-1", "4213f7b2-6a0c-a1b2-c3d4-0123456789ab");
/// The VM the fake starts with powered off.
pub const VM_OFF: (&str, &str, &str) = ("vm-43", "db-1", "42137a5e-1111-2222-3333-444455556666");

type Shared = Arc<Mutex<FakeState>>;

impl RestFake {
    /// Starts the fake with `VM_ON` powered on and `VM_OFF` powered off.
    pub async fn start() -> Self {
        let mut state = FakeState::default();
        for ((id, name, uuid), power) in [(VM_ON, "POWERED_ON"), (VM_OFF, "POWERED_OFF")] {
            state.vms.insert(
                id.to_string(),
                FakeVm {
                    name: name.to_string(),
                    bios_uuid: uuid.to_string(),
                    power: power.to_string(),
                },
            );
        }
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/api/session", post(create_session).delete(delete_session))
            .route("/api/vcenter/vm", get(list_vms))
            .route("/api/vcenter/vm/{vm}", get(get_vm))
            .route(
                "/api/vcenter/vm/{vm}/power",
                get(get_power).post(power_action),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/sdk"),
            state,
        }
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

/// An `/api` error answer.
fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "error_type": error_type,
            "messages": [{"id": "fake", "default_message": message, "args": []}]
        })),
    )
        .into_response()
}

/// The answer refusing a request: 503 when the fake plays unavailable, 401 without a valid session.
fn rejection(state: &FakeState, headers: &HeaderMap) -> Option<Response> {
    if state.unavailable {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "fake is unavailable",
        ));
    }
    let token = headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !state.sessions.contains(token) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "no valid session",
        ));
    }
    None
}

async fn create_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    if state.unavailable {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "fake is unavailable",
        );
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            super::USER,
            super::PASSWORD
        ))
    );
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given != expected {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Authentication required.",
        );
    }
    state.next_token += 1;
    let token = format!("fake-session-{}", state.next_token);
    state.sessions.insert(token.clone());
    state.sessions_created += 1;
    (StatusCode::CREATED, Json(json!(token))).into_response()
}

async fn delete_session(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    if let Some(response) = rejection(&state, &headers) {
        return response;
    }
    let token = headers
        .get("vmware-api-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    state.sessions.remove(&token);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_vms(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = state.lock().unwrap();
    if let Some(response) = rejection(&state, &headers) {
        return response;
    }
    let names: Option<HashSet<&str>> = query.get("names").map(|n| n.split(',').collect());
    let list: Vec<_> = state
        .vms
        .iter()
        .filter(|(_, vm)| names.as_ref().is_none_or(|n| n.contains(vm.name.as_str())))
        .map(|(id, vm)| json!({"vm": id, "name": vm.name, "power_state": vm.power, "cpu_count": 1, "memory_size_MiB": 1024}))
        .collect();
    Json(list).into_response()
}

/// Answers with `render(vm)` for a known VM and an authenticated caller.
fn with_vm(
    state: &Shared,
    headers: &HeaderMap,
    vm: &str,
    render: impl FnOnce(&FakeVm) -> Response,
) -> Response {
    let state = state.lock().unwrap();
    if let Some(response) = rejection(&state, headers) {
        return response;
    }
    match state.vms.get(vm) {
        Some(info) => render(info),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "VM not found"),
    }
}

async fn get_vm(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    with_vm(&state, &headers, &vm, |info| {
        Json(json!({
            "name": info.name,
            "power_state": info.power,
            "guest_OS": "OTHER_LINUX_64",
            "identity": {"name": info.name, "bios_uuid": info.bios_uuid, "instance_uuid": "5013aaaa-0000-0000-0000-000000000000"},
        }))
        .into_response()
    })
}

async fn get_power(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(vm): Path<String>,
) -> Response {
    with_vm(&state, &headers, &vm, |info| {
        Json(json!({"state": info.power})).into_response()
    })
}

async fn power_action(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(vm): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut state = state.lock().unwrap();
    if let Some(response) = rejection(&state, &headers) {
        return response;
    }
    if query.get("action").map(String::as_str) != Some("reset") {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "only reset is faked",
        );
    }
    let Some(info) = state.vms.get(&vm) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "VM not found");
    };
    if info.power != "POWERED_ON" {
        return error(
            StatusCode::BAD_REQUEST,
            "NOT_ALLOWED_IN_CURRENT_STATE",
            "The attempted operation cannot be performed in the current state (Powered off).",
        );
    }
    state.resets += 1;
    StatusCode::NO_CONTENT.into_response()
}
