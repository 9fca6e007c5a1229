-- The unified log model. The CHECK constraints enforce, for any writer
-- including raw SQL, what each log type must and must not carry.

-- One row per job run: the next seq to hand out. The writing transaction
-- bumps it, and holds the write lock until it commits, so seq order is commit
-- order. The nil UUID is the system logs' own sequence.
CREATE TABLE job_runs (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    next_seq INTEGER NOT NULL CHECK (next_seq >= 1)
) STRICT;

CREATE TABLE logs (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    type TEXT NOT NULL CHECK (type IN ('system', 'job', 'task')),
    job_run_id TEXT CHECK (job_run_id IS NULL OR length(job_run_id) = 36),
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

-- A job run's logs in seq order; "after seq N" cursors.
CREATE UNIQUE INDEX logs_job_run_seq ON logs (job_run_id, seq);
-- System logs in seq order.
CREATE UNIQUE INDEX logs_system_seq ON logs (seq) WHERE job_run_id IS NULL;
-- A task run's logs in seq order.
CREATE INDEX logs_task_run_seq ON logs (task_run_id, job_run_id, seq) WHERE task_run_id IS NOT NULL;
-- Listings across runs, in event-time order.
CREATE INDEX logs_event_time ON logs (event_time, id);
-- Logs of one type across runs, in event-time order.
CREATE INDEX logs_type_event_time ON logs (type, event_time, id);
