//! The viewer's pages, built from `viewer/` (`npm run build`) and embedded
//! in the binary, so that they work with no network: served at `/ui/` on
//! the gRPC port, to HTTP/1.1 and HTTP/2 alike, with no token (they hold
//! no data: the data comes over gRPC-Web, with the reader's token). They
//! are served ahead of the gRPC stack (`ViewerLayer`), which answers
//! gRPC and gRPC-Web only.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// Where the viewer is.
const VIEWER_PATH: &str = "/ui/";

/// The page may load only its own script and style and call only its own
/// server: a message that smuggled markup in could not run script even if
/// it reached the page as markup (it does not: messages go in as text).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_bytes!("assets/index.html") },
    Asset {
        name: "viewer.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/viewer.js"),
    },
    Asset { name: "viewer.css", content_type: "text/css; charset=utf-8", body: include_bytes!("assets/viewer.css") },
];

/// Each asset's entity tag: a browser revalidates and gets 304 until the
/// binary changes.
fn entity_tags() -> &'static [String; ASSETS.len()] {
    static TAGS: OnceLock<[String; ASSETS.len()]> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS.each_ref().map(|asset| {
            let digest = Sha256::digest(asset.body);
            format!("\"{}\"", digest[..12].iter().map(|byte| format!("{byte:02x}")).collect::<String>())
        })
    })
}

/// `/` and `/ui` lead to the viewer; `/ui/` is its page, `/ui/NAME` its files.
fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(VIEWER_PATH) }))
        .route("/ui", get(|| async { Redirect::to(VIEWER_PATH) }))
        .route(VIEWER_PATH, get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/ui/{name}", get(|Path(name): Path<String>, headers: HeaderMap| async move { serve(&name, &headers) }))
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(at) = ASSETS.iter().position(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the viewer").into_response();
    };
    let (asset, tag) = (&ASSETS[at], entity_tags()[at].as_str());
    let common = [
        (CACHE_CONTROL, "no-cache"),
        (ETAG, tag),
        (HeaderName::from_static("x-content-type-options"), "nosniff"),
        (HeaderName::from_static("referrer-policy"), "no-referrer"),
        (HeaderName::from_static("content-security-policy"), CONTENT_SECURITY_POLICY),
    ];
    if headers.get(IF_NONE_MATCH).is_some_and(|sent| sent.as_bytes() == tag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (StatusCode::OK, common, [(CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

/// Whether a request is for the viewer: a GET or HEAD of `/` or `/ui…`.
fn is_for_viewer<B>(request: &Request<B>) -> bool {
    let path = request.uri().path();
    matches!(*request.method(), Method::GET | Method::HEAD)
        && (path == "/" || path == VIEWER_PATH.trim_end_matches('/') || path.starts_with(VIEWER_PATH))
}

/// Answers the viewer's requests itself; passes every other one on.
#[derive(Clone)]
pub struct ViewerLayer {
    pages: Router,
}

impl ViewerLayer {
    pub fn new() -> ViewerLayer {
        ViewerLayer { pages: routes() }
    }
}

impl<S> tower::Layer<S> for ViewerLayer {
    type Service = ViewerService<S>;

    fn layer(&self, inner: S) -> ViewerService<S> {
        ViewerService { inner, pages: self.pages.clone() }
    }
}

#[derive(Clone)]
pub struct ViewerService<S> {
    inner: S,
    pages: Router,
}

impl<S, B> tower::Service<Request<B>> for ViewerService<S>
where
    S: tower::Service<Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_for_viewer(&request) {
            let pages = self.pages.clone();
            return Box::pin(async move {
                // A router answers every request: its error is Infallible.
                let response = match pages.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok(response.map(tonic::body::Body::new))
            });
        }
        // The service polled ready, a fresh clone left for the next call.
        let fresh = self.inner.clone();
        Box::pin(std::mem::replace(&mut self.inner, fresh).call(request))
    }
}

impl Default for ViewerLayer {
    fn default() -> ViewerLayer {
        ViewerLayer::new()
    }
}
