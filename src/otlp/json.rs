//! OTLP's JSON encoding: the proto3 JSON mapping of the OTLP messages
//! (field names in lowerCamelCase or as declared, 64-bit integers as
//! strings or numbers, enums as numbers or names, unknown fields ignored),
//! except that trace and span ids are hexadecimal, not base64.

use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorError, DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde_json::Value;

use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::opentelemetry::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};

/// The fields OTLP/JSON writes in hex (a log record's), by both of their
/// JSON names.
const HEX_FIELDS: [&str; 4] = ["traceId", "spanId", "trace_id", "span_id"];

/// The compiled-in descriptors cannot serve OTLP/JSON: a bug of the build.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorsError {
    #[error("cannot read the compiled-in protobuf descriptors: {0}")]
    Invalid(#[from] DescriptorError),
    #[error("the compiled-in protobuf descriptors lack {0}")]
    Missing(&'static str),
}

/// Reads and writes the messages of OTLP/HTTP in JSON.
pub struct OtlpJson {
    request: MessageDescriptor,
    response: MessageDescriptor,
    status: MessageDescriptor,
}

impl OtlpJson {
    /// From the descriptors compiled into logwell, and tonic-types' for
    /// `google.rpc.Status` and the error details it carries.
    pub fn new() -> Result<OtlpJson, DescriptorsError> {
        let mut pool = DescriptorPool::new();
        pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
        pool.decode_file_descriptor_set(FILE_DESCRIPTOR_SET)?;
        let message = |name: &'static str| pool.get_message_by_name(name).ok_or(DescriptorsError::Missing(name));
        Ok(OtlpJson {
            request: message("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest")?,
            response: message("opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse")?,
            status: message("google.rpc.Status")?,
        })
    }

    /// An export request from its JSON; the error says what is wrong.
    pub fn request(&self, body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
        let mut json: Value = serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
        hex_ids_to_base64(&mut json)?;
        let options = DeserializeOptions::new().deny_unknown_fields(false);
        let message = DynamicMessage::deserialize_with_options(self.request.clone(), json, &options)
            .map_err(|error| format!("the body is not an OTLP ExportLogsServiceRequest: {error}"))?;
        message.transcode_to().map_err(|error| format!("the body is not an OTLP ExportLogsServiceRequest: {error}"))
    }

    pub fn response(&self, response: &ExportLogsServiceResponse) -> Vec<u8> {
        to_json(&self.response, response)
    }

    /// A `google.rpc.Status`, from its protobuf encoding.
    pub fn status(&self, status: &tonic_types::pb::Status) -> Vec<u8> {
        to_json(&self.status, status)
    }
}

/// `message` in JSON, as the proto3 mapping writes it.
fn to_json(descriptor: &MessageDescriptor, message: &impl Message) -> Vec<u8> {
    let mut dynamic = DynamicMessage::new(descriptor.clone());
    // Both sides are compiled from the same protos; a failure would be a
    // bug, answered with the message's empty form rather than a panic.
    if let Err(error) = dynamic.transcode_from(message) {
        tracing::error!(%error, "cannot transcode an OTLP message to JSON");
    }
    serde_json::to_vec(&dynamic).unwrap_or_else(|_| b"{}".to_vec())
}

/// Rewrites the hex trace and span ids as the base64 that the proto3 JSON
/// mapping reads for bytes. Hex digits are base64 digits too, so without
/// this a 32-digit trace id would read as 24 wrong bytes.
fn hex_ids_to_base64(json: &mut Value) -> Result<(), String> {
    match json {
        Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                match value {
                    Value::String(hex) if HEX_FIELDS.contains(&name.as_str()) => {
                        let bytes = from_hex(hex).ok_or_else(|| format!("{name} {hex:?} is not hexadecimal"))?;
                        *hex = base64::engine::general_purpose::STANDARD.encode(bytes);
                    }
                    value => hex_ids_to_base64(value)?,
                }
            }
        }
        Value::Array(items) => items.iter_mut().try_for_each(hex_ids_to_base64)?,
        _ => {}
    }
    Ok(())
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|at| u8::from_str_radix(&hex[at..at + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_otlp_json_of_the_specification() {
        // The example of opentelemetry-proto's examples/logs.json, shortened.
        let body = br#"{"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
            "scopeLogs": [{"scope": {"name": "my.library", "version": "1.0.0"},
              "logRecords": [{"timeUnixNano": "1544712660300000000", "observedTimeUnixNano": 1544712660300000000,
                "severityNumber": 10, "severityText": "Information",
                "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                "body": {"stringValue": "Example log record"},
                "attributes": [{"key": "int.attribute", "value": {"intValue": "10"}},
                               {"key": "array.attribute", "value": {"arrayValue": {"values": [{"stringValue": "many"}]}}}],
                "futureField": true}]}]}]}"#;
        let request = OtlpJson::new().unwrap().request(body).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(record.observed_time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(record.severity_number, 10);
        assert_eq!(record.trace_id, from_hex("5b8efff798038103d269b633813fc60c").unwrap());
        assert_eq!(record.span_id.len(), 8);
        assert_eq!(record.attributes.len(), 2);
    }

    #[test]
    fn says_what_is_wrong_with_a_body() {
        let json = OtlpJson::new().unwrap();
        let not_json = json.request(b"{\"resourceLogs\": [").unwrap_err();
        assert!(not_json.starts_with("the body is not JSON"), "{not_json}");
        let bad_id = json.request(br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz1"}]}]}]}"#);
        assert_eq!(bad_id.unwrap_err(), r#"traceId "xyz1" is not hexadecimal"#);
        let wrong_type = json.request(br#"{"resourceLogs": {"scopeLogs": 3}}"#).unwrap_err();
        assert!(wrong_type.starts_with("the body is not an OTLP ExportLogsServiceRequest"), "{wrong_type}");
    }

    #[test]
    fn writes_responses_in_the_json_mapping() {
        use crate::proto::opentelemetry::proto::collector::logs::v1::ExportLogsPartialSuccess;
        let json = OtlpJson::new().unwrap();
        assert_eq!(json.response(&ExportLogsServiceResponse::default()), b"{}");
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess { rejected_log_records: 2, error_message: "bad".into() }),
        };
        let written: Value = serde_json::from_slice(&json.response(&partial)).unwrap();
        assert_eq!(written, serde_json::json!({"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "bad"}}));
    }
}
