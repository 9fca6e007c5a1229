//! The wire codec: prost's, except for what a request that does not decode
//! means. tonic-prost answers INTERNAL, as if logwell had failed; the bytes
//! came from the client, so logwell answers INVALID_ARGUMENT, naming the field
//! prost could not read.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::error::ApiError;
use crate::model::Violations;

/// What tonic allocates for each call's responses at its start, growing it
/// as they need: 1 KiB rather than tonic's 8, since thousands of followers
/// each hold one while waiting for their next log (a log's message is a few
/// hundred bytes).
const RESPONSE_BUFFER_BYTES: usize = 1024;
/// Ready responses handed to the connection in one piece, at most: half
/// tonic's 32 KiB, since a follower whose client lags holds a piece
/// (16 KiB kept the fan-out's speed; 4 KiB lost a third of it).
const RESPONSE_YIELD_BYTES: usize = 16 * 1024;

/// Used by the generated services (see `build.rs`).
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec(PhantomData)
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        ProstEncoder::new(BufferSettings::new(RESPONSE_BUFFER_BYTES, RESPONSE_YIELD_BYTES))
    }

    fn decoder(&mut self) -> StrictDecoder<U> {
        StrictDecoder(ProstDecoder::default())
    }
}

#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| ApiError::InvalidArgument(undecodable(status.message())).into())
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// prost's "failed to decode Protobuf message: LogEntry.message:
/// WriteJobLogRequest.log: invalid string value: …" (innermost field first)
/// as a violation of field `log.message`.
pub(super) fn undecodable(error: &str) -> Violations {
    let detail = error.strip_prefix("failed to decode Protobuf message: ").unwrap_or(error);
    let mut path = Vec::new();
    let mut rest = detail;
    while let Some((segment, tail)) = rest.split_once(": ") {
        match segment.split_once('.') {
            Some((message, field)) if is_identifier(message) && is_identifier(field) => path.push(field),
            _ => break,
        }
        rest = tail;
    }
    path.reverse();
    let mut violations = Violations::default();
    let field = if path.is_empty() { "request".to_string() } else { path.join(".") };
    violations.add(field, format!("does not decode as protobuf: {rest}"));
    violations
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prost_errors_name_the_field_path() {
        let violations = undecodable(
            "failed to decode Protobuf message: LogEntry.message: WriteJobLogRequest.log: invalid string value: \
             data is not UTF-8 encoded",
        );
        let violation = violations.iter().next().unwrap();
        assert_eq!(violation.field, "log.message");
        assert_eq!(
            violation.description,
            "does not decode as protobuf: invalid string value: data is not UTF-8 encoded"
        );
        let whole = undecodable("failed to decode Protobuf message: buffer underflow");
        assert_eq!(whole.iter().next().unwrap().field, "request");
    }
}
