//! What the baselines insert directly, bypassing logwell: rows as logwell
//! stores them, by one COPY on PostgreSQL or by 500-row INSERTs on SQLite.

use uuid::Uuid;

/// The columns COPY fills, in order.
const COLUMNS: &str = "logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, \
     message, metadata, partition_day)";

/// One row as logwell stores it; the rest of its columns are constants.
pub struct Row {
    pub log_type: &'static str,
    pub run: Uuid,
    pub task: Option<Uuid>,
    pub seq: i64,
    pub message: String,
    /// The metadata object, as JSON.
    pub metadata: String,
}

/// Copies `rows` into `logs` with one text-format COPY, into today's
/// partitions, as logwell files the logs of runs begun today.
pub async fn copy(connection: &mut sqlx::PgConnection, rows: &[Row]) {
    let today = chrono::Utc::now().date_naive();
    let mut text = String::new();
    for Row { log_type, run, task, seq, message, metadata } in rows {
        let task = task.map_or("\\N".to_string(), |task| task.to_string());
        // COPY's text format: a backslash is an escape.
        let metadata = metadata.replace('\\', "\\\\");
        text.push_str(&format!(
            "{}\t{log_type}\t{run}\t{task}\t{seq}\t2026-11-22 10:00:00+00\t2026-11-22 10:00:00+00\tinfo\tstdout\t\t{message}\t{metadata}\t{today}\n",
            Uuid::now_v7()
        ));
    }
    let mut copy = connection.copy_in_raw(&format!("COPY {COLUMNS} FROM STDIN")).await.expect("copy");
    copy.send(text.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
}

/// Inserts `rows` into `logs`, 500 rows a statement, on `connection` (a
/// transaction's, usually). SQLite's logs also carry their run's integer
/// key: here the run id's low 63 bits, as distinct as the keys logwell hands
/// out (nothing joins them to `job_runs`).
pub async fn insert(connection: &mut sqlx::SqliteConnection, rows: &[Row]) {
    for part in rows.chunks(500) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO logs (id, type, job_run_id, run_key, \
             task_run_id, seq, event_time, received_at, level, stream, source, message, metadata) ",
        );
        insert.push_values(part, |mut values, Row { log_type, run, task, seq, message, metadata }| {
            values
                .push_bind(Uuid::now_v7().to_string())
                .push_bind(*log_type)
                .push_bind(run.to_string())
                .push_bind((run.as_u128() as i64) & i64::MAX)
                .push_bind(task.map(|task| task.to_string()))
                .push_bind(*seq)
                .push_bind(1_700_000_000_000_000i64)
                .push_bind(1_700_000_000_000_000i64)
                .push_bind("info")
                .push_bind("stdout")
                .push_bind("")
                .push_bind(message.as_str())
                .push_bind(metadata.as_str());
        });
        insert.build().execute(&mut *connection).await.expect("insert");
    }
}
