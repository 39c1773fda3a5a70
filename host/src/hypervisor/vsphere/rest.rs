//! The vSphere Automation REST client (`/api`, vSphere 7.0 U2 and later):
//! one session per operation, deleted at the end.
//!
//! The REST API has no search by BIOS uuid, so `uuid:` and `auto` list the
//! VMs and read each one's `identity.bios_uuid` (one request per VM), and
//! `path:` searches by the path's last segment (the VM name) and refuses an
//! ambiguous name.

use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::credentials::Credentials;
use crate::hypervisor::{ErrorKind, HypervisorError, PowerState};

use super::errors::{snippet, transport_error};
use super::target::{FoundVm, VmTarget};

/// Header carrying the session token.
const SESSION_HEADER: &str = "vmware-api-session-id";

/// Talks REST to one vCenter with one set of credentials.
#[derive(Debug)]
pub(super) struct RestClient {
    http: reqwest::Client,
    /// Scheme, host and port of the configured URL; paths are set per request.
    base: reqwest::Url,
    credentials: Credentials,
}

/// A session; end it with [`RestSession::logout`].
#[derive(Debug)]
pub(super) struct RestSession<'a> {
    client: &'a RestClient,
    token: String,
}

/// An entry of `GET /api/vcenter/vm`.
#[derive(Debug, Deserialize)]
struct VmSummary {
    vm: String,
    name: String,
}

/// The parts of `GET /api/vcenter/vm/{vm}` medic reads.
#[derive(Debug, Deserialize)]
struct VmInfo {
    name: String,
    identity: Option<VmIdentity>,
}

/// `identity` of a VM (vSphere 7.0 U1 and later).
#[derive(Debug, Deserialize)]
struct VmIdentity {
    bios_uuid: Option<String>,
}

/// `GET /api/vcenter/vm/{vm}/power`.
#[derive(Debug, Deserialize)]
struct PowerInfo {
    state: String,
}

/// An error answer: `/api` uses `error_type`, the older `/rest` shape `type` + `value`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error_type: Option<String>,
    #[serde(rename = "type")]
    legacy_type: Option<String>,
    #[serde(default)]
    messages: Vec<ErrorMessage>,
    value: Option<Box<ErrorBody>>,
}

/// One message of an error answer.
#[derive(Debug, Deserialize)]
struct ErrorMessage {
    default_message: Option<String>,
}

impl RestClient {
    /// A client for the vCenter whose SOAP URL is `url`; only its scheme, host and port are used.
    pub(super) fn new(http: reqwest::Client, url: &reqwest::Url, credentials: Credentials) -> Self {
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        Self {
            http,
            base,
            credentials,
        }
    }

    /// `POST /api/session` with basic auth.
    pub(super) async fn login(&self) -> Result<RestSession<'_>, HypervisorError> {
        let what = format!("creating a REST session as {}", self.credentials.username);
        let url = self.url(&["api", "session"])?;
        let answer = self
            .http
            .post(url)
            .basic_auth(
                &self.credentials.username,
                Some(self.credentials.password.expose_secret()),
            )
            .send()
            .await
            .map_err(|err| transport_error(&err, &what))?;
        let body = read_success(answer, &what).await?;
        let value: serde_json::Value = parse_json(&body, &what)?;
        let token = match &value {
            serde_json::Value::String(token) => Some(token.clone()),
            serde_json::Value::Object(map) => map
                .get("value")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            _ => None,
        }
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            HypervisorError::new(
                ErrorKind::Protocol,
                format!("{what}: no session id in {}", snippet(&body)),
            )
        })?;
        tracing::debug!(url = %self.base, "vSphere REST session opened");
        Ok(RestSession {
            client: self,
            token,
        })
    }

    /// The base URL with these path segments (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, HypervisorError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                HypervisorError::new(
                    ErrorKind::Protocol,
                    format!("{} cannot take a path", self.base),
                )
            })?
            .clear()
            .extend(segments);
        Ok(url)
    }
}

