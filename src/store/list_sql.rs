//! Builds the listing query once for both backends; each backend supplies its
//! dialect and binds the parameters in its own column types.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Cursor, LogQuery, Ordering, SortOrder};

/// The columns every read selects, in `StoredRow` order.
pub(super) const LOG_COLUMNS: &str =
    "id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, message, metadata";

/// A value to bind, in the order the placeholders appear.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Id(Uuid),
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
}

/// The few places where the two backends' SQL differs.
pub(super) trait Dialect {
    /// The placeholder for the `index`th parameter, counting from 1.
    fn placeholder(index: usize) -> String;
    /// A condition: `column` contains the text bound at `placeholder`,
    /// literally (no wildcards).
    fn contains(column: &str, placeholder: &str) -> String;
    /// The column that the run indexes key a log's job run by.
    const RUN_KEY: &'static str;
    /// The `RUN_KEY` value of the job run whose id is bound at `placeholder`.
    fn run_key(placeholder: &str) -> String;
}

/// A statement with its parameters.
#[derive(Debug)]
pub(super) struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

struct Builder<D> {
    conditions: Vec<String>,
    params: Vec<Param>,
    dialect: std::marker::PhantomData<D>,
}

impl<D: Dialect> Builder<D> {
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        D::placeholder(self.params.len())
    }

    fn condition(&mut self, column_and_operator: &str, param: Param) {
        let placeholder = self.bind(param);
        self.conditions.push(format!("{column_and_operator} {placeholder}"));
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

/// `SELECT … FROM logs WHERE … ORDER BY … LIMIT …` for one page.
pub(super) fn list_statement<D: Dialect>(query: &LogQuery) -> Statement {
    let filter = &query.filter;
    let ordering = filter.ordering();
    let mut builder = Builder::<D> { conditions: Vec::new(), params: Vec::new(), dialect: std::marker::PhantomData };

    if let Some(log_type) = filter.log_type {
        builder.condition("type =", Param::Text(log_type.as_str().into()));
    }
    if let Some(job_run_id) = filter.job_run_id {
        let run = builder.bind(Param::Id(job_run_id));
        builder.conditions.push(format!("{} = {}", D::RUN_KEY, D::run_key(&run)));
    }
    if let Some(task_run_id) = filter.task_run_id {
        builder.condition("task_run_id =", Param::Id(task_run_id));
    }
    if ordering == Ordering::SystemSeq {
        // Spelled out so that both planners pick the partial system-seq index.
        builder.conditions.push("job_run_id IS NULL".into());
    }
    if let Some(min_level) = filter.min_level.filter(|level| level.and_above().len() < crate::model::Level::ALL.len()) {
        let placeholders: Vec<String> =
            min_level.and_above().iter().map(|level| builder.bind(Param::Text(level.as_str().into()))).collect();
        builder.conditions.push(format!("level IN ({})", placeholders.join(", ")));
    }
    if let Some(stream) = filter.stream {
        builder.condition("stream =", Param::Text(stream.as_str().into()));
    }
    if let Some(source) = &filter.source {
        builder.condition("source =", Param::Text(source.clone()));
    }
    if let Some(start) = filter.start_time {
        builder.condition("event_time >=", Param::Time(start));
    }
    if let Some(end) = filter.end_time {
        builder.condition("event_time <", Param::Time(end));
    }
    if let Some(text) = &filter.message_contains {
        let placeholder = builder.bind(Param::Text(text.clone()));
        builder.conditions.push(D::contains("message", &placeholder));
    }
    if let Some(after_seq) = filter.after_seq {
        builder.condition("seq >", Param::Int(after_seq));
    }

    let keys = order_keys::<D>(ordering);
    let (comparison, direction) = match query.order {
        SortOrder::Ascending => (">", "ASC"),
        SortOrder::Descending => ("<", "DESC"),
    };
    if let Some(cursor) = query.after {
        let values = builder.cursor_values(cursor);
        builder.conditions.push(format!("({}) {comparison} ({})", keys.join(", "), values.join(", ")));
    }

    let mut sql = format!("SELECT {LOG_COLUMNS} FROM logs");
    if !builder.conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&builder.conditions.join(" AND "));
    }
    let order_by: Vec<String> = keys.iter().map(|key| format!("{key} {direction}")).collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT {}", order_by.join(", "), query.limit));
    Statement { sql, params: builder.params }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Level, LogFilter, LogType};

    struct Numbered;

    impl Dialect for Numbered {
        fn placeholder(index: usize) -> String {
            format!("${index}")
        }

        fn contains(column: &str, placeholder: &str) -> String {
            format!("strpos({column}, {placeholder}) > 0")
        }

        const RUN_KEY: &'static str = "job_run_id";

        fn run_key(placeholder: &str) -> String {
            placeholder.into()
        }
    }

    #[test]
    fn a_run_listing_pages_by_seq() {
        let run = Uuid::now_v7();
        let query = LogQuery {
            filter: LogFilter { job_run_id: Some(run), min_level: Some(Level::Warn), ..LogFilter::default() },
            order: SortOrder::Descending,
            after: Some(Cursor::Seq(42)),
            limit: 11,
        };
        let statement = list_statement::<Numbered>(&query);
        assert_eq!(
            statement.sql,
            format!(
                "SELECT {LOG_COLUMNS} FROM logs WHERE job_run_id = $1 AND level IN ($2, $3, $4) \
                 AND (seq) < ($5) ORDER BY seq DESC LIMIT 11"
            )
        );
        assert_eq!(statement.params[0], Param::Id(run));
        assert_eq!(statement.params[4], Param::Int(42));
    }

    #[test]
    fn system_and_cross_run_listings_use_their_own_keys() {
        let system = LogQuery {
            filter: LogFilter { log_type: Some(LogType::System), ..LogFilter::default() },
            order: SortOrder::Ascending,
            after: None,
            limit: 5,
        };
        assert!(
            list_statement::<Numbered>(&system)
                .sql
                .ends_with("WHERE type = $1 AND job_run_id IS NULL ORDER BY seq ASC LIMIT 5")
        );
        let search = LogQuery {
            filter: LogFilter { message_contains: Some("50%_off".into()), ..LogFilter::default() },
            order: SortOrder::Ascending,
            after: Some(Cursor::Time { time: Utc::now(), id: Uuid::now_v7() }),
            limit: 5,
        };
        assert!(list_statement::<Numbered>(&search).sql.ends_with(
            "WHERE strpos(message, $1) > 0 AND (event_time, id) > ($2, $3) ORDER BY event_time ASC, id ASC LIMIT 5"
        ));
    }
}
