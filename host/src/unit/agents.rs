//! The controller's side of the agents: one TLS identity for all of them,
//! every call bounded in time, and fan-out to many members with a bound on
//! the calls in flight, so hundreds of VMs answer in seconds and a dead
//! one costs its timeout, not the others' time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use super::config::{Controller, Member, Unit};
use crate::api::client::{Client, ClientError};
use crate::api::messages::StatusReport;
use crate::api::tls::{TlsClient, TlsError};

/// Every agent, reached with the controller's certificate.
#[derive(Debug, Clone)]
pub struct Agents {
    tls: Arc<TlsClient>,
    timeout: Duration,
    parallel: usize,
}

impl Agents {
    /// The agents as `[controller]` reaches them; an error names the
    /// certificate or key file that is wrong.
    pub fn new(controller: &Controller) -> Result<Self, TlsError> {
        let tls = TlsClient::new(
            &controller.ca_file,
            &controller.cert_file,
            &controller.key_file,
        )?;
        Ok(Self {
            tls: Arc::new(tls),
            timeout: controller.agent_timeout,
            parallel: usize::try_from(controller.parallel).unwrap_or(1).max(1),
        })
    }

    /// The same agents with at most `parallel` calls in flight.
    pub fn with_parallel(mut self, parallel: usize) -> Self {
        self.parallel = parallel.max(1);
        self
    }

    /// A client of `member`'s agent.
    pub fn client(&self, member: &Member) -> Client {
        Client::tls(member.agent.clone(), self.tls.clone())
    }

    /// `call` on `member`'s agent, bounded by the agent timeout; any
    /// failure as the words an admin reads.
    pub async fn call<T, F>(
        &self,
        member: &Member,
        call: impl FnOnce(Client) -> F,
    ) -> Result<T, String>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        self.call_within(member, self.timeout, call).await
    }

    /// `call` on `member`'s agent, bounded by `timeout` (for a call that
    /// takes as long as an update does).
    pub async fn call_within<T, F>(
        &self,
        member: &Member,
        timeout: Duration,
        call: impl FnOnce(Client) -> F,
    ) -> Result<T, String>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        match tokio::time::timeout(timeout, call(self.client(member))).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "{}: no answer within {}",
                member.agent,
                humantime::format_duration(timeout)
            )),
        }
    }

    /// The status of every app `member`'s agent watches.
    pub async fn status(&self, member: &Member) -> Result<StatusReport, String> {
        self.call(member, |client| async move { client.status().await })
            .await
    }

    /// `work` on each `(unit, member)`, at most `parallel` at once; the
    /// answers in the order of `pairs`.
    pub async fn each<'a, T, F>(
        &self,
        pairs: &[(&'a Unit, &'a Member)],
        work: impl Fn(&'a Unit, &'a Member) -> F,
    ) -> Vec<T>
    where
        F: Future<Output = T>,
    {
        let calls: Vec<F> = pairs
            .iter()
            .map(|&(unit, member)| work(unit, member))
            .collect();
        futures_util::stream::iter(calls)
            .buffered(self.parallel)
            .collect()
            .await
    }
}
