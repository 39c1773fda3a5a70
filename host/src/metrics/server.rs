//! The HTTP endpoint Prometheus scrapes, and the status page beside it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::Metrics;
use crate::web;

/// The exposition's media type, matching what prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections served at once; more are closed at once so a flood of
/// idle connections cannot exhaust medic's file descriptors.
const MAX_CONNECTIONS: usize = 32;

/// A client that does not send its request headers within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept, so a shortage of descriptors does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until dropped; see [`Metrics::serve`].
pub(super) async fn serve(metrics: Arc<Metrics>, listener: TcpListener) -> std::io::Result<()> {
    // Owned here, so dropping this future aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::debug!(%peer, "too many metrics connections; closing one");
                        continue;
                    }
                    let metrics = Arc::clone(&metrics);
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let metrics = Arc::clone(&metrics);
                            let route = Route::of(&request);
                            async move { Ok::<_, Infallible>(answer(&metrics, route).await) }
                        });
                        if let Err(error) = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%peer, %error, "metrics connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a metrics connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`: the exposition.
    Metrics,
    /// `GET /` or `GET /index.html`: the status page, if one is shown.
    Page,
    /// Anything else.
    NotFound,
}

impl Route {
    /// The route of `request`, by method and path (the query is ignored).
    fn of<B>(request: &Request<B>) -> Self {
        if request.method() != Method::GET {
            return Self::NotFound;
        }
        match request.uri().path() {
            "/metrics" => Self::Metrics,
            "/" | "/index.html" => Self::Page,
            _ => Self::NotFound,
        }
    }
}

async fn answer(metrics: &Metrics, route: Route) -> Response<Full<Bytes>> {
    match (route, metrics.page()) {
        (Route::Metrics, _) => respond(
            StatusCode::OK,
            &[("content-type", CONTENT_TYPE)],
            metrics.encode(),
        ),
        (Route::Page, Some(page)) => respond(StatusCode::OK, &web::HEADERS, page.render().await),
        (Route::Page, None) | (Route::NotFound, _) => respond(
            StatusCode::NOT_FOUND,
            &[("content-type", "text/plain; charset=utf-8")],
            "not found\n".to_owned(),
        ),
    }
}

/// A response of `status` with `headers` (lower-case names) and `body`.
fn respond(
    status: StatusCode,
    headers: &[(&'static str, &'static str)],
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(Route::of(&request(Method::GET, "/metrics")), Route::Metrics);
        assert_eq!(
            Route::of(&request(Method::GET, "/metrics?x=1")),
            Route::Metrics
        );
        assert_eq!(Route::of(&request(Method::GET, "/")), Route::Page);
        assert_eq!(
            Route::of(&request(Method::GET, "/index.html?x")),
            Route::Page
        );
        for (method, uri) in [
            (Method::POST, "/"),
            (Method::HEAD, "/metrics"),
            (Method::GET, "/metricsx"),
            (Method::GET, "/index.htm"),
            (Method::GET, "//"),
        ] {
            assert_eq!(Route::of(&request(method, uri)), Route::NotFound, "{uri}");
        }
    }

    struct Fixed;

    #[async_trait::async_trait]
    impl crate::web::StatusPage for Fixed {
        async fn render(&self) -> String {
            "<p>page</p>".to_owned()
        }
    }

    #[tokio::test]
    async fn the_page_is_served_once_given_with_its_headers() {
        let metrics = Metrics::new();
        let missing = answer(&metrics, Route::Page).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        metrics.show_page(Arc::new(Fixed));
        let page = answer(&metrics, Route::Page).await;
        assert_eq!(page.status(), StatusCode::OK);
        for (name, value) in web::HEADERS {
            assert_eq!(page.headers()[name], value, "{name}");
        }
        let scrape = answer(&metrics, Route::Metrics).await;
        assert_eq!(scrape.headers()["content-type"], CONTENT_TYPE);
        assert!(scrape.headers().get("content-security-policy").is_none());
    }
}
