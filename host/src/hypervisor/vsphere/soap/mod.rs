//! The vim25 SOAP client: one session per operation, logged out at the end.

mod inventory;
mod requests;
mod response;

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::credentials::Credentials;
use crate::hypervisor::{ErrorKind, HypervisorError, PowerState};

use super::errors::{snippet, status_error, transport_error};
use super::target::{FoundVm, VmTarget};
use crate::hypervisor::xml::Element;
use response::{Answer, properties, returnval};

pub(super) use inventory::Power;

/// The vim25 version sent in `SOAPAction`; 6.5 is understood from vSphere 6.5 to 8.
const SOAP_ACTION: &str = "urn:vim25/6.5";

/// First and longest pause between two reads of a running task's state.
const TASK_POLL_FIRST: Duration = Duration::from_millis(200);
const TASK_POLL_MAX: Duration = Duration::from_secs(1);

/// Talks vim25 to one endpoint with one set of credentials.
#[derive(Debug)]
pub(super) struct SoapClient {
    http: reqwest::Client,
    url: reqwest::Url,
    credentials: Credentials,
}

/// Where the managers medic uses live (their managed object ids).
#[derive(Debug, Clone)]
struct ServiceContent {
    session_manager: String,
    search_index: String,
    property_collector: String,
    view_manager: String,
    root_folder: String,
}

/// A logged-in session; end it with [`Session::logout`].
#[derive(Debug)]
pub(super) struct Session<'a> {
    client: &'a SoapClient,
    cookie: String,
    content: ServiceContent,
}

impl SoapClient {
    /// A client for the SOAP endpoint `url` (e.g. `https://vcenter/sdk`).
    pub(super) fn new(http: reqwest::Client, url: reqwest::Url, credentials: Credentials) -> Self {
        Self {
            http,
            url,
            credentials,
        }
    }

    /// Reads the service content and logs in.
    pub(super) async fn login(&self) -> Result<Session<'_>, HypervisorError> {
        let (_, response) = self
            .call(
                None,
                "RetrieveServiceContent",
                requests::retrieve_service_content(),
            )
            .await?;
        let content = service_content(&response)?;
        let what = format!("Login as {}", self.credentials.username);
        let (headers, _) = self
            .call(
                None,
                &what,
                requests::login(
                    &content.session_manager,
                    &self.credentials.username,
                    self.credentials.password.expose_secret(),
                ),
            )
            .await?;
        let cookie = session_cookie(&headers).ok_or_else(|| {
            HypervisorError::new(
                ErrorKind::Protocol,
                format!("{what}: the server set no session cookie"),
            )
        })?;
        tracing::debug!(url = %self.url, "vSphere SOAP session opened");
        Ok(Session {
            client: self,
            cookie,
            content,
        })
    }

    /// Sends one request; returns the answer's headers and response element,
    /// or the error its fault or status stands for.
    async fn call(
        &self,
        cookie: Option<&str>,
        what: &str,
        body: String,
    ) -> Result<(reqwest::header::HeaderMap, Element), HypervisorError> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", SOAP_ACTION)
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let answer = request
            .send()
            .await
            .map_err(|err| transport_error(&err, what))?;
        let status = answer.status();
        let headers = answer.headers().clone();
        let text = answer
            .text()
            .await
            .map_err(|err| transport_error(&err, what))?;
        match response::read_answer(&text) {
            Ok(Answer::Fault(fault)) => Err(response::fault_error(&fault, what)),
            Ok(Answer::Response(element)) if status.is_success() => Ok((headers, element)),
            Ok(Answer::Response(_)) => Err(status_error(status, what, &text)),
            Err(_) if !status.is_success() => Err(status_error(status, what, &text)),
            Err(reason) => Err(HypervisorError::new(
                ErrorKind::Protocol,
                format!(
                    "{what}: unreadable SOAP answer ({reason}): {}",
                    snippet(&text)
                ),
            )),
        }
    }
}

