//! wasi-http hooks that enforce the app's `connect` grants.
//!
//! The WASI socket address check never sees the connections wasi-http opens,
//! so outgoing requests are checked here, by the authority they name, before
//! any connection is attempted.

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use std::sync::Arc;

use super::policy::{Denials, Policy};

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

/// Hooks of one store: deny any request whose `host:port` is not granted.
pub struct GuardedHttp {
    policy: Arc<Policy>,
    denials: Denials,
}

impl GuardedHttp {
    /// Hooks checking against the policy's `connect`, recording refusals in
    /// `denials`.
    pub fn new(policy: Arc<Policy>, denials: Denials) -> Self {
        Self { policy, denials }
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
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}