impl RestSession<'_> {
    /// `DELETE /api/session`; a failure is only logged.
    pub(super) async fn logout(self) {
        let result = async {
            let url = self.client.url(&["api", "session"])?;
            let answer = self
                .client
                .http
                .delete(url)
                .header(SESSION_HEADER, &self.token)
                .send()
                .await
                .map_err(|err| transport_error(&err, "deleting the REST session"))?;
            read_success(answer, "deleting the REST session").await
        }
        .await;
        match result {
            Ok(_) => tracing::debug!("vSphere REST session deleted"),
            Err(err) => tracing::warn!(error = %err, "vSphere REST logout failed"),
        }
    }

    /// Finds the VM and its name.
    pub(super) async fn locate(&self, target: &VmTarget) -> Result<FoundVm, HypervisorError> {
        match target {
            VmTarget::Moref(moref) => {
                let info = self.vm_info(moref).await?;
                Ok(FoundVm {
                    id: moref.clone(),
                    name: info.name,
                })
            }
            VmTarget::Path(path) => {
                let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path);
                self.locate_by_name(name, target).await
            }
            VmTarget::Name(name) => self.locate_by_name(name, target).await,
            VmTarget::Uuids(uuids) => {
                let url = self.client.url(&["api", "vcenter", "vm"])?;
                let list: Vec<VmSummary> = self.get_json(url, "listing VMs").await?;
                let mut seen_identity = false;
                for summary in list {
                    let info = self.vm_info(&summary.vm).await?;
                    let Some(bios) = info.identity.and_then(|i| i.bios_uuid) else {
                        continue;
                    };
                    seen_identity = true;
                    if uuids.iter().any(|u| u.eq_ignore_ascii_case(bios.trim())) {
                        return Ok(FoundVm {
                            id: summary.vm,
                            name: info.name,
                        });
                    }
                }
                let mut err = not_found(target);
                if !seen_identity {
                    err.message.push_str(
                        " (no VM reported identity.bios_uuid: this vCenter may be older than 7.0 U1; use moref: or the SOAP API)",
                    );
                }
                Err(err)
            }
        }
    }

    /// The one VM named `name` (REST searches by name only), for `target`.
    async fn locate_by_name(
        &self,
        name: &str,
        target: &VmTarget,
    ) -> Result<FoundVm, HypervisorError> {
        let mut url = self.client.url(&["api", "vcenter", "vm"])?;
        url.query_pairs_mut().append_pair("names", name);
        let list: Vec<VmSummary> = self
            .get_json(url, &format!("listing VMs named {name}"))
            .await?;
        match <[VmSummary; 1]>::try_from(list) {
            Ok([vm]) => Ok(FoundVm {
                id: vm.vm,
                name: vm.name,
            }),
            Err(list) if list.is_empty() => Err(not_found(target)),
            Err(list) => Err(HypervisorError::new(
                ErrorKind::NotFound,
                format!(
                    "{} VMs are named {name:?}; REST cannot tell which is the {}: use moref: or uuid:",
                    list.len(),
                    target.describe()
                ),
            )),
        }
    }

    /// `GET /api/vcenter/vm/{vm}/power`.
    pub(super) async fn power_state(&self, vm: &FoundVm) -> Result<PowerState, HypervisorError> {
        let url = self
            .client
            .url(&["api", "vcenter", "vm", &vm.id, "power"])?;
        let info: PowerInfo = self
            .get_json(url, &format!("reading the power state of {vm}"))
            .await?;
        Ok(match info.state.as_str() {
            "POWERED_ON" => PowerState::On,
            "POWERED_OFF" => PowerState::Off,
            "SUSPENDED" => PowerState::Suspended,
            _ => PowerState::Unknown,
        })
    }

    /// `POST /api/vcenter/vm/{vm}/power?action=reset`.
    pub(super) async fn reset(&self, vm: &FoundVm) -> Result<String, HypervisorError> {
        let what = format!("resetting {vm}");
        let mut url = self
            .client
            .url(&["api", "vcenter", "vm", &vm.id, "power"])?;
        url.query_pairs_mut().append_pair("action", "reset");
        let answer = self
            .client
            .http
            .post(url)
            .header(SESSION_HEADER, &self.token)
            .send()
            .await
            .map_err(|err| transport_error(&err, &what))?;
        let status = answer.status();
        read_success(answer, &what).await?;
        tracing::info!(vm = %vm, "vSphere REST reset done");
        Ok(format!(
            "REST power reset of {vm} answered HTTP {}",
            status.as_u16()
        ))
    }

    /// `GET /api/vcenter/vm/{vm}`.
    async fn vm_info(&self, id: &str) -> Result<VmInfo, HypervisorError> {
        let url = self.client.url(&["api", "vcenter", "vm", id])?;
        self.get_json(url, &format!("reading VM {id}")).await
    }

    /// A GET within the session, its JSON answer decoded.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
        what: &str,
    ) -> Result<T, HypervisorError> {
        let answer = self
            .client
            .http
            .get(url)
            .header(SESSION_HEADER, &self.token)
            .send()
            .await
            .map_err(|err| transport_error(&err, what))?;
        let body = read_success(answer, what).await?;
        parse_json(&body, what)
    }
}

