//! OTLP over HTTP: `POST /v1/logs` on a listener of its own
//! (`--otlp-http-listen`), for senders that cannot use gRPC. Protobuf
//! (`application/x-protobuf`) or JSON (`application/json`), gzip-compressed
//! or not, under the same tokens and scope as the gRPC export, and over the
//! same TLS when the gRPC port has it.
//!
//! Answers as the OTLP/HTTP specification has them: 200 with an
//! `ExportLogsServiceResponse` (its `partial_success` counting rejected
//! records), in the request's encoding; a refusal with a `google.rpc.Status`
//! body in that encoding, 400/401/403/413/415 for requests never to retry,
//! 429/503 with `Retry-After` for those to retry later.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::Exports;
use super::json::OtlpJson;
use crate::api::{AccessPolicy, ApiError, RpcMetrics};
use crate::auth::Scope;
use crate::proto::opentelemetry::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};

/// Where OTLP/HTTP senders post logs.
pub const LOGS_PATH: &str = "/v1/logs";
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// What OTLP/HTTP needs to take exports.
pub struct OtlpHttp {
    exports: Exports,
    access: AccessPolicy,
    json: OtlpJson,
    metrics: Arc<RpcMetrics>,
    /// Bytes of a request body, at most, before and after decompression.
    max_request_bytes: usize,
}

impl OtlpHttp {
    pub fn new(
        exports: Exports,
        access: AccessPolicy,
        json: OtlpJson,
        metrics: Arc<RpcMetrics>,
        max_request_bytes: usize,
    ) -> OtlpHttp {
        OtlpHttp { exports, access, json, metrics, max_request_bytes }
    }

    /// `POST /v1/logs`; anything else is 404 (or 405 for another method).
    pub fn router(self) -> Router {
        Router::new().route(LOGS_PATH, post(export)).with_state(Arc::new(self))
    }
}

/// How a request's body, and so its answer, is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From `Content-Type`, ignoring its parameters (`; charset=utf-8`).
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media_type = content_type.split(';').next()?.trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF) {
            Some(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// Why an export was not taken.
enum Refusal {
    /// The body cannot be read as an export (400).
    Malformed(String),
    /// The body's encoding or compression is none logwell reads (415).
    Unsupported(String),
    /// The body is larger than `--max-request-bytes` (413).
    TooLarge(usize),
    /// As its gRPC status says.
    Status(Status),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::Status(error.into())
    }
}

async fn export(State(otlp): State<Arc<OtlpHttp>>, headers: HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    // Protobuf, unless the request said JSON: the answer to a request of
    // no known encoding has to be in some encoding.
    let encoding = Encoding::of(&headers);
    let answer = encoding.unwrap_or(Encoding::Protobuf);
    let exported = async {
        let encoding = encoding.ok_or_else(|| {
            Refusal::Unsupported(format!("Content-Type must be {PROTOBUF} or {JSON}: OTLP/HTTP's encodings"))
        })?;
        // Before the body is read: a caller without a token makes logwell
        // neither read nor decompress anything.
        let principal = otlp.access.authorise(Scope::Write, LOGS_PATH, &headers).map_err(ApiError::from)?;
        let body = otlp.read(&headers, body).await?;
        let request = match encoding {
            Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|error| {
                Refusal::Malformed(format!("the body is not a protobuf ExportLogsServiceRequest: {error}"))
            })?,
            Encoding::Json => otlp.json.request(&body).map_err(Refusal::Malformed)?,
        };
        Ok::<_, Refusal>(otlp.exports.export(&principal, request).await?)
    };
    let response = match exported.await {
        Ok(response) => otlp.answer(answer, &response),
        Err(refusal) => otlp.refuse(answer, refusal),
    };
    otlp.metrics.observe_otlp_http(response.status(), started.elapsed());
    response
}

impl OtlpHttp {
    /// The whole body, decompressed, within `max_request_bytes`.
    async fn read(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
        let limit = self.max_request_bytes;
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => return Err(Refusal::TooLarge(limit)),
            Err(error) => {
                return Err(Refusal::Malformed(format!("cannot read the body: {error}")));
            }
        };
        let coding = headers.get(CONTENT_ENCODING).map(|coding| coding.to_str().unwrap_or("").trim());
        match coding {
            None | Some("") | Some("identity") => Ok(body),
            Some(coding) if coding.eq_ignore_ascii_case("gzip") => {
                let mut decompressed = Vec::new();
                MultiGzDecoder::new(&body[..])
                    .take(limit as u64 + 1)
                    .read_to_end(&mut decompressed)
                    .map_err(|error| Refusal::Malformed(format!("the gzip body is corrupt: {error}")))?;
                if decompressed.len() > limit {
                    return Err(Refusal::TooLarge(limit));
                }
                Ok(decompressed.into())
            }
            Some(coding) => Err(Refusal::Unsupported(format!(
                "Content-Encoding {coding:?} is not supported: send gzip or uncompressed"
            ))),
        }
    }

    fn answer(&self, encoding: Encoding, response: &ExportLogsServiceResponse) -> Response {
        let body = match encoding {
            Encoding::Protobuf => response.encode_to_vec(),
            Encoding::Json => self.json.response(response),
        };
        (StatusCode::OK, [(CONTENT_TYPE, encoding.content_type())], body).into_response()
    }

    fn refuse(&self, encoding: Encoding, refusal: Refusal) -> Response {
        let (http_status, status) = match refusal {
            Refusal::Malformed(reason) => (StatusCode::BAD_REQUEST, Status::invalid_argument(reason)),
            Refusal::Unsupported(reason) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, Status::invalid_argument(reason)),
            Refusal::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Status::invalid_argument(format!("the body is larger than {limit} bytes (--max-request-bytes)")),
            ),
            Refusal::Status(status) => (http_status(status.code()), status),
        };
        let retry_after = status.get_details_retry_info().and_then(|retry| retry.retry_delay);
        let status = rpc_status(&status);
        let body = match encoding {
            Encoding::Protobuf => status.encode_to_vec(),
            Encoding::Json => self.json.status(&status),
        };
        let mut response = (http_status, [(CONTENT_TYPE, encoding.content_type())], body).into_response();
        if let Some(delay) = retry_after {
            // Whole seconds, rounded up: Retry-After has no finer unit.
            let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// The HTTP status of a refusal, retryable (429, 503) only where the gRPC
/// export's is.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `status` as a `google.rpc.Status`, its details (a field's violations,
/// when to retry) included.
fn rpc_status(status: &Status) -> tonic_types::pb::Status {
    tonic_types::pb::Status::decode(status.details()).ok().filter(|decoded| decoded.code != 0).unwrap_or_else(|| {
        tonic_types::pb::Status { code: status.code() as i32, message: status.message().to_owned(), details: vec![] }
    })
}
