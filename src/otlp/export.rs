//! One OTLP export, whatever its transport: records converted, the good
//! ones admitted through the same path as every other write, the bad ones
//! rejected alone and counted in `partial_success`.

use super::convert::{Record, records};
use crate::api::ApiError;
use crate::auth::Principal;
use crate::ingest::{Admission, WhenFull};
use crate::model::Violations;
use crate::proto::opentelemetry::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};

/// Rejected records whose reasons `partial_success` spells out, at most.
const REASONS_SPELLED_OUT: usize = 20;

/// Takes OTLP exports in.
#[derive(Clone)]
pub struct Exports {
    admission: Admission,
}

impl Exports {
    pub fn new(admission: Admission) -> Exports {
        Exports { admission }
    }

    /// Answers `request` once its admitted records are committed. An empty
    /// export, or one refused whole (authorisation, limits, overload), is
    /// an error; a bad record only counts in `partial_success`.
    pub async fn export(
        &self,
        principal: &Principal,
        request: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, ApiError> {
        let records = records(request);
        if records.is_empty() {
            let mut violations = Violations::default();
            violations.add("resource_logs", "holds no log records");
            return Err(ApiError::InvalidArgument(violations));
        }
        let mut rejected = Vec::new();
        let mut logs = Vec::with_capacity(records.len());
        for Record { place, log } in records {
            match log {
                Ok((log_type, log)) => logs.push((place, log_type, log)),
                Err(reason) => rejected.push(format!("{place} {reason}")),
            }
        }
        let admitted = self.admission.write_each(principal, "resource_logs", logs, WhenFull::Refuse).await?;
        rejected.extend(admitted.refused.iter().map(Violations::to_string));
        let partial_success = (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected.len() as i64,
            error_message: reasons(&rejected),
        });
        Ok(ExportLogsServiceResponse { partial_success })
    }
}

/// The rejected records' reasons, the first ones spelled out.
fn reasons(rejected: &[String]) -> String {
    let mut message = rejected.iter().take(REASONS_SPELLED_OUT).cloned().collect::<Vec<_>>().join("; ");
    if rejected.len() > REASONS_SPELLED_OUT {
        message.push_str(&format!("; and {} more", rejected.len() - REASONS_SPELLED_OUT));
    }
    message
}
