//! The admin API's calls, typed: each route once, with the request and
//! answer types of [`super::messages`], for the CLI verbs and the unit
//! controller alike.

use hyper::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::client::{Client, ClientError};
use super::messages::{
    Changes, Done, MaintenanceAnswer, MaintenanceRequest, ReloadAnswer, StatusReport, StopRequest,
    UpdateRequest,
};
use crate::supervisor::LastCheck;

impl Client {
    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        self.typed(Method::GET, "/v1/status", None).await
    }

    /// `POST /v1/apps/{app}/check`: a check now, through the app's ladder.
    pub async fn check(&self, app: &str) -> Result<LastCheck, ClientError> {
        self.typed(Method::POST, &app_route(app, "check"), None)
            .await
    }

    /// `POST /v1/apps/{app}/recover`: local recovery now.
    pub async fn recover(&self, app: &str) -> Result<Done, ClientError> {
        self.typed(Method::POST, &app_route(app, "recover"), None)
            .await
    }

    /// `POST /v1/apps/{app}/stop`: stop the app and hold it stopped.
    pub async fn stop(&self, app: &str, request: &StopRequest) -> Result<Done, ClientError> {
        let body = encode(request)?;
        self.typed(Method::POST, &app_route(app, "stop"), Some(&body))
            .await
    }

    /// `POST /v1/apps/{app}/update`: update the app to a version; answers
    /// once it is healthy on it, or refuses (409) once the update failed
    /// and was rolled back.
    pub async fn update(&self, app: &str, request: &UpdateRequest) -> Result<Done, ClientError> {
        let body = encode(request)?;
        self.typed(Method::POST, &app_route(app, "update"), Some(&body))
            .await
    }

    /// `POST /v1/apps/{app}/start`: start the app and watch it again.
    pub async fn start(&self, app: &str) -> Result<Done, ClientError> {
        self.typed(Method::POST, &app_route(app, "start"), None)
            .await
    }

    /// `POST /v1/maintenance`.
    pub async fn maintenance(
        &self,
        request: &MaintenanceRequest,
    ) -> Result<MaintenanceAnswer, ClientError> {
        let body = encode(request)?;
        self.typed(Method::POST, "/v1/maintenance", Some(&body))
            .await
    }

    /// `POST /v1/reload`: what changed, or the daemon's reasons for
    /// keeping the running config (a [`ClientError::Refused`]).
    pub async fn reload(&self) -> Result<Changes, ClientError> {
        let answer: ReloadAnswer = self.typed(Method::POST, "/v1/reload", None).await?;
        Ok(answer.applied)
    }

    /// One call whose answer is a `T`.
    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let answer = self.call(method.clone(), path, body).await?;
        serde_json::from_value(answer).map_err(|e| {
            ClientError::Transport(anyhow::anyhow!(
                "the daemon's answer to {method} {path} is not what this medic expects \
                 (a different version?): {e}"
            ))
        })
    }
}

fn encode(request: &impl serde::Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(request).map_err(|e| ClientError::Transport(e.into()))
}

/// The route of `verb` on `app`, the name escaped for the path.
fn app_route(app: &str, verb: &str) -> String {
    format!("/v1/apps/{}/{verb}", url_escape(app))
}

/// App names are `[A-Za-z0-9_.-]+`, which need no escaping in a URL; a
/// name outside that set is escaped byte by byte.
pub(crate) fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_escaped_in_routes() {
        assert_eq!(app_route("web-1.a_b", "stop"), "/v1/apps/web-1.a_b/stop");
        assert_eq!(app_route("a/../b", "start"), "/v1/apps/a%2F..%2Fb/start");
        assert_eq!(url_escape("a b?c"), "a%20b%3Fc");
    }
}
