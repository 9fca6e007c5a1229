//! Requests over `--max-request-bytes`. tonic refuses them before any
//! handler runs, with OUT_OF_RANGE in its own words; logwell answers
//! RESOURCE_EXHAUSTED naming the flag, as for its other limits.

use tonic::Status;

use super::error::ApiError;

/// The limit error behind `status`, if tonic refused an oversized message.
pub(super) fn oversize(status: &Status) -> Option<ApiError> {
    if status.code() != tonic::Code::OutOfRange {
        return None;
    }
    let rest = status.message().strip_prefix("Error, decoded message length too large: found ")?;
    let (bytes, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some(ApiError::RequestTooLarge { bytes: bytes.parse().ok()?, limit: limit.parse().ok()? })
}

/// Rewrites a unary call's refusal of an oversized request (tonic answers it
/// in the response headers, before any handler runs).
pub fn rename_oversize(mut response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let renamed = Status::from_header_map(response.headers()).as_ref().and_then(oversize).map(Status::from);
    if let Some(status) = renamed {
        let headers = response.headers_mut();
        headers.remove(Status::GRPC_STATUS);
        headers.remove(Status::GRPC_MESSAGE);
        headers.remove("grpc-status-details-bin");
        if let Err(error) = status.add_header(headers) {
            tracing::warn!(%error, "cannot rewrite an oversized request's status");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_wording_becomes_the_flag() {
        let tonic =
            Status::out_of_range("Error, decoded message length too large: found 5000 bytes, the limit is: 4096 bytes");
        let status = Status::from(oversize(&tonic).unwrap());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "the request is 5000 bytes; --max-request-bytes allows at most 4096");
        assert!(oversize(&Status::out_of_range("after_seq 9 is beyond the last seq")).is_none());
    }
}
