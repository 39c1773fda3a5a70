//! wasi-http hooks that enforce the app's `connect` grants.
//!
//! The WASI socket address check never sees the connections wasi-http opens,
//! so outgoing requests are checked here, by the authority they name, before
//! any connection is attempted. Each request's waits are also cut to the
//! kit call's deadline, so a hung server gives the kit a timeout error to
//! report instead of holding the call until it is cut off.

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use std::sync::Arc;

use super::policy::{Denials, Policy};
use super::store::CallDeadline;

/// The future type `WasiHttpHooks::send_request` hands back to wasi-http.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

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
fn clamped(options: Option<RequestOptions>, budget: std::time::Duration) -> RequestOptions {
    let cut = |asked: Option<std::time::Duration>| Some(asked.map_or(budget, |t| t.min(budget)));
    let options = options.unwrap_or_default();
    RequestOptions {
        connect_timeout: cut(options.connect_timeout),
        first_byte_timeout: cut(options.first_byte_timeout),
        between_bytes_timeout: cut(options.between_bytes_timeout),
    }
}

impl WasiHttpHooks for GuardedHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        if let Err(denied) = self.policy.connect.allows_uri(request.uri()) {
            self.denials.record(denied);
            return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
        }
        let _ = fut;
        let budget = self.deadline.clamp(std::time::Duration::MAX);
        Box::new(async move {
            use http_body_util::BodyExt;
            let send =
                wasmtime_wasi_http::default_send_request(request, Some(clamped(options, budget)));
            let (response, io) = tokio::time::timeout(budget, send)
                .await
                .map_err(|_| HttpError::ConnectionTimeout)??;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}
