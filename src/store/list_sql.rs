//! Builds the listing query once for both backends; each backend supplies its
//! dialect and binds the parameters in its own column types.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::model::{
    Cursor, Grouping, LogFilter, LogQuery, LogType, MetadataCondition, Ordering, Position, SortOrder, TextSearch,
};

/// The columns every read selects, in `StoredRow` order.
pub(super) const LOG_COLUMNS: &str =
    "id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, message, metadata";

/// A value to bind, in the order the placeholders appear.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Id(Uuid),
    Int(i64),
    Real(f64),
    Text(String),
    Time(DateTime<Utc>),
}

/// What a store knows that narrows its reads.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReadScope<'a> {
    /// Whether the opt-in text index exists.
    pub text_index: bool,
    /// The partition days of the filter's job runs (PostgreSQL), so that a
    /// run's reads touch its day's partitions alone; empty: every partition.
    pub run_days: &'a [NaiveDate],
}

/// Binds a parameter and answers its placeholder.
pub(super) type Bind<'a> = &'a mut dyn FnMut(Param) -> String;

/// The few places where the two backends' SQL differs.
pub(super) trait Dialect {
    /// The placeholder for the `index`th parameter, counting from 1.
    fn placeholder(index: usize) -> String;
    /// A condition: the text expression `haystack` contains the text
    /// expression `needle`, literally (no wildcards).
    fn contains(haystack: &str, needle: &str) -> String;
    /// A condition: the log's message contains `search.text`, in a spelling
    /// the opt-in text index serves; `text_index` says whether the store
    /// built it.
    fn message_contains(search: &TextSearch, text_index: bool, bind: Bind) -> String;
    /// A condition: some top-level metadata value (strings as they are,
    /// other values as JSON, nulls never) satisfies `contains(value)`.
    fn metadata_value(contains: &dyn Fn(&str) -> String) -> String;
    /// A condition: the log's metadata satisfies `condition`.
    fn metadata_condition(condition: &MetadataCondition, bind: Bind) -> String;
    /// The column that the run indexes key a log's job run by.
    const RUN_KEY: &'static str;
    /// The column of a log's commit in the commit order of all logs.
    const COMMIT: &'static str;
    /// A log's place among its commit's logs: a column, or 0.
    const COMMIT_INDEX: &'static str;
    /// `ORDER BY` of the commit order.
    const COMMIT_ORDER: &'static str;
    /// A condition: a log belongs to the `job_runs` row in scope.
    const LOGS_OF_JOB_RUNS_ROW: &'static str;
    /// The `RUN_KEY` value of the job run whose id is bound at `placeholder`.
    fn run_key(placeholder: &str) -> String;
    /// A condition: the log belongs to one of the job runs whose ids are
    /// bound at `placeholders`.
    fn runs_in(placeholders: &[String]) -> String;
    /// The id column `column` as text.
    fn id_text(column: &str) -> String;
    /// The JSON text of top-level metadata key `key` (a key without '"'),
    /// NULL where it is absent.
    fn metadata_json(key: &str) -> String;
    /// A condition: a job run's labels include every one of `labels`.
    fn labels_include(labels: &std::collections::BTreeMap<String, String>, bind: Bind) -> String;
    /// The index of the `width`-microsecond bucket, counted from the Unix
    /// epoch, that a log's event time falls in (`width` is a placeholder).
    fn bucket(width: &str) -> String;
}

/// A statement with its parameters.
#[derive(Debug)]
pub(super) struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

/// Conditions and their parameters, gathered for one statement.
pub(super) struct Builder<'a, D> {
    pub conditions: Vec<String>,
    pub params: Vec<Param>,
    scope: ReadScope<'a>,
    dialect: std::marker::PhantomData<D>,
}

impl<'a, D: Dialect> Builder<'a, D> {
    pub fn new(scope: ReadScope<'a>) -> Self {
        Builder { conditions: Vec::new(), params: Vec::new(), scope, dialect: std::marker::PhantomData }
    }

