//! What a client command reports when it fails: one line on standard error,
//! and an exit status that says what kind of failure it was, so that scripts
//! can tell a typo from an outage.

use tonic_types::StatusExt;

/// Exit statuses of the client commands (documented in the README).
pub mod exit {
    /// The command line is wrong, or the server refused an argument.
    pub const USAGE: u8 = 2;
    /// The server could not be reached, or did not answer in time.
    pub const UNREACHABLE: u8 = 3;
    /// The token is missing, wrong, or lacks the scope.
    pub const DENIED: u8 = 4;
    /// What was asked for does not exist.
    pub const NOT_FOUND: u8 = 5;
    /// Anything else the server answered with, or a local failure.
    pub const FAILED: u8 = 1;
    /// `logwell tail --exit-status`: the followed run failed.
    pub const RUN_FAILED: u8 = 6;
    /// `logwell tail --exit-status`: the followed run was cancelled.
    pub const RUN_CANCELLED: u8 = 7;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A value on the command line that cannot be used.
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{}", describe(.0))]
    Status(#[from] tonic::Status),
    /// The server refused logs for good; these many were not stored.
    #[error("{logs} logs were not stored: {}", describe(.status))]
    NotStored { logs: usize, status: tonic::Status },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_status(&self) -> u8 {
        use tonic::Code;
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::Status(status) | CliError::NotStored { status, .. } => match status.code() {
                Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => exit::USAGE,
                Code::Unavailable | Code::DeadlineExceeded => exit::UNREACHABLE,
                Code::Unauthenticated | Code::PermissionDenied => exit::DENIED,
                Code::NotFound => exit::NOT_FOUND,
                _ => exit::FAILED,
            },
            CliError::Io(_) => exit::FAILED,
        }
    }

    /// Writing to a pipe whose reader has gone (`logwell logs | head`): not
    /// a failure to report.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, CliError::Io(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The status's code and message, and each field the server named that its
/// message does not already say.
fn describe(status: &tonic::Status) -> String {
    let mut line = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad_request) = status.get_details_bad_request() {
        for violation in bad_request.field_violations {
            let named = format!("{}: {}", violation.field, violation.description);
            if !status.message().contains(&named) {
                line.push_str(&format!("; {named}"));
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn a_refusal_names_its_fields_and_is_a_usage_error() {
        let details = ErrorDetails::with_bad_request_violation("filter.metadata[0].key", "must not be empty");
        let status = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "bad filter", details);
        let error = CliError::from(status);
        assert_eq!(error.to_string(), "InvalidArgument: bad filter; filter.metadata[0].key: must not be empty");
        let details = ErrorDetails::with_bad_request_violation("page_size", "at most 1000");
        let said = tonic::Status::with_error_details(tonic::Code::InvalidArgument, "page_size: at most 1000", details);
        assert_eq!(CliError::from(said).to_string(), "InvalidArgument: page_size: at most 1000", "said once");
        assert_eq!(error.exit_status(), exit::USAGE);
        assert_eq!(CliError::from(tonic::Status::unavailable("down")).exit_status(), exit::UNREACHABLE);
        assert_eq!(CliError::from(tonic::Status::permission_denied("no")).exit_status(), exit::DENIED);
        assert_eq!(CliError::from(tonic::Status::not_found("no")).exit_status(), exit::NOT_FOUND);
    }
}