impl Session<'_> {
    /// Logs out; a failure is only logged, since the operation's own result matters more.
    pub(super) async fn logout(self) {
        let request = requests::logout(&self.content.session_manager);
        match self.call("Logout", request).await {
            Ok(_) => tracing::debug!("vSphere SOAP session closed"),
            Err(err) => tracing::warn!(error = %err, "vSphere SOAP logout failed"),
        }
    }

    /// Finds the VM and reads its name (which also proves a moref exists).
    pub(super) async fn locate(&self, target: &VmTarget) -> Result<FoundVm, HypervisorError> {
        let id = match target {
            VmTarget::Moref(moref) => moref.clone(),
            VmTarget::Uuids(uuids) => {
                let mut found = None;
                for uuid in uuids {
                    let request = requests::find_by_uuid(&self.content.search_index, uuid);
                    let (_, response) = self.call(&format!("FindByUuid {uuid}"), request).await?;
                    if let Some(vm) = optional_ref(&response) {
                        found = Some(vm);
                        break;
                    }
                }
                found.ok_or_else(|| not_found(target))?
            }
            VmTarget::Path(path) => {
                let request = requests::find_by_inventory_path(&self.content.search_index, path);
                let (_, response) = self
                    .call(&format!("FindByInventoryPath {path}"), request)
                    .await?;
                optional_ref(&response).ok_or_else(|| not_found(target))?
            }
            VmTarget::Name(name) => return self.find_by_name(name).await,
        };
        let props = self.read("VirtualMachine", &id, &["name"]).await?;
        let name = props
            .get("name")
            .map(|v| v.value().to_string())
            .ok_or_else(|| {
                HypervisorError::new(
                    ErrorKind::Protocol,
                    format!("{id}: the server returned no name"),
                )
            })?;
        Ok(FoundVm { id, name })
    }

    /// Reads `runtime.powerState`.
    pub(super) async fn power_state(&self, vm: &FoundVm) -> Result<PowerState, HypervisorError> {
        let props = self
            .read("VirtualMachine", &vm.id, &["runtime.powerState"])
            .await?;
        let state = props
            .get("runtime.powerState")
            .map(Element::value)
            .ok_or_else(|| {
                HypervisorError::new(
                    ErrorKind::Protocol,
                    format!("{vm}: the server returned no runtime.powerState"),
                )
            })?;
        Ok(power_state_of(state))
    }

    /// Starts `ResetVM_Task` and waits for the task to end.
    pub(super) async fn reset(&self, vm: &FoundVm) -> Result<String, HypervisorError> {
        self.run_task(vm, "ResetVM_Task").await
    }

    /// Runs `method` (a `VirtualMachine` method that ends in a task and
    /// takes no argument) on `vm` and waits for its task to end.
    async fn run_task(&self, vm: &FoundVm, method: &str) -> Result<String, HypervisorError> {
        let what = format!("{method} on {vm}");
        let (_, response) = self
            .call(&what, requests::vm_method(method, &vm.id))
            .await?;
        let task = returnval(&response, &what)?.to_string();
        tracing::info!(vm = %vm, task = %task, method, "vSphere task started");
        self.wait_for_task(&task, &what, None).await?;
        Ok(format!("task {task} succeeded ({what})"))
    }

    /// Polls the task's `info.state` until it is `success` (giving its
    /// `info.result`, if any) or `error`; a `Timeout` once `deadline` has
    /// passed, with the task left running.
    async fn wait_for_task(
        &self,
        task: &str,
        what: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Element>, HypervisorError> {
        let mut pause = TASK_POLL_FIRST;
        loop {
            let mut props = self
                .read("Task", task, &["info.state", "info.error", "info.result"])
                .await?;
            let state = props.get("info.state").map(Element::value).unwrap_or("");
            match state {
                "success" => return Ok(props.remove("info.result")),
                "error" => return Err(task_error(task, what, props.get("info.error"))),
                "queued" | "running" => {
                    if deadline.is_some_and(|deadline| Instant::now() + pause > deadline) {
                        return Err(HypervisorError::new(
                            ErrorKind::Timeout,
                            format!("{what}: task {task} did not end in time"),
                        ));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(TASK_POLL_MAX);
                }
                other => {
                    return Err(HypervisorError::new(
                        ErrorKind::Protocol,
                        format!("{what}: task {task} is in unknown state {other:?}"),
                    ));
                }
            }
        }
    }

    /// Reads some properties of one object.
    async fn read(
        &self,
        object_type: &str,
        id: &str,
        paths: &[&str],
    ) -> Result<std::collections::HashMap<String, Element>, HypervisorError> {
        let what = format!("reading {} of {object_type} {id}", paths.join(", "));
        let request =
            requests::retrieve_properties(&self.content.property_collector, object_type, id, paths);
        let (_, response) = self.call(&what, request).await?;
        properties(&response, &what)
    }

    /// Sends one request within this session.
    async fn call(
        &self,
        what: &str,
        body: String,
    ) -> Result<(reqwest::header::HeaderMap, Element), HypervisorError> {
        self.client.call(Some(&self.cookie), what, body).await
    }
}

/// What vSphere's `VirtualMachinePowerState` stands for.
fn power_state_of(state: &str) -> PowerState {
    match state {
        "poweredOn" => PowerState::On,
        "poweredOff" => PowerState::Off,
        "suspended" => PowerState::Suspended,
        _ => PowerState::Unknown,
    }
}

/// Picks the manager ids out of `RetrieveServiceContentResponse`.
fn service_content(response: &Element) -> Result<ServiceContent, HypervisorError> {
    let field = |name: &str| {
        response
            .path(&["returnval", name])
            .map(|e| e.value().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                HypervisorError::new(
                    ErrorKind::Protocol,
                    format!("RetrieveServiceContent: the answer names no {name}"),
                )
            })
    };
    Ok(ServiceContent {
        session_manager: field("sessionManager")?,
        search_index: field("searchIndex")?,
        property_collector: field("propertyCollector")?,
        view_manager: field("viewManager")?,
        root_folder: field("rootFolder")?,
    })
}

