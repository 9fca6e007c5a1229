-- Job runs get an integer key, and logs carry their run's key beside its id:
-- the run indexes are keyed by an 8-byte integer instead of a 36-character
-- UUID. When a thousand runs are written at once every commit appends to a
-- thousand places of these indexes, and smaller entries fill and split their
-- pages several times less often (docs/benchmarks.md has the figures).
-- Readers find a run's key through job_runs' unique id. Both tables are rebuilt (SQLite cannot add a key or a
-- CHECK on existing rows in place); the migration is one transaction, so an
-- interrupted upgrade leaves the old layout whole.
CREATE TABLE job_runs_keyed (
    -- Stable: an INTEGER PRIMARY KEY is the rowid itself, which VACUUM keeps.
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
    next_seq INTEGER NOT NULL CHECK (next_seq >= 1),
    first_log_time INTEGER,
    last_log_time INTEGER,
    completed_at INTEGER,
    outcome TEXT
        CHECK ((outcome IS NULL) = (completed_at IS NULL) AND (outcome IS NULL OR outcome IN ('succeeded', 'failed', 'cancelled'))),
    summary TEXT NOT NULL DEFAULT '',
    deleted_at INTEGER CHECK (deleted_at IS NULL OR completed_at IS NOT NULL)
) STRICT;
INSERT INTO job_runs_keyed (id, next_seq, first_log_time, last_log_time, completed_at, outcome, summary, deleted_at)
    SELECT id, next_seq, first_log_time, last_log_time, completed_at, outcome, summary, deleted_at
    FROM job_runs ORDER BY rowid;
DROP TABLE job_runs;
ALTER TABLE job_runs_keyed RENAME TO job_runs;

CREATE TABLE logs_keyed (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    type TEXT NOT NULL CHECK (type IN ('system', 'job', 'task')),
    job_run_id TEXT CHECK (job_run_id IS NULL OR length(job_run_id) = 36),
    -- job_runs.key of job_run_id; set by the writer in the transaction that
    -- allocates the log's seq.
    run_key INTEGER CHECK ((run_key IS NULL) = (job_run_id IS NULL)),
    task_run_id TEXT CHECK (task_run_id IS NULL OR length(task_run_id) = 36),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    -- Microseconds since 1970-01-01T00:00:00Z.
    event_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    source TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL CHECK (message <> ''),
    metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    CONSTRAINT logs_system_shape CHECK (
        type <> 'system' OR (job_run_id IS NULL AND task_run_id IS NULL AND stream = 'system')
    ),
    CONSTRAINT logs_job_shape CHECK (type <> 'job' OR (job_run_id IS NOT NULL AND task_run_id IS NULL)),
    CONSTRAINT logs_task_shape CHECK (type <> 'task' OR (job_run_id IS NOT NULL AND task_run_id IS NOT NULL))
) STRICT;
INSERT INTO logs_keyed (id, type, job_run_id, run_key, task_run_id, seq, event_time, received_at, level, stream, source, message, metadata)
    SELECT logs.id, type, job_run_id, job_runs.key, task_run_id, seq, event_time, received_at, level, stream, source, message, metadata
    FROM logs LEFT JOIN job_runs ON job_runs.id = logs.job_run_id ORDER BY logs.rowid;
DROP TABLE logs;
ALTER TABLE logs_keyed RENAME TO logs;

-- A job run's logs in seq order; "after seq N" cursors.
CREATE UNIQUE INDEX logs_run_seq ON logs (run_key, seq);
-- System logs in seq order.
CREATE UNIQUE INDEX logs_system_seq ON logs (seq) WHERE job_run_id IS NULL;
-- A task run's logs in seq order.
CREATE INDEX logs_task_run_seq ON logs (task_run_id, run_key, seq) WHERE task_run_id IS NOT NULL;
-- Listings across runs, in event-time order.
CREATE INDEX logs_event_time ON logs (event_time, id);
