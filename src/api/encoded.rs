//! Streamed responses encoded ahead, so that thousands of followers of one
//! log send the same bytes rather than each converting and encoding it.
//!
//! `build.rs` generates LogStreamService's server with `Encoded<M>` as its
//! responses: a prost message whose encoding is bytes made earlier (once,
//! for a shared log). On the wire nothing changes: clients decode `M`.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::live::SharedLog;
use crate::model::Log;

/// Message `M`, already encoded.
pub struct Encoded<M> {
    bytes: Bytes,
    message: PhantomData<fn() -> M>,
}

impl<M: Message> Encoded<M> {
    /// `message`, encoded now.
    pub fn new(message: &M) -> Self {
        Encoded { bytes: message.encode_to_vec().into(), message: PhantomData }
    }

    /// The message `message` makes of a shared log, encoded by the first
    /// follower that sends the log and shared with the rest.
    pub fn shared(log: &SharedLog, message: impl FnOnce(&Log) -> M) -> Self {
        Encoded { bytes: log.wire(|log| message(log).encode_to_vec().into()), message: PhantomData }
    }
}

impl<M> Message for Encoded<M>
where
    M: Message + Default,
{
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    /// The server never decodes its responses; should anything, it is
    /// merged as `M` would merge it.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let mut message = M::decode(self.bytes.clone())?;
        message.merge_field(tag, wire_type, buf, ctx)?;
        self.bytes = message.encode_to_vec().into();
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

impl<M> Default for Encoded<M> {
    fn default() -> Self {
        Encoded { bytes: Bytes::new(), message: PhantomData }
    }
}

impl<M> fmt::Debug for Encoded<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Encoded").field("bytes", &self.bytes.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;

    #[test]
    fn an_encoded_message_decodes_as_itself() {
        let heartbeat = pb::StreamLogsResponse {
            event: Some(pb::stream_logs_response::Event::Heartbeat(pb::StreamHeartbeat {
                delivered_through_seq: 7,
                last_seq: 9,
                time: None,
            })),
        };
        let encoded = Encoded::new(&heartbeat);
        assert_eq!(encoded.encoded_len(), heartbeat.encoded_len());
        assert_eq!(pb::StreamLogsResponse::decode(encoded.encode_to_vec().as_slice()).unwrap(), heartbeat);

        let mut merged = Encoded::<pb::StreamLogsResponse>::default();
        merged.merge(encoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(merged.encode_to_vec(), heartbeat.encode_to_vec());
    }
}
