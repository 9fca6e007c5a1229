-- When a completed job run's logs were deleted (DeleteJobRun). The run keeps
-- its row, so that it stays complete and takes no more logs.
ALTER TABLE job_runs ADD COLUMN deleted_at timestamptz,
    ADD CONSTRAINT job_runs_deleted_complete CHECK (deleted_at IS NULL OR completed_at IS NOT NULL);
