-- Job runs become something to list: a name and labels given when a run is
-- started (StartJobRun), its logs counted per level as they are written,
-- and its last activity (start, logs, completion; server time, kept to the
-- second), which listings order by, most recent first.
ALTER TABLE job_runs
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    ADD COLUMN started_at timestamptz,
    ADD COLUMN trace_logs bigint NOT NULL DEFAULT 0,
    ADD COLUMN debug_logs bigint NOT NULL DEFAULT 0,
    ADD COLUMN info_logs bigint NOT NULL DEFAULT 0,
    ADD COLUMN warn_logs bigint NOT NULL DEFAULT 0,
    ADD COLUMN error_logs bigint NOT NULL DEFAULT 0,
    ADD COLUMN fatal_logs bigint NOT NULL DEFAULT 0,
    -- A replica of an earlier version, during a rolling upgrade, begins runs
    -- through the functions below' predecessors, which set none of these.
    ADD COLUMN active_at timestamptz NOT NULL DEFAULT date_trunc('second', now());

-- Runs written before this migration: their counts from their logs, and
-- their last activity from the last log received or their completion.
UPDATE job_runs SET (trace_logs, debug_logs, info_logs, warn_logs, error_logs, fatal_logs, active_at) = (
    SELECT count(*) FILTER (WHERE level = 'trace'), count(*) FILTER (WHERE level = 'debug'),
        count(*) FILTER (WHERE level = 'info'), count(*) FILTER (WHERE level = 'warn'),
        count(*) FILTER (WHERE level = 'error'), count(*) FILTER (WHERE level = 'fatal'),
        date_trunc('second', coalesce(GREATEST(max(logs.received_at), job_runs.completed_at), job_runs.active_at))
    FROM logs WHERE logs.job_run_id = job_runs.id
);

-- Listings, most recent activity first.
CREATE INDEX job_runs_activity ON job_runs (active_at, id);

-- logwell_allocate and logwell_append, now also counting each sequence's
-- logs per level (six counts a sequence, trace to fatal, one flat array) and
-- moving its last activity to `active_at` once that is a second or more
-- later: a run written many times a second is updated in place (HOT) but
-- for once a second, when its activity index entry moves. The earlier
-- signatures stay, for replicas of the earlier version during a rolling
-- upgrade; what they write is not counted per level.
CREATE FUNCTION logwell_allocate(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    sequence_levels bigint[], active_at timestamptz
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    firsts bigint[];
    complete_run uuid;
BEGIN
    WITH allocated AS (
        -- A new row's next_seq is count + 1; an old row's grows by count.
        INSERT INTO job_runs AS run (id, next_seq, first_log_time, last_log_time, trace_logs, debug_logs,
            info_logs, warn_logs, error_logs, fatal_logs, active_at)
        SELECT wanted.id, wanted.count + 1, wanted.earliest, wanted.latest,
            sequence_levels[wanted.ordinal * 6 - 5], sequence_levels[wanted.ordinal * 6 - 4],
            sequence_levels[wanted.ordinal * 6 - 3], sequence_levels[wanted.ordinal * 6 - 2],
            sequence_levels[wanted.ordinal * 6 - 1], sequence_levels[wanted.ordinal * 6], active_at
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
            active_at = GREATEST(run.active_at, excluded.active_at)
        RETURNING run.id, run.next_seq, run.completed_at IS NOT NULL AS complete
    )
    SELECT array_agg(allocated.next_seq - wanted.count ORDER BY wanted.ordinal),
        (array_agg(allocated.id) FILTER (WHERE allocated.complete))[1]
    INTO firsts, complete_run
    FROM allocated
    JOIN unnest(sequence_ids, sequence_counts) WITH ORDINALITY AS wanted(id, count, ordinal) ON wanted.id = allocated.id;
    IF complete_run IS NOT NULL THEN
        RAISE EXCEPTION 'job run % is complete and takes no more logs', complete_run
            USING ERRCODE = 'LW001', DETAIL = complete_run::text;
    END IF;
    RETURN firsts;
END
$$;

CREATE FUNCTION logwell_append(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    sequence_levels bigint[], active_at timestamptz,
    log_ids uuid[], log_types text[], log_job_run_ids uuid[], log_task_run_ids uuid[], log_positions int[],
    log_offsets bigint[], log_event_times timestamptz[], log_received_ats timestamptz[], log_levels text[],
    log_streams text[], log_sources text[], log_messages text[], log_metadata text[], notification text
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    firsts bigint[];
BEGIN
    firsts := logwell_allocate(sequence_ids, sequence_counts, sequence_earliest, sequence_latest, sequence_levels,
        active_at);

    INSERT INTO logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source,
        message, metadata)
    SELECT batch.id, batch.type, batch.job_run_id, batch.task_run_id, firsts[batch.position] + batch.seq_offset,
        batch.event_time, batch.received_at, batch.level, batch.stream, batch.source, batch.message,
        batch.metadata::jsonb
    FROM unnest(log_ids, log_types, log_job_run_ids, log_task_run_ids, log_positions, log_offsets,
        log_event_times, log_received_ats, log_levels, log_streams, log_sources, log_messages, log_metadata)
        AS batch(id, type, job_run_id, task_run_id, position, seq_offset, event_time, received_at, level, stream,
        source, message, metadata);

    IF notification IS NOT NULL THEN
        PERFORM pg_notify('logwell_commits', notification);
    END IF;
    RETURN firsts;
END
$$;
