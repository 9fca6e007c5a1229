-- The unified log model. The CHECK constraints enforce, for any writer
-- including raw SQL, what each log type must and must not carry.

-- One row per job run: the next seq to hand out. The writing transaction
-- bumps it, and holds the row lock until it commits, so seq order is commit
-- order. The nil UUID is the system logs' own sequence.
CREATE TABLE job_runs (
    id uuid PRIMARY KEY,
    next_seq bigint NOT NULL CHECK (next_seq >= 1)
);

CREATE TABLE logs (
    id uuid PRIMARY KEY,
    type text NOT NULL CHECK (type IN ('system', 'job', 'task')),
    job_run_id uuid,
    task_run_id uuid,
    seq bigint NOT NULL CHECK (seq >= 1),
    event_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    level text NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    stream text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    source text NOT NULL DEFAULT '',
    message text NOT NULL CHECK (message <> ''),
    metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT logs_system_shape CHECK (
        type <> 'system' OR (job_run_id IS NULL AND task_run_id IS NULL AND stream = 'system')
    ),
    CONSTRAINT logs_job_shape CHECK (type <> 'job' OR (job_run_id IS NOT NULL AND task_run_id IS NULL)),
    CONSTRAINT logs_task_shape CHECK (type <> 'task' OR (job_run_id IS NOT NULL AND task_run_id IS NOT NULL))
);

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