    /// `WHERE …` for the conditions so far; empty if there are none.
    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() { String::new() } else { format!(" WHERE {}", self.conditions.join(" AND ")) }
    }

    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        D::placeholder(self.params.len())
    }

    pub fn condition(&mut self, column_and_operator: &str, param: Param) {
        let placeholder = self.bind(param);
        self.conditions.push(format!("{column_and_operator} {placeholder}"));
    }

    /// In commit order, after `after` and up to `through`.
    fn commit_range(&mut self, after: Position, through: Position) {
        for (operator, position) in [(">", after), ("<=", through)] {
            let commit = self.bind(Param::Int(position.commit));
            let index = self.bind(Param::Int(position.index.into()));
            self.conditions.push(format!("({}, {}) {operator} ({commit}, {index})", D::COMMIT, D::COMMIT_INDEX));
        }
    }

    /// `column` equals one of `values`; no condition if there are none.
    pub fn any_of(&mut self, column: &str, values: impl IntoIterator<Item = Param>) {
        let placeholders: Vec<String> = values.into_iter().map(|value| self.bind(value)).collect();
        self.one_of(column, placeholders);
    }

    /// `column` equals one of `values`, SQL literals written into the
    /// statement rather than bound: the partition keys (type, day), so that
    /// a plan made once for the statement prunes partitions as it is made.
    /// A plan made for bound keys holds every partition, and building it
    /// over 30 days of partitions took a follower's read 30–250 ms.
    fn literal_any_of(&mut self, column: &str, values: impl IntoIterator<Item = String>) {
        self.one_of(column, values.into_iter().collect());
    }

    /// `column` equals one of `values` (placeholders or literals).
    fn one_of(&mut self, column: &str, values: Vec<String>) {
        match values.as_slice() {
            [] => {}
            [one] => self.conditions.push(format!("{column} = {one}")),
            many => self.conditions.push(format!("{column} IN ({})", many.join(", "))),
        }
    }

    /// The conditions of `filter`, every read's shared `WHERE`.
    fn filter(&mut self, filter: &LogFilter) {
        self.literal_any_of("type", filter.types.iter().map(|log_type| format!("'{}'", log_type.as_str())));
        let runs: Vec<String> = filter.job_run_ids.iter().map(|id| self.bind(Param::Id(*id))).collect();
        match runs.as_slice() {
            [] => {}
            [one] => self.conditions.push(format!("{} = {}", D::RUN_KEY, D::run_key(one))),
            many => self.conditions.push(D::runs_in(many)),
        }
        if !self.scope.run_days.is_empty() {
            self.literal_any_of("partition_day", self.scope.run_days.iter().map(|day| format!("DATE '{day}'")));
            if filter.types.is_empty() {
                self.literal_any_of(
                    "type",
                    [LogType::Job, LogType::Task].map(|log_type| format!("'{}'", log_type.as_str())),
                );
            }
        }
        self.any_of("task_run_id", filter.task_run_ids.iter().map(|id| Param::Id(*id)));
        if filter.ordering() == Ordering::SystemSeq {
            // Spelled out so that both planners pick the partial system-seq index.
            self.conditions.push("job_run_id IS NULL".into());
        }
        self.any_of("level", filter.levels.iter().map(|level| Param::Text(level.as_str().into())));
        self.any_of("stream", filter.streams.iter().map(|stream| Param::Text(stream.as_str().into())));
        self.any_of("source", filter.sources.iter().map(|source| Param::Text(source.clone())));
        if let Some(start) = filter.start_time {
            self.condition("event_time >=", Param::Time(start));
        }
        if let Some(end) = filter.end_time {
            self.condition("event_time <", Param::Time(end));
        }
        if let Some(search) = &filter.text {
            let text_index = self.scope.text_index;
            let in_message = D::message_contains(search, text_index, &mut |param| self.bind(param));
            let condition = if search.include_metadata {
                let fold = |text: &str| if search.ignore_case { format!("lower({text})") } else { text.to_string() };
                let needle = fold(&self.bind(Param::Text(search.text.clone())));
                let contains = |haystack: &str| D::contains(&fold(haystack), &needle);
                format!("({in_message} OR {})", D::metadata_value(&contains))
            } else {
                in_message
            };
            self.conditions.push(condition);
        }
        for condition in &filter.metadata {
            let sql = D::metadata_condition(condition, &mut |param| self.bind(param));
            self.conditions.push(sql);
        }
        if let Some(after_seq) = filter.after_seq {
            self.condition("seq >", Param::Int(after_seq));
        }
    }

    /// The cursor's values, in `order_keys` order, as SQL expressions.
    fn cursor_values(&mut self, cursor: Cursor) -> Vec<String> {
        match cursor {
            Cursor::Seq(seq) => vec![self.bind(Param::Int(seq))],
            Cursor::RunSeq { job_run_id, seq } => {
                let run = self.bind(Param::Id(job_run_id));
                vec![D::run_key(&run), self.bind(Param::Int(seq))]
            }
            Cursor::Time { time, id } => vec![self.bind(Param::Time(time)), self.bind(Param::Id(id))],
        }
    }
}

