//! wasi-http hooks that enforce the app's `connect` grants.
//!
//! The WASI socket address check never sees the connections wasi-http opens,
//! so outgoing requests are checked here, by the authority they name, before
//! any connection is attempted, and then sent to the addresses the grant
//! resolved to when the app loaded ([`pinned_http`]), never resolved again.
//! Each request's waits are also cut to the kit call's deadline, so a hung
//! server gives the kit a timeout error to report instead of holding the
//! call until it is cut off.

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use std::sync::Arc;
use std::time::Duration;

use super::pinned_http::{self, Sent, Waits};
use super::policy::{Denials, HttpRefusal, Policy};
use super::store::CallDeadline;

/// The future type `WasiHttpHooks::send_request` hands back to wasi-http.
type SendFuture = Box<dyn Future<Output = Result<Sent, HttpError>> + Send>;

/// Hooks of one store: deny any request whose `host:port` is not granted,
/// and end every request before the call's deadline.
pub struct GuardedHttp {
    policy: Arc<Policy>,
    denials: Denials,
    deadline: CallDeadline,
}

impl GuardedHttp {
    /// Hooks checking against the policy's `connect`, recording refusals in
    /// `denials`, for a call that must be over by `deadline`.
    pub fn new(policy: Arc<Policy>, denials: Denials, deadline: CallDeadline) -> Self {
        Self {
            policy,
            denials,
            deadline,
        }
    }
}

/// The request's own timeouts, each cut to what is left of the call.
fn clamped(options: Option<RequestOptions>, budget: Duration) -> Waits {
    let cut = |asked: Option<Duration>| asked.map_or(budget, |t| t.min(budget));
    let options = options.unwrap_or_default();
    Waits {
        connect: cut(options.connect_timeout),
        first_byte: cut(options.first_byte_timeout),
        between_bytes: cut(options.between_bytes_timeout),
    }
}

/// What the kit sees of a request that does not go out: a denial, or a
/// granted name that had no address at load (as a DNS error).
fn refused(refusal: HttpRefusal) -> HttpError {
    match refusal {
        HttpRefusal::Unresolved(_) => HttpError::DnsError {
            rcode: Some(refusal.to_string()),
            info_code: None,
        },
        _ => HttpError::HttpRequestDenied,
    }
}

impl WasiHttpHooks for GuardedHttp {
    /// A failed TLS handshake reaches the kit as the reason, worded for the
    /// admin ("certificate signed by an unknown issuer"), not as a bare
    /// `tls-protocol-error`.
    fn p2_error_from_tls(
        &mut self,
        err: &std::io::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        let reason = super::tls_failure::describe(err);
        tracing::debug!("TLS failure: {reason} ({err:?})");
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode::InternalError(Some(reason))
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let _ = fut;
        let to = match (self.policy.connect).http_destination(request.uri(), &self.denials) {
            Ok(to) => to,
            Err(refusal) => return Box::new(std::future::ready(Err(refused(refusal)))),
        };
        if self
            .policy
            .tls_usable_for(request.uri(), &self.denials)
            .is_err()
        {
            return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
        }
        let budget = self.deadline.clamp(Duration::MAX);
        let policy = self.policy.clone();
        Box::new(async move {
            let send = pinned_http::send(request, to, clamped(options, budget), &policy.tls);
            tokio::time::timeout(budget, send)
                .await
                .map_err(|_| HttpError::ConnectionTimeout)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::pinned_http::tests::{get_request, host_echo, read};
    use crate::sandbox::policy::ConnectPolicy;
    use std::net::SocketAddr;
    use std::pin::Pin;

    /// Hooks for a call whose grants are `grants`, every name resolving
    /// (at load, once) to 127.0.0.1 except `down.test`, to nothing.
    fn hooks(grants: &[String], denials: &Denials) -> GuardedHttp {
        let connect = ConnectPolicy::resolving(grants, |host, port| match host {
            "down.test" => Err(std::io::Error::other("NXDOMAIN")),
            _ => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
        });
        let policy = Policy {
            connect,
            ..Policy::default()
        };
        let deadline = CallDeadline::after(Duration::from_secs(5));
        GuardedHttp::new(Arc::new(policy), denials.clone(), deadline)
    }

    /// Sends a GET of `url` through the hooks of a call granted `grants`:
    /// what came back, and what was denied.
    async fn send(grants: &[String], url: &str) -> (Result<Sent, HttpError>, Vec<String>) {
        let denials = Denials::default();
        let mut hooks = hooks(grants, &denials);
        let fut = hooks.send_request(get_request(url), None, Box::new(async { Ok(()) }));
        let sent = Pin::from(fut).await;
        (sent, denials.take())
    }

    #[tokio::test]
    async fn a_granted_name_is_reached_at_the_address_it_had_at_load() {
        let port = host_echo().await;
        // No resolver knows `app.test`: the request can only reach the
        // server through the address pinned when the grant was compiled.
        let (sent, denied) = send(
            &[format!("app.test:{port}")],
            &format!("http://app.test:{port}/"),
        )
        .await;
        assert_eq!(read(sent.unwrap()).await, (200, format!("app.test:{port}")));
        assert!(denied.is_empty());
    }

    #[tokio::test]
    async fn user_info_is_denied_before_any_connection() {
        let grants = ["127.0.0.1:9".to_string()];
        let (sent, denied) = send(&grants, "http://user@127.0.0.1:9/").await;
        // Denied, not refused by the discard port: nothing was connected.
        assert!(matches!(sent, Err(HttpError::HttpRequestDenied)));
        assert_eq!(denied, ["http user@127.0.0.1:9 (user info)"]);
    }

    #[tokio::test]
    async fn a_granted_name_without_an_address_is_a_dns_error_not_a_denial() {
        let (sent, denied) = send(&["down.test:80".to_string()], "http://down.test/").await;
        match sent {
            Err(HttpError::DnsError {
                rcode: Some(why), ..
            }) => {
                assert!(
                    why.contains("did not resolve when the app was loaded"),
                    "{why}"
                )
            }
            other => panic!("expected a DNS error, got {:?}", other.err()),
        }
        assert!(denied.is_empty());
    }
}
