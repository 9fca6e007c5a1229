//! Builds the job-run listing once for both backends.

use super::job_run_columns;
use super::list_sql::{Builder, Dialect, Param, ReadScope, Statement};
use crate::model::{Level, RunQuery, RunState, SYSTEM_SEQUENCE};

/// The column counting a level's logs.
fn level_column(level: Level) -> String {
    format!("{}_logs", level.as_str())
}

/// `SELECT … FROM job_runs WHERE … ORDER BY active_at DESC, id DESC LIMIT …`
/// for one page. The order is the `job_runs_activity` index's, read
/// backwards, so an unfiltered page reads `limit` entries.
pub(super) fn job_runs_statement<D: Dialect>(query: &RunQuery) -> Statement {
    let filter = &query.filter;
    let mut builder = Builder::<D>::new(ReadScope::default());
    builder.condition("id <>", Param::Id(SYSTEM_SEQUENCE));
    builder.any_of("id", filter.ids.iter().map(|id| Param::Id(*id)));
    match filter.state {
        Some(RunState::Open) => builder.conditions.push("completed_at IS NULL".into()),
        // An outcome implies completion (a CHECK says so); said twice, the
        // planner multiplies the two selectivities as if independent,
        // expects a tenth of the failed runs, and scans and sorts.
        Some(RunState::Complete) if filter.outcomes.is_empty() => {
            builder.conditions.push("completed_at IS NOT NULL".into())
        }
        Some(RunState::Complete) | None => {}
    }
    builder.any_of("outcome", filter.outcomes.iter().map(|outcome| Param::Text(outcome.as_str().into())));
    if let Some(from) = filter.active_from {
        builder.condition("active_at >=", Param::Time(from));
    }
    if let Some(until) = filter.active_until {
        builder.condition("active_at <", Param::Time(until));
    }
    if let Some(name) = &filter.name {
        builder.condition("name =", Param::Text(name.clone()));
    }
    if !filter.labels.is_empty() {
        let condition = D::labels_include(&filter.labels, &mut |param| builder.bind(param));
        builder.conditions.push(condition);
    }
    if let Some(level) = filter.min_level {
        let counts: Vec<String> = level.and_above().iter().map(|level| level_column(*level)).collect();
        builder.conditions.push(format!("({}) > 0", counts.join(" + ")));
    }
    if let Some(after) = query.after {
        let activity = builder.bind(Param::Time(after.last_activity));
        let id = builder.bind(Param::Id(after.id));
        // Spelled out as well as the row comparison, so that SQLite starts
        // its index range at the cursor.
        builder.conditions.push(format!("active_at <= {activity}"));
        builder.conditions.push(format!("(active_at, id) < ({activity}, {id})"));
    }
    let sql = format!(
        "SELECT {} FROM job_runs{} ORDER BY active_at DESC, id DESC LIMIT {}",
        job_run_columns::<D>(),
        builder.where_clause(),
        query.limit
    );
    Statement { sql, params: builder.params }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::model::{Outcome, RunCursor, RunFilter};
    use crate::store::postgres::dialect::PostgresDialect as Postgres;
    use crate::store::sqlite::dialect::SqliteDialect as Sqlite;

    #[test]
    fn failed_runs_of_a_name_page_by_activity() {
        let cursor = RunCursor { last_activity: Utc::now(), id: Uuid::now_v7() };
        let query = RunQuery {
            filter: RunFilter {
                state: Some(RunState::Complete),
                outcomes: vec![Outcome::Failed],
                name: Some("nightly-build".into()),
                labels: BTreeMap::from([("branch".into(), "main".into())]),
                min_level: Some(Level::Error),
                ..RunFilter::default()
            },
            after: Some(cursor),
            limit: 20,
        };
        let postgres = job_runs_statement::<Postgres>(&query);
        assert!(
            postgres.sql.ends_with(
                "FROM job_runs WHERE id <> $1 AND outcome = $2 AND name = $3 \
                 AND labels @> $4::jsonb AND (error_logs + fatal_logs) > 0 AND active_at <= $5 \
                 AND (active_at, id) < ($5, $6) ORDER BY active_at DESC, id DESC LIMIT 20"
            ),
            "{}",
            postgres.sql
        );
        assert_eq!(postgres.params[3], Param::Text(r#"{"branch":"main"}"#.into()));
        let sqlite = job_runs_statement::<Sqlite>(&query);
        assert!(sqlite.sql.contains("json_extract(labels, '$.\"branch\"') = ?4"), "{}", sqlite.sql);
    }
}
