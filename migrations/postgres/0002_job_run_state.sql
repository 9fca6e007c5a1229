-- A job run's completion and the extent of its logs. A completed run takes
-- no more logs: the writing transaction reads completed_at in the same
-- statement that allocates its seqs.
ALTER TABLE job_runs
    ADD COLUMN first_log_time timestamptz,
    ADD COLUMN last_log_time timestamptz,
    ADD COLUMN completed_at timestamptz,
    ADD COLUMN outcome text CHECK (outcome IN ('succeeded', 'failed', 'cancelled')),
    ADD COLUMN summary text NOT NULL DEFAULT '',
    ADD CONSTRAINT job_runs_completion_shape CHECK ((outcome IS NULL) = (completed_at IS NULL));