/// The columns that order a listing, most significant first.
fn order_keys<D: Dialect>(ordering: Ordering) -> Vec<&'static str> {
    match ordering {
        Ordering::RunSeq | Ordering::SystemSeq => vec!["seq"],
        Ordering::TaskRunSeq => vec![D::RUN_KEY, "seq"],
        Ordering::Time => vec!["event_time", "id"],
    }
}

/// The query's filter, with a time cursor's time as a bound too: the cursor
/// condition `(event_time, id) > (t, i)` already implies it, but spelled as
/// a plain comparison it is what SQLite's planner starts the index range
/// at. Without it SQLite started every page at the filter's own start_time
/// and skipped forward, so a long export across runs slowed page by page.
fn time_bounded_by_cursor(query: &LogQuery) -> LogFilter {
    let mut filter = query.filter.clone();
    if let Some(Cursor::Time { time, .. }) = query.after {
        match query.order {
            SortOrder::Ascending => filter.start_time = Some(filter.start_time.map_or(time, |start| start.max(time))),
            SortOrder::Descending => {
                // end_time is exclusive; the cursor's own time stays in range.
                let end = time + chrono::TimeDelta::microseconds(1);
                filter.end_time = Some(filter.end_time.map_or(end, |bound| bound.min(end)));
            }
        }
    }
    filter
}

/// `SELECT … FROM logs WHERE … ORDER BY … LIMIT …` for one page.
pub(super) fn list_statement<D: Dialect>(query: &LogQuery, scope: ReadScope) -> Statement {
    let filter = &time_bounded_by_cursor(query);
    let ordering = filter.ordering();
    let mut builder = Builder::<D>::new(scope);

    builder.filter(filter);

    let keys = order_keys::<D>(ordering);
    let (comparison, direction) = match query.order {
        SortOrder::Ascending => (">", "ASC"),
        SortOrder::Descending => ("<", "DESC"),
    };
    if let Some(cursor) = query.after {
        let values = builder.cursor_values(cursor);
        builder.conditions.push(format!("({}) {comparison} ({})", keys.join(", "), values.join(", ")));
    }

    let mut sql = format!("SELECT {LOG_COLUMNS} FROM logs{}", builder.where_clause());
    let order_by: Vec<String> = keys.iter().map(|key| format!("{key} {direction}")).collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT {}", order_by.join(", "), query.limit));
    Statement { sql, params: builder.params }
}