/// The body of a 2xx answer, or the error the answer stands for.
async fn read_success(answer: reqwest::Response, what: &str) -> Result<String, HypervisorError> {
    let status = answer.status();
    let body = answer
        .text()
        .await
        .map_err(|err| transport_error(&err, what))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(rest_error(status, &body, what))
    }
}

/// Decodes JSON, or names what could not be read.
fn parse_json<T: serde::de::DeserializeOwned>(
    body: &str,
    what: &str,
) -> Result<T, HypervisorError> {
    serde_json::from_str(body).map_err(|err| {
        HypervisorError::new(
            ErrorKind::Protocol,
            format!("{what}: unexpected answer ({err}): {}", snippet(body)),
        )
    })
}

/// The error an HTTP error answer stands for.
fn rest_error(status: reqwest::StatusCode, body: &str, what: &str) -> HypervisorError {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let (error_type, messages) = match (&parsed.error_type, &parsed.legacy_type, &parsed.value) {
        (Some(t), _, _) => (t.clone(), &parsed.messages),
        (None, Some(t), Some(value)) => (t.clone(), &value.messages),
        (None, Some(t), None) => (t.clone(), &parsed.messages),
        (None, None, _) => (String::new(), &parsed.messages),
    };
    let message: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.default_message.as_deref())
        .collect();
    let normalized = error_type
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let kind = match normalized.as_str() {
        "NOT_ALLOWED_IN_CURRENT_STATE" => ErrorKind::WrongPowerState,
        "UNAUTHENTICATED" | "UNAUTHORIZED" => ErrorKind::BadCredentials,
        "NOT_FOUND" => ErrorKind::NotFound,
        // A power operation already running, a host briefly disconnected.
        "RESOURCE_BUSY" | "RESOURCE_INACCESSIBLE" | "SERVICE_UNAVAILABLE" => ErrorKind::ServerError,
        _ if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN =>
        {
            ErrorKind::BadCredentials
        }
        _ if status == reqwest::StatusCode::NOT_FOUND => ErrorKind::NotFound,
        _ if status.is_server_error() => ErrorKind::ServerError,
        "" => ErrorKind::Protocol,
        _ => ErrorKind::Failed,
    };
    let detail = if message.is_empty() {
        snippet(body)
    } else {
        message.join("; ")
    };
    let error_type = if error_type.is_empty() {
        String::new()
    } else {
        format!(" {error_type}")
    };
    HypervisorError::new(
        kind,
        format!("{what}: HTTP {}{error_type}: {detail}", status.as_u16()),
    )
}

/// "Not found" naming what was searched for.
fn not_found(target: &VmTarget) -> HypervisorError {
    HypervisorError::new(
        ErrorKind::NotFound,
        format!("no VM with {} on the server", target.describe()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn not_allowed_in_current_state_both_shapes() {
        let new = r#"{"error_type":"NOT_ALLOWED_IN_CURRENT_STATE","messages":[{"id":"x","default_message":"VM is off","args":[]}]}"#;
        let err = rest_error(StatusCode::BAD_REQUEST, new, "reset");
        assert_eq!(err.kind, ErrorKind::WrongPowerState);
        assert!(err.message.contains("VM is off"));
        let old = r#"{"type":"com.vmware.vapi.std.errors.not_allowed_in_current_state","value":{"messages":[{"default_message":"off"}]}}"#;
        assert_eq!(
            rest_error(StatusCode::BAD_REQUEST, old, "reset").kind,
            ErrorKind::WrongPowerState
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            rest_error(StatusCode::UNAUTHORIZED, "", "x").kind,
            ErrorKind::BadCredentials
        );
        assert_eq!(
            rest_error(StatusCode::NOT_FOUND, "{}", "x").kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            rest_error(StatusCode::SERVICE_UNAVAILABLE, "oops", "x").kind,
            ErrorKind::ServerError
        );
        assert_eq!(
            rest_error(
                StatusCode::BAD_REQUEST,
                r#"{"error_type":"INVALID_ARGUMENT"}"#,
                "x"
            )
            .kind,
            ErrorKind::Failed
        );
        assert_eq!(
            rest_error(
                StatusCode::BAD_REQUEST,
                r#"{"error_type":"RESOURCE_BUSY"}"#,
                "x"
            )
            .kind,
            ErrorKind::ServerError
        );
        assert_eq!(
            rest_error(StatusCode::BAD_REQUEST, "<html>", "x").kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn base_keeps_scheme_host_port() {
        let url = reqwest::Url::parse("https://vc.example:8443/sdk?x=1").unwrap();
        let client = RestClient::new(
            reqwest::Client::new(),
            &url,
            Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        let url = client.url(&["api", "vcenter", "vm", "vm 1/x"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://vc.example:8443/api/vcenter/vm/vm%201%2Fx"
        );
    }
}
