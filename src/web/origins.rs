//! Which web pages may call logwell from a browser. A request that carries
//! an `Origin` header comes from a page; it is served only if that page is
//! logwell's own (the viewer) or one of `--cors-allowed-origins`. Any other
//! page gets 403 and nothing else: not the call's effect, not its answer.
//! Clients that are not browsers send no `Origin` and are not concerned.

use std::future::{Future, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers a gRPC-Web page sends, beyond the CORS-safelisted ones.
const REQUEST_HEADERS: [&str; 5] =
    ["x-grpc-web", "x-user-agent", "grpc-timeout", "x-request-id", "connect-protocol-version"];
/// Headers of an answer a page may read: the status, its details, the id.
const EXPOSED_HEADERS: [&str; 4] = ["grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id"];
/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The pages allowed, and how logwell's own is recognised.
#[derive(Debug, Clone, Default)]
pub struct BrowserOrigins {
    /// Other origins, exactly as browsers send them (`https://ci.example.com`).
    allowed: Vec<HeaderValue>,
    /// Whether a page of logwell's own origin may call it when it names the
    /// server by a DNS name rather than an IP address or `localhost`. Only
    /// when callers need tokens: with authentication off, such a name may be
    /// an attacker's, rebound to this address (DNS rebinding), and the page
    /// would read and write every log.
    trust_host_names: bool,
}

/// An origin given to `--cors-allowed-origins` is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--cors-allowed-origins: {0:?} is not an origin; give scheme://host[:port] as the browser sends it, \
     with no path and no trailing slash (for example https://ci.example.com)"
)]
pub struct NotAnOrigin(pub String);

impl BrowserOrigins {
    pub fn new(allowed: &[String], trust_host_names: bool) -> Result<BrowserOrigins, NotAnOrigin> {
        let allowed = allowed
            .iter()
            .map(|origin| match origin.split_once("://") {
                Some(("http" | "https", host)) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
                    HeaderValue::from_str(origin).map_err(|_| NotAnOrigin(origin.clone()))
                }
                _ => Err(NotAnOrigin(origin.clone())),
            })
            .collect::<Result<_, _>>()?;
        Ok(BrowserOrigins { allowed, trust_host_names })
    }

    /// Whether a page of `origin` may call a server reached as `authority`
    /// (the request's `Host`).
    fn admits(&self, origin: &HeaderValue, authority: Option<&str>) -> bool {
        if self.allowed.contains(origin) {
            return true;
        }
        let Some((_, page)) = origin.to_str().ok().and_then(|origin| origin.split_once("://")) else { return false };
        match authority {
            Some(authority) if page.eq_ignore_ascii_case(authority) => {
                self.trust_host_names || names_this_machine_by_address(authority)
            }
            _ => false,
        }
    }

    /// The CORS answers for the pages admitted: preflights, and the headers
    /// that let a page read an answer.
    pub fn cors(&self) -> CorsLayer {
        let names = |names: &[&'static str]| names.iter().map(|name| HeaderName::from_static(name)).collect::<Vec<_>>();
        let mut request_headers = names(&REQUEST_HEADERS);
        request_headers.extend([AUTHORIZATION, CONTENT_TYPE]);
        // Only admitted pages get this far (`OriginLayer` comes first).
        CorsLayer::new()
            .allow_origin(AllowOrigin::mirror_request())
            .allow_methods([Method::POST, Method::GET])
            .allow_headers(request_headers)
            .expose_headers(names(&EXPOSED_HEADERS))
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// `localhost`, or an IP address, with or without a port.
fn names_this_machine_by_address(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok()
}

/// Refuses requests from pages not admitted, before anything else sees them.
#[derive(Debug, Clone)]
pub struct OriginLayer {
    origins: Arc<BrowserOrigins>,
}

impl OriginLayer {
    pub fn new(origins: BrowserOrigins) -> OriginLayer {
        OriginLayer { origins: Arc::new(origins) }
    }
}

impl<S> tower::Layer<S> for OriginLayer {
    type Service = OriginService<S>;

    fn layer(&self, inner: S) -> OriginService<S> {
        OriginService { inner, origins: self.origins.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct OriginService<S> {
    inner: S,
    origins: Arc<BrowserOrigins>,
}

impl<S, B, R> tower::Service<Request<B>> for OriginService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(origin) = request.headers().get(ORIGIN) {
            let authority = request
                .headers()
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .or_else(|| request.uri().authority().map(|authority| authority.as_str()));
            if !self.origins.admits(origin, authority) {
                tracing::info!(origin = ?origin, "refused a request from a page of an origin not allowed");
                let mut refused = Response::new(R::default());
                *refused.status_mut() = StatusCode::FORBIDDEN;
                return Box::pin(ready(Ok(refused)));
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn configured_origins_and_logwells_own_page_are_admitted() {
        let origins = BrowserOrigins::new(&["https://ci.example.com".into()], false).unwrap();
        assert!(origins.admits(&origin("https://ci.example.com"), Some("logwell:50051")));
        assert!(!origins.admits(&origin("https://evil.example.com"), Some("logwell:50051")));
        assert!(!origins.admits(&origin("https://ci.example.com.evil.net"), Some("logwell:50051")));
        assert!(!origins.admits(&origin("null"), Some("logwell:50051")));
        // The viewer, named by address: its own origin.
        for (page, host) in [
            ("http://127.0.0.1:50051", "127.0.0.1:50051"),
            ("http://localhost:50051", "localhost:50051"),
            ("http://[::1]:50051", "[::1]:50051"),
        ] {
            assert!(origins.admits(&HeaderValue::from_str(page).unwrap(), Some(host)), "{page}");
        }
        assert!(!origins.admits(&origin("http://127.0.0.1:8080"), Some("127.0.0.1:50051")), "another port");
    }

    #[test]
    fn a_host_name_is_trusted_only_when_callers_need_tokens() {
        let page = origin("http://logwell.internal:50051");
        assert!(!BrowserOrigins::new(&[], false).unwrap().admits(&page, Some("logwell.internal:50051")));
        assert!(BrowserOrigins::new(&[], true).unwrap().admits(&page, Some("logwell.internal:50051")));
    }

    #[test]
    fn origins_are_checked_at_start() {
        for bad in
            ["ci.example.com", "https://ci.example.com/", "https://ci.example.com/ui", "*", "ftp://x", "https://"]
        {
            assert_eq!(BrowserOrigins::new(&[bad.into()], false).unwrap_err(), NotAnOrigin(bad.into()), "{bad}");
        }
        assert!(BrowserOrigins::new(&["http://localhost:5173".into()], false).is_ok());
    }
}