/// `SELECT …, commit FROM logs WHERE … ORDER BY commit, id LIMIT …`: the
/// logs matching `filter` after `after` and up to `through` in commit
/// order (at most the horizon, below which every commit has ended).
pub(super) fn committed_statement<D: Dialect>(
    filter: &LogFilter,
    after: Position,
    through: Position,
    limit: usize,
    scope: ReadScope,
) -> Statement {
    let mut builder = Builder::<D>::new(scope);
    builder.filter(filter);
    builder.commit_range(after, through);
    let sql = format!(
        "SELECT {LOG_COLUMNS}, {} AS log_commit, {} AS log_commit_index FROM logs{} ORDER BY {} LIMIT {limit}",
        D::COMMIT,
        D::COMMIT_INDEX,
        builder.where_clause(),
        D::COMMIT_ORDER,
    );
    Statement { sql, params: builder.params }
}

/// `SELECT log_commit, log_commit_index`: the position of the `window`-th
/// log after `after` in commit order, below `horizon`, if there is one
/// (the last of a window of `committed_statement`, from the index alone).
pub(super) fn window_end_statement<D: Dialect>(after: Position, horizon: Position, window: usize) -> Statement {
    let mut builder = Builder::<D>::new(ReadScope::default());
    builder.commit_range(after, horizon);
    let sql = format!(
        "SELECT {} AS log_commit, {} AS log_commit_index FROM logs{} ORDER BY {} LIMIT 1 OFFSET {}",
        D::COMMIT,
        D::COMMIT_INDEX,
        builder.where_clause(),
        D::COMMIT_ORDER,
        window.saturating_sub(1),
    );
    Statement { sql, params: builder.params }
}

/// The value a log groups under, as text.
fn group_value<D: Dialect>(grouping: &Grouping) -> String {
    match grouping {
        Grouping::Level => "level".into(),
        Grouping::Type => "type".into(),
        Grouping::Stream => "stream".into(),
        Grouping::Source => "source".into(),
        Grouping::JobRun => D::id_text("job_run_id"),
        Grouping::TaskRun => D::id_text("task_run_id"),
        Grouping::Metadata(key) => D::metadata_json(key),
    }
}

/// `SELECT g0…, bucket, count(*) … GROUP BY …`: the logs matching `filter`
/// counted per distinct values of `group_by` (columns `g0`, `g1`, …), and
/// per bucket of `bucket_micros` (column `bucket`, an index from the epoch)
/// when given.
pub(super) fn count_statement<D: Dialect>(
    filter: &LogFilter,
    group_by: &[Grouping],
    bucket_micros: Option<i64>,
    scope: ReadScope,
) -> Statement {
    let mut builder = Builder::<D>::new(scope);
    let mut keys: Vec<String> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (index, grouping) in group_by.iter().enumerate() {
        columns.push(format!("{} AS g{index}", group_value::<D>(grouping)));
        keys.push(format!("g{index}"));
    }
    if let Some(width) = bucket_micros {
        let width = builder.bind(Param::Int(width));
        columns.push(format!("{} AS bucket", D::bucket(&width)));
        keys.push("bucket".into());
    }
    columns.push("count(*) AS count".into());
    builder.filter(filter);
    let mut sql = format!("SELECT {} FROM logs{}", columns.join(", "), builder.where_clause());
    if !keys.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
    }
    Statement { sql, params: builder.params }
}

