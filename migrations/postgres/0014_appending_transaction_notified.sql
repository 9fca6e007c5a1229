-- Notifications of appended logs name their transaction (issue 16).
--
-- A replica that reads in commit order for its followers across runs can
-- then tell when its reads have shown another replica's append, and hand
-- those logs to the followers of their runs from that one read, instead of
-- each follower reading storage at every notification. The notification
-- is a template: the append's has `%s` where its transaction id goes, so
-- that no round trip asks for the id; other notifications have none, and
-- format() returns them as they are.

-- logwell_append of migration 0012, with the notification's template filled.
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
        PERFORM pg_notify('logwell_commits', format(notification, pg_current_xact_id()));
    END IF;
    RETURN reserved.firsts;
END
$$;
