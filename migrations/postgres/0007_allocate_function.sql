-- Large groups go in by COPY. With a thousand runs written at once, a
-- group of 8,000 logs took 77-80 ms through logwell_append, whose INSERT ...
-- SELECT FROM unnest goes row by row through the executor, and 56-67 ms by
-- COPY, which PostgreSQL takes in bulk. A large group's transaction
-- reserves its seqs with logwell_allocate, copies its rows, notifies and
-- commits; small groups keep logwell_append's single round trip, which now
-- reserves through the same function.
--
-- logwell_allocate reserves, for each sequence (a job run, or the nil UUID
-- for system logs), its count of seqs, widening the run's time range. The
-- job_runs rows are locked in id order, the same in every transaction, so
-- writers cannot deadlock, and the locks last until the transaction
-- commits, which makes seq order commit order. If one of the runs is
-- complete, nothing is reserved: SQLSTATE LW001, the run's id in the
-- detail. Answers the first seq reserved for each sequence, in the
-- sequences' order.
CREATE FUNCTION logwell_allocate(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[]
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    firsts bigint[];
    complete_run uuid;
BEGIN
    WITH allocated AS (
        -- A new row's next_seq is count + 1; an old row's grows by count.
        INSERT INTO job_runs AS run (id, next_seq, first_log_time, last_log_time)
        SELECT wanted.id, wanted.count + 1, wanted.earliest, wanted.latest
        FROM unnest(sequence_ids, sequence_counts, sequence_earliest, sequence_latest)
            AS wanted(id, count, earliest, latest)
        ORDER BY wanted.id
        ON CONFLICT (id) DO UPDATE SET next_seq = run.next_seq + excluded.next_seq - 1,
            first_log_time = LEAST(run.first_log_time, excluded.first_log_time),
            last_log_time = GREATEST(run.last_log_time, excluded.last_log_time)
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

-- Each log gets the first seq of its sequence (its position counts from 1
-- into the sequences) plus its offset.
CREATE OR REPLACE FUNCTION logwell_append(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    log_ids uuid[], log_types text[], log_job_run_ids uuid[], log_task_run_ids uuid[], log_positions int[],
    log_offsets bigint[], log_event_times timestamptz[], log_received_ats timestamptz[], log_levels text[],
    log_streams text[], log_sources text[], log_messages text[], log_metadata text[], notification text
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    firsts bigint[];
BEGIN
    firsts := logwell_allocate(sequence_ids, sequence_counts, sequence_earliest, sequence_latest);

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