/// `SELECT min(event_time), max(event_time) …` of the logs matching `filter`.
pub(super) fn time_range_statement<D: Dialect>(filter: &LogFilter, scope: ReadScope) -> Statement {
    let mut builder = Builder::<D>::new(scope);
    builder.filter(filter);
    let sql = format!("SELECT min(event_time) AS first, max(event_time) AS last FROM logs{}", builder.where_clause());
    Statement { sql, params: builder.params }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Level, LogType, MetadataTest, Stream, TextSearch};
    use crate::store::postgres::dialect::PostgresDialect as Postgres;
    use crate::store::sqlite::dialect::SqliteDialect as Sqlite;

    #[test]
    fn a_run_listing_pages_by_seq() {
        let run = Uuid::now_v7();
        let query = LogQuery {
            filter: LogFilter { levels: Level::Warn.and_above().to_vec(), ..LogFilter::sequence(Some(run)) },
            order: SortOrder::Descending,
            after: Some(Cursor::Seq(42)),
            limit: 11,
        };
        let statement = list_statement::<Postgres>(&query, ReadScope::default());
        assert_eq!(
            statement.sql,
            format!(
                "SELECT {LOG_COLUMNS} FROM logs WHERE job_run_id = $1 AND level IN ($2, $3, $4) \
                 AND (seq) < ($5) ORDER BY seq DESC LIMIT 11"
            )
        );
        assert_eq!(statement.params[0], Param::Id(run));
        assert_eq!(statement.params[4], Param::Int(42));
        assert!(list_statement::<Sqlite>(&query, ReadScope::default()).sql.contains(
            "WHERE run_key = (SELECT key FROM job_runs WHERE id = ?1) AND level IN (?2, ?3, ?4) AND (seq) < (?5)"
        ));
    }

    #[test]
    fn system_and_cross_run_listings_use_their_own_keys() {
        let system = LogQuery { filter: LogFilter::sequence(None), order: SortOrder::Ascending, after: None, limit: 5 };
        assert!(
            list_statement::<Postgres>(&system, ReadScope::default())
                .sql
                .ends_with("WHERE type = 'system' AND job_run_id IS NULL ORDER BY seq ASC LIMIT 5")
        );
        let text = TextSearch { text: "50%_off".into(), ignore_case: false, include_metadata: false };
        let (cursor_time, earlier) = (Utc::now(), Utc::now() - chrono::TimeDelta::hours(1));
        let search = LogQuery {
            filter: LogFilter { text: Some(text), start_time: Some(earlier), ..LogFilter::default() },
            order: SortOrder::Ascending,
            after: Some(Cursor::Time { time: cursor_time, id: Uuid::now_v7() }),
            limit: 5,
        };
        // The cursor's time is the range's start: where the index scan begins.
        let statement = list_statement::<Postgres>(&search, ReadScope::default());
        assert!(statement.sql.ends_with(
            "WHERE event_time >= $1 AND message LIKE $2 AND (event_time, id) > ($3, $4) \
             ORDER BY event_time ASC, id ASC LIMIT 5"
        ));
        assert_eq!(statement.params[0], Param::Time(cursor_time));
        assert_eq!(statement.params[1], Param::Text(r"%50\%\_off%".into()), "wildcards are literal");
        let backwards = LogQuery { order: SortOrder::Descending, ..search };
        let statement = list_statement::<Postgres>(&backwards, ReadScope::default());
        assert!(statement.sql.contains("WHERE event_time >= $1 AND event_time < $2"), "{}", statement.sql);
        assert_eq!(statement.params[1], Param::Time(cursor_time + chrono::TimeDelta::microseconds(1)));
    }

    #[test]
    fn sets_metadata_and_searches_become_conditions() {
        let runs = vec![Uuid::now_v7(), Uuid::now_v7()];
        let filter = LogFilter {
            types: vec![LogType::Job, LogType::Task],
            job_run_ids: runs,
            streams: vec![Stream::Stderr],
            text: Some(TextSearch { text: "Timeout".into(), ignore_case: true, include_metadata: true }),
            metadata: vec![
                MetadataCondition { key: "worker_id".into(), test: MetadataTest::Equals(json!("gpu-7")) },
                MetadataCondition { key: "cycle".into(), test: MetadataTest::OneOf(vec![json!(41), json!(4.5)]) },
                MetadataCondition { key: "error_type".into(), test: MetadataTest::Exists(false) },
            ],
            ..LogFilter::default()
        };
        let query = LogQuery { filter, order: SortOrder::Ascending, after: None, limit: 10 };
        let postgres = list_statement::<Postgres>(&query, ReadScope::default());
        assert!(
            postgres.sql.contains(
                "WHERE type IN ('job', 'task') AND job_run_id IN ($1, $2) AND stream = $3 \
             AND (message ILIKE $4 OR EXISTS (SELECT 1 FROM jsonb_each_text(logs.metadata) \
             AS entry WHERE strpos(lower(entry.value), lower($5)) > 0)) \
             AND logs.metadata @> $6::jsonb AND (logs.metadata @> $7::jsonb OR logs.metadata @> $8::jsonb) \
             AND NOT (logs.metadata ? $9) ORDER BY"
            ),
            "{}",
            postgres.sql
        );
        assert_eq!(postgres.params[5], Param::Text(r#"{"worker_id":"gpu-7"}"#.into()));
        let sqlite = list_statement::<Sqlite>(&query, ReadScope::default());
        assert!(sqlite.sql.contains("run_key IN (SELECT key FROM job_runs WHERE id IN (?1, ?2))"), "{}", sqlite.sql);
        let cycle = "json_extract(metadata, '$.\"cycle\"')";
        let cycle_type = "json_type(metadata, '$.\"cycle\"')";
        assert!(sqlite.sql.contains(&format!(
            "(({cycle} = ?7 AND {cycle_type} IN ('integer', 'real')) OR ({cycle} = ?8 AND {cycle_type} IN ('integer', 'real')))"
        )), "{}", sqlite.sql);
        assert_eq!(sqlite.params[6], Param::Int(41));
        assert_eq!(sqlite.params[7], Param::Real(4.5));
        assert!(sqlite.sql.contains("json_type(metadata, '$.\"error_type\"') IS NULL"), "{}", sqlite.sql);
        assert!(!sqlite.sql.contains("logs_text"), "no text index, no lookup in it");
    }

    #[test]
    fn partition_keys_are_written_into_the_statement() {
        let run = Uuid::now_v7();
        let days = [NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()];
        let filter = LogFilter { job_run_ids: vec![run], ..LogFilter::default() };
        let query = LogQuery { filter, order: SortOrder::Ascending, after: None, limit: 3 };
        let statement = list_statement::<Postgres>(&query, ReadScope { text_index: false, run_days: &days });
        assert!(
            statement.sql.contains(
                "WHERE job_run_id = $1 AND partition_day IN (DATE '2026-11-25', DATE '2026-11-26') \
                 AND type IN ('job', 'task') ORDER BY"
            ),
            "{}",
            statement.sql
        );
        assert_eq!(statement.params, vec![Param::Id(run)], "only the run is bound");
    }

    #[test]
    fn the_sqlite_text_index_narrows_searches_of_three_characters_or_more() {
        let search = |text: &str, include_metadata: bool| LogQuery {
            filter: LogFilter {
                text: Some(TextSearch { text: text.into(), ignore_case: false, include_metadata }),
                ..LogFilter::default()
            },
            order: SortOrder::Ascending,
            after: None,
            limit: 10,
        };
        let indexed =
            list_statement::<Sqlite>(&search("tim", false), ReadScope { text_index: true, ..ReadScope::default() });
        assert!(
            indexed.sql.contains(
                "WHERE (logs.rowid IN (SELECT rowid FROM logs_text WHERE logs_text MATCH \
                 ('\"' || replace(?1, '\"', '\"\"') || '\"')) AND instr(message, ?1) > 0)"
            ),
            "{}",
            indexed.sql
        );
        for unindexed in [search("ti", false), search("timeout", true)] {
            let sql = list_statement::<Sqlite>(&unindexed, ReadScope { text_index: true, ..ReadScope::default() }).sql;
            assert!(!sql.contains("logs_text"), "{sql}");
        }
    }
}
