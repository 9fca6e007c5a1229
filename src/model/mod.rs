//! The domain: log types, levels, streams, stored logs, queries and the rules
//! that make them valid. Plain Rust: no protobuf and no SQL here; conversions
//! live at the edges (`api` and `store`).

mod context;
mod count;
mod filter;
mod follow;
mod job_run;
mod kinds;
mod limits;
mod log;
mod position;
mod query;
mod retention;
mod run_listing;
mod validation;

pub use context::{Anchor, ContextDraft, ContextRequest, DEFAULT_CONTEXT};
pub use count::{Buckets, CountDraft, CountRequest, DEFAULT_TOP, Grouping, MAX_BUCKETS, MAX_GROUPINGS, MAX_TOP};
pub use filter::{
    CaseFolding, FilterDraft, LogFilter, MAX_METADATA_CONDITIONS, MAX_METADATA_KEY_BYTES, MAX_ONE_OF_VALUES,
    MAX_SET_MEMBERS, MetadataCondition, MetadataConditionDraft, MetadataTest, TextSearch,
};
pub use follow::{Follow, FollowDraft, Followed, MAX_LAST, SYSTEM_SEQUENCE, Start};
pub use job_run::{
    ACTIVITY_RESOLUTION, Completion, CompletionDraft, JobRun, LevelCounts, MAX_LABEL_KEY_BYTES, MAX_LABEL_VALUE_BYTES,
    MAX_LABELS, MAX_NAME_BYTES, MAX_SUMMARY_BYTES, RunIdentity, StartDraft, activity_at,
};
pub use kinds::{Level, LogType, Outcome, Owner, Stream, UnknownName};
pub use limits::{Limits, TRUNCATED_FROM_BYTES};
pub use log::{Log, LogDraft, NewLog, Receipt};
pub use position::Position;
pub use query::{Cursor, DEFAULT_PAGE_SIZE, LogQuery, MAX_PAGE_SIZE, Ordering, QueryDraft, SortOrder};
pub use retention::{MIN_RETENTION, RetentionPolicy};
pub use run_listing::{RunCursor, RunFilter, RunQuery, RunQueryDraft, RunState};
pub use validation::{FieldViolation, MAX_TIME, MIN_TIME, Violations, required_id};
pub(crate) use validation::{optional_uuid, required_uuid};
