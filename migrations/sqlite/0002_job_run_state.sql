-- A job run's completion and the extent of its logs. A completed run takes
-- no more logs: the writing transaction reads completed_at in the same
-- statement that allocates its seqs.
ALTER TABLE job_runs ADD COLUMN first_log_time INTEGER;
ALTER TABLE job_runs ADD COLUMN last_log_time INTEGER;
ALTER TABLE job_runs ADD COLUMN completed_at INTEGER;
ALTER TABLE job_runs ADD COLUMN outcome TEXT
    CHECK ((outcome IS NULL) = (completed_at IS NULL) AND (outcome IS NULL OR outcome IN ('succeeded', 'failed', 'cancelled')));
ALTER TABLE job_runs ADD COLUMN summary TEXT NOT NULL DEFAULT '';
