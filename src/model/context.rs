//! Context around one log: which log, and how many before and after it.

use uuid::Uuid;

use super::query::MAX_PAGE_SIZE;
use super::validation::{Violations, optional_uuid, required_uuid};

/// Logs before and after when the request names no number.
pub const DEFAULT_CONTEXT: usize = 10;

/// Which log to look around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Id(Uuid),
    /// A seq of a job run, or of the system logs (`None`).
    Position {
        job_run_id: Option<Uuid>,
        seq: i64,
    },
}

/// A validated context request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextRequest {
    pub anchor: Anchor,
    pub before: usize,
    pub after: usize,
    pub same_task_run: bool,
}

/// A context request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ContextDraft {
    pub id: Option<String>,
    /// (job_run_id, seq)
    pub position: Option<(String, i64)>,
    pub before: Option<i32>,
    pub after: Option<i32>,
    pub same_task_run: bool,
}

impl ContextDraft {
    pub fn validate(self) -> Result<ContextRequest, Violations> {
        let mut violations = Violations::default();
        let anchor = match (self.id, self.position) {
            (Some(id), _) => required_uuid(&mut violations, "id", &id).map(Anchor::Id),
            (None, Some((job_run_id, seq))) => {
                let job_run_id = optional_uuid(&mut violations, "position.job_run_id", &job_run_id);
                if seq < 1 {
                    violations.add("position.seq", format!("{seq} must be at least 1"));
                }
                Some(Anchor::Position { job_run_id, seq })
            }
            (None, None) => {
                violations.add("anchor", "names no log: set id, or position");
                None
            }
        };
        let mut window = |field: &str, asked: Option<i32>| match asked.map(usize::try_from) {
            None => DEFAULT_CONTEXT,
            Some(Ok(count)) if count <= MAX_PAGE_SIZE => count,
            Some(_) => {
                violations.add(field, format!("{} is out of range: 0 to {MAX_PAGE_SIZE}", asked.unwrap_or_default()));
                0
            }
        };
        let (before, after) = (window("before", self.before), window("after", self.after));
        match anchor {
            Some(anchor) if violations.is_empty() => {
                Ok(ContextRequest { anchor, before, after, same_task_run: self.same_task_run })
            }
            _ => Err(violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(draft: ContextDraft) -> Vec<String> {
        draft.validate().expect_err("refused").iter().map(|violation| violation.field.clone()).collect()
    }

    #[test]
    fn windows_default_and_are_bounded() {
        let id = Some(Uuid::now_v7().to_string());
        let request =
            ContextDraft { id: id.clone(), after: Some(0), ..ContextDraft::default() }.validate().expect("valid");
        assert_eq!((request.before, request.after), (DEFAULT_CONTEXT, 0));
        assert_eq!(fields(ContextDraft { id: id.clone(), before: Some(1_001), ..ContextDraft::default() }), ["before"]);
        assert_eq!(fields(ContextDraft { id, after: Some(-1), ..ContextDraft::default() }), ["after"]);
        assert_eq!(fields(ContextDraft::default()), ["anchor"]);
        let position = ContextDraft { position: Some(("x".into(), 0)), ..ContextDraft::default() };
        assert_eq!(fields(position), ["position.job_run_id", "position.seq"]);
    }
}
