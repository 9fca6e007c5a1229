//! Writes, from whatever entry point: admission (the rules every write
//! passes before it is queued), then the group commit that stores it.

mod admission;
mod commit;

pub use admission::{Admission, AdmissionError, Admitted, Naming, RateLimited, Submitted, validate_log};
pub use commit::{Committer, Ingest, IngestError, IngestStats, WhenFull};
