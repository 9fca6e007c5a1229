-- Job runs become something to list: a name and labels given when a run is
-- started (StartJobRun), its logs counted per level as they are written,
-- and its last activity (start, logs, completion; server time, kept to the
-- second), which listings order by, most recent first.
ALTER TABLE job_runs ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE job_runs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(labels) AND json_type(labels) = 'object');
ALTER TABLE job_runs ADD COLUMN started_at INTEGER;
ALTER TABLE job_runs ADD COLUMN trace_logs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN debug_logs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN info_logs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN warn_logs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN error_logs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN fatal_logs INTEGER NOT NULL DEFAULT 0;
-- Microseconds since the epoch, a whole second.
ALTER TABLE job_runs ADD COLUMN active_at INTEGER NOT NULL DEFAULT 0;

-- Runs written before this migration: their counts from their logs, and
-- their last activity from the last log received or their completion.
UPDATE job_runs SET (trace_logs, debug_logs, info_logs, warn_logs, error_logs, fatal_logs, active_at) = (
    SELECT count(*) FILTER (WHERE level = 'trace'), count(*) FILTER (WHERE level = 'debug'),
        count(*) FILTER (WHERE level = 'info'), count(*) FILTER (WHERE level = 'warn'),
        count(*) FILTER (WHERE level = 'error'), count(*) FILTER (WHERE level = 'fatal'),
        max(coalesce(max(received_at), 0), coalesce(job_runs.completed_at, 0)) / 1000000 * 1000000
    FROM logs WHERE logs.run_key = job_runs.key
);

-- Listings, most recent activity first.
CREATE INDEX job_runs_activity ON job_runs (active_at, id);
