-- The commit order of all logs, for follows across job runs (issue 16).
--
-- Within a run, seq is commit order. Across runs nothing was: ids, times
-- and received_at admit the lost-row bug (a transaction that took a lower
-- value commits after a reader has passed it). Each log now records its
-- writing transaction's id, and its place among that transaction's logs
-- (written in seq order per run). A reader reads only below the oldest
-- transaction still running (pg_snapshot_xmin of its snapshot): no
-- transaction can commit there any more, so what it reads there is final,
-- and (commit_xid, commit_index) orders it. No lock is taken, whatever the
-- replicas.
--
-- Added without a default first, so that the existing logs keep NULL
-- (before every position) and no partition is rewritten; the default then
-- applies to new rows only. Moving rows between partitions copies the
-- columns, so a moved log keeps its place.
ALTER TABLE logs ADD COLUMN commit_xid bigint, ADD COLUMN commit_index integer;
ALTER TABLE logs ALTER COLUMN commit_xid SET DEFAULT (pg_current_xact_id()::text::bigint);

-- A run's logs must also reach a follower across runs in seq order. Two
-- replicas' transactions that write one run take its job_runs row in turn,
-- so seq order is their commit order; but a transaction's id is taken at
-- its first write, which may be before it waits for the row: the one that
-- waited would then sort first by commit_xid with the later seqs. So each
-- run remembers the last transaction that allocated in it, and a
-- transaction that finds a later one there (it was overtaken while it
-- waited) fails with LW002; the writer retries it, under a new, later id.
-- Per run, commit_xid order is then seq order.
ALTER TABLE job_runs ADD COLUMN last_xid bigint;

-- logwell_allocate of migration 0011, recording and checking last_xid.
CREATE OR REPLACE FUNCTION logwell_allocate(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    sequence_levels bigint[], active_at timestamptz, OUT firsts bigint[], OUT days date[]
)
LANGUAGE plpgsql AS $$
DECLARE
    complete_run uuid;
    overtaken boolean;
    -- This transaction's id: its logs' commit_xid.
    this_xid bigint := pg_current_xact_id()::text::bigint;
BEGIN
    WITH allocated AS (
        -- A new row's next_seq is count + 1; an old row's grows by count.
        INSERT INTO job_runs AS run (id, next_seq, first_log_time, last_log_time, trace_logs, debug_logs,
            info_logs, warn_logs, error_logs, fatal_logs, active_at, last_xid)
        SELECT wanted.id, wanted.count + 1, wanted.earliest, wanted.latest,
            sequence_levels[wanted.ordinal * 6 - 5], sequence_levels[wanted.ordinal * 6 - 4],
            sequence_levels[wanted.ordinal * 6 - 3], sequence_levels[wanted.ordinal * 6 - 2],
            sequence_levels[wanted.ordinal * 6 - 1], sequence_levels[wanted.ordinal * 6], active_at, this_xid
        FROM unnest(sequence_ids, sequence_counts, sequence_earliest, sequence_latest) WITH ORDINALITY
            AS wanted(id, count, earliest, latest, ordinal)
        ORDER BY wanted.id
        ON CONFLICT (id) DO UPDATE SET next_seq = run.next_seq + excluded.next_seq - 1,
            first_log_time = LEAST(run.first_log_time, excluded.first_log_time),
            last_log_time = GREATEST(run.last_log_time, excluded.last_log_time),
            trace_logs = run.trace_logs + excluded.trace_logs,
            debug_logs = run.debug_logs + excluded.debug_logs,
            info_logs = run.info_logs + excluded.info_logs,
            warn_logs = run.warn_logs + excluded.warn_logs,
            error_logs = run.error_logs + excluded.error_logs,
            fatal_logs = run.fatal_logs + excluded.fatal_logs,
            active_at = GREATEST(run.active_at, excluded.active_at),
            last_xid = GREATEST(run.last_xid, excluded.last_xid)
        RETURNING run.id, run.next_seq, run.partition_day, run.completed_at IS NOT NULL AS complete,
            run.last_xid > this_xid AS overtaken
    )
    SELECT array_agg(allocated.next_seq - wanted.count ORDER BY wanted.ordinal),
        array_agg(allocated.partition_day ORDER BY wanted.ordinal),
        (array_agg(allocated.id) FILTER (WHERE allocated.complete))[1],
        bool_or(allocated.overtaken)
    INTO firsts, days, complete_run, overtaken
    FROM allocated
    JOIN unnest(sequence_ids, sequence_counts) WITH ORDINALITY AS wanted(id, count, ordinal) ON wanted.id = allocated.id;
    IF complete_run IS NOT NULL THEN
        RAISE EXCEPTION 'job run % is complete and takes no more logs', complete_run
            USING ERRCODE = 'LW001', DETAIL = complete_run::text;
    END IF;
    IF overtaken THEN
        RAISE EXCEPTION 'a transaction that began later wrote one of these runs first'
            USING ERRCODE = 'LW002';
    END IF;
END
$$;

-- logwell_append of migration 0011, numbering the logs of its transaction.
CREATE OR REPLACE FUNCTION logwell_append(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    sequence_levels bigint[], active_at timestamptz,
    log_ids uuid[], log_types text[], log_job_run_ids uuid[], log_task_run_ids uuid[], log_positions int[],
    log_offsets bigint[], log_event_times timestamptz[], log_received_ats timestamptz[], log_levels text[],
    log_streams text[], log_sources text[], log_messages text[], log_metadata text[], notification text
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    reserved record;
BEGIN
    reserved := logwell_allocate(sequence_ids, sequence_counts, sequence_earliest, sequence_latest, sequence_levels,
        active_at);

    INSERT INTO logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source,
        message, metadata, partition_day, commit_index)
    SELECT batch.id, batch.type, batch.job_run_id, batch.task_run_id,
        reserved.firsts[batch.position] + batch.seq_offset, batch.event_time, batch.received_at, batch.level,
        batch.stream, batch.source, batch.message, batch.metadata::jsonb,
        CASE WHEN batch.job_run_id IS NULL THEN (batch.received_at AT TIME ZONE 'UTC')::date
            ELSE reserved.days[batch.position] END,
        batch.ordinal - 1
    FROM unnest(log_ids, log_types, log_job_run_ids, log_task_run_ids, log_positions, log_offsets,
        log_event_times, log_received_ats, log_levels, log_streams, log_sources, log_messages, log_metadata)
        WITH ORDINALITY AS batch(id, type, job_run_id, task_run_id, position, seq_offset, event_time, received_at,
        level, stream, source, message, metadata, ordinal);

    IF notification IS NOT NULL THEN
        PERFORM pg_notify('logwell_commits', notification);
    END IF;
    RETURN reserved.firsts;
END
$$;

-- Reads after a position, in commit order, in every partition.
CREATE INDEX logs_commit_order ON logs (commit_xid, commit_index);

-- Names this database in follow cursors, so that a cursor from another
-- database is refused rather than misread.
CREATE TABLE database_identity (
    id uuid PRIMARY KEY
);
INSERT INTO database_identity (id) VALUES (gen_random_uuid());
