//! PostgreSQL, for production: one pool; batches go in as arrays through a
//! single `INSERT … SELECT FROM unnest(…)`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use super::list_sql::{self, Dialect, LOG_COLUMNS, Param};
use super::{LogStore, StoreError, StoredRow, sequence};
use crate::model::{Log, LogQuery, NewLog, Receipt};

/// sqlx's migrator holds a PostgreSQL advisory lock while it runs, so
/// replicas that start together migrate one after the other.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Reserves `$2 - 1` seqs of one sequence and returns the next free seq; the
/// first reserved seq is that minus the count. The row stays locked until the
/// transaction ends, which makes seq order commit order.
const ALLOCATE_SEQS: &str = "INSERT INTO job_runs (id, next_seq) VALUES ($1, $2) \
     ON CONFLICT (id) DO UPDATE SET next_seq = job_runs.next_seq + excluded.next_seq - 1 \
     RETURNING next_seq";

const INSERT_LOGS: &str = "INSERT INTO logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, \
     level, stream, source, message, metadata) \
     SELECT id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, message, \
     metadata::jsonb \
     FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], $6::timestamptz[], \
     $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[]) \
     AS batch(id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, message, \
     metadata)";

pub(super) struct PostgresStore {
    pool: PgPool,
}

struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn placeholder(index: usize) -> String {
        format!("${index}")
    }

    fn contains(column: &str, placeholder: &str) -> String {
        format!("strpos({column}, {placeholder}) > 0")
    }
}

impl PostgresStore {
    pub(super) async fn open(url: &str, options: &super::ConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait::async_trait]
impl LogStore for PostgresStore {
    async fn append(&self, logs: &[NewLog]) -> Result<Vec<Receipt>, StoreError> {
        let metadata = logs.iter().map(|log| serde_json::to_string(&log.metadata)).collect::<Result<Vec<_>, _>>()?;
        let mut transaction = self.pool.begin().await?;
        let mut starts = BTreeMap::new();
        for (sequence, count) in sequence::demand(logs) {
            let next: i64 =
                sqlx::query_scalar(ALLOCATE_SEQS).bind(sequence).bind(count + 1).fetch_one(&mut *transaction).await?;
            starts.insert(sequence, next - count);
        }
        let seqs = sequence::assign(logs, starts);
        sqlx::query(INSERT_LOGS)
            .bind(logs.iter().map(|log| log.id).collect::<Vec<Uuid>>())
            .bind(logs.iter().map(|log| log.owner.log_type().as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.owner.job_run_id()).collect::<Vec<Option<Uuid>>>())
            .bind(logs.iter().map(|log| log.owner.task_run_id()).collect::<Vec<Option<Uuid>>>())
            .bind(&seqs)
            .bind(logs.iter().map(|log| log.time).collect::<Vec<DateTime<Utc>>>())
            .bind(logs.iter().map(|log| log.received_at).collect::<Vec<DateTime<Utc>>>())
            .bind(logs.iter().map(|log| log.level.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.stream.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.source.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.message.as_str()).collect::<Vec<&str>>())
            .bind(&metadata)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(sequence::receipts(logs, seqs))
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<Log>, StoreError> {
        let statement = list_sql::list_statement::<PostgresDialect>(query);
        let mut select = sqlx::query_as::<_, StoredRow>(&statement.sql);
        for param in statement.params {
            select = match param {
                Param::Id(id) => select.bind(id),
                Param::Int(value) => select.bind(value),
                Param::Text(text) => select.bind(text),
                Param::Time(time) => select.bind(time),
            };
        }
        select.fetch_all(&self.pool).await?.into_iter().map(Log::try_from).collect()
    }

    async fn get(&self, id: Uuid) -> Result<Option<Log>, StoreError> {
        sqlx::query_as::<_, StoredRow>(&format!("SELECT {LOG_COLUMNS} FROM logs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Log::try_from)
            .transpose()
    }

    async fn check_health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM job_runs LIMIT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