/// The session cookie(s) set by Login, as a `Cookie` header value.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let pairs: Vec<&str> = headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// The `returnval` managed object id of a search, if it found something.
fn optional_ref(response: &Element) -> Option<String> {
    response
        .child("returnval")
        .map(|e| e.value().to_string())
        .filter(|v| !v.is_empty())
}

/// "Not found" naming what was searched for.
fn not_found(target: &VmTarget) -> HypervisorError {
    HypervisorError::new(
        ErrorKind::NotFound,
        format!("no VM with {} on the server", target.describe()),
    )
}

/// The error a failed task stands for: InvalidPowerState is its own kind.
fn task_error(task: &str, what: &str, error: Option<&Element>) -> HypervisorError {
    let fault = error.and_then(|e| e.child("fault"));
    let name = fault
        .and_then(|f| f.xsi_type.clone())
        .unwrap_or_else(|| "unknown fault".to_string());
    let message = error
        .and_then(|e| e.child("localizedMessage"))
        .map(|m| m.value().to_string())
        .unwrap_or_default();
    let kind = if name == "InvalidPowerState" {
        ErrorKind::WrongPowerState
    } else {
        ErrorKind::Failed
    };
    HypervisorError::new(
        kind,
        format!("{what}: task {task} failed: {name}: {message}"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};

    #[test]
    fn session_cookie_keeps_name_and_value_only() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static(r#"vmware_soap_session="52ab"; Path=/; HttpOnly; Secure;"#),
        );
        assert_eq!(
            session_cookie(&headers).unwrap(),
            r#"vmware_soap_session="52ab""#
        );
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
