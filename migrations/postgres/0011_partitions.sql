-- Time partitions (issue 13): retention empties a whole day of one log type
-- with TRUNCATE, which frees its files at once and locks that partition
-- alone, instead of deleting its rows one by one.
--
-- The key is `partition_day`: for a job or task log, the UTC day its job
-- run's row was created (the run's first log, start or completion), fixed
-- for the run's life; for a system log, the UTC day it was received. So
-- all of a run's logs share one day, and:
--  * a run's reads name its day and touch one day's partitions, whatever
--    the number of days kept (the day never changes, so it can be cached);
--  * a resend of a log goes to its run, so to the same partition, where the
--    primary key (id, partition_day, type) refuses a second copy as it did;
--  * seqs stay gap-free and in commit order: the run's row lock in
--    logwell_allocate orders its writers exactly as before.
-- A day is partitioned again by type, so that each type's days go at their
-- own age limit. `logs_default` takes logs of a day without partitions (a
-- run written to after its day went); retention deletes those row by row.
--
-- A database of an earlier version keeps its logs where they are: the old
-- table becomes the partition `logs_before_partitions`, for days before
-- 2000; its logs and runs take the day 1970-01-01, so a run begun before
-- the upgrade keeps all its logs there. Its rows go by row deletes, as
-- before. Its indexes that change (the primary key now
-- holds the partition key; seq indexes cannot be unique across partitions,
-- and seqs are unique by their allocation) are built again; the others
-- are kept. Every replica must run this version: an earlier one's inserts
-- carry no partition_day.

ALTER TABLE job_runs ADD COLUMN partition_day date NOT NULL DEFAULT '1970-01-01';
ALTER TABLE job_runs ALTER COLUMN partition_day SET DEFAULT (now() AT TIME ZONE 'UTC')::date;

ALTER TABLE logs RENAME TO logs_before_partitions;
ALTER TABLE logs_before_partitions ADD COLUMN partition_day date NOT NULL DEFAULT '1970-01-01';
ALTER TABLE logs_before_partitions ALTER COLUMN partition_day DROP DEFAULT;
ALTER TABLE logs_before_partitions DROP CONSTRAINT logs_pkey;
DROP INDEX logs_job_run_seq, logs_system_seq;
-- Built again on the partitioned table, per partition (optional_index.rs).
DROP INDEX IF EXISTS logs_message_trigrams, logs_expiry;
ALTER INDEX logs_task_run_seq RENAME TO logs_before_partitions_task_run_seq;
ALTER INDEX logs_event_time RENAME TO logs_before_partitions_event_time;
ALTER INDEX logs_metadata RENAME TO logs_before_partitions_metadata;

-- The CHECKs are named as the old table's, which an attached partition
-- must carry.
CREATE TABLE logs (
    id uuid NOT NULL,
    type text NOT NULL CONSTRAINT logs_type_check CHECK (type IN ('system', 'job', 'task')),
    job_run_id uuid,
    task_run_id uuid,
    seq bigint NOT NULL CONSTRAINT logs_seq_check CHECK (seq >= 1),
    event_time timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    level text NOT NULL CONSTRAINT logs_level_check CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error', 'fatal')),
    stream text NOT NULL CONSTRAINT logs_stream_check CHECK (stream IN ('stdout', 'stderr', 'system')),
    source text NOT NULL DEFAULT '',
    message text NOT NULL CONSTRAINT logs_message_check CHECK (message <> ''),
    metadata jsonb NOT NULL DEFAULT '{}' CONSTRAINT logs_metadata_check CHECK (jsonb_typeof(metadata) = 'object'),
    partition_day date NOT NULL,
    CONSTRAINT logs_system_shape CHECK (
        type <> 'system' OR (job_run_id IS NULL AND task_run_id IS NULL AND stream = 'system')
    ),
    CONSTRAINT logs_job_shape CHECK (type <> 'job' OR (job_run_id IS NOT NULL AND task_run_id IS NULL)),
    CONSTRAINT logs_task_shape CHECK (type <> 'task' OR (job_run_id IS NOT NULL AND task_run_id IS NOT NULL)),
    PRIMARY KEY (id, partition_day, type)
) PARTITION BY RANGE (partition_day);

ALTER TABLE logs ATTACH PARTITION logs_before_partitions FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
CREATE TABLE logs_default PARTITION OF logs DEFAULT;

-- A job run's logs in seq order; "after seq N" cursors.
CREATE INDEX logs_job_run_seq ON logs (job_run_id, seq);
-- System logs in seq order.
CREATE INDEX logs_system_seq ON logs (seq) WHERE job_run_id IS NULL;
-- A task run's logs in seq order.
CREATE INDEX logs_task_run_seq ON logs (task_run_id, job_run_id, seq) WHERE task_run_id IS NOT NULL;
-- Listings across runs, in event-time order.
CREATE INDEX logs_event_time ON logs (event_time, id);
-- Metadata conditions (migration 0008).
CREATE INDEX logs_metadata ON logs USING gin (metadata jsonb_path_ops);

-- Creates the partitions of `day` (one for the day, one per type in it)
-- unless they exist; answers whether it created them. Replicas that start
-- together take turns on a lock, and the second finds the first's. Creating
-- a partition locks `logs` for a moment, so it is done days ahead. Logs of
-- that day already in logs_default (written while its partitions were
-- missing) move into them.
CREATE FUNCTION logwell_create_partitions(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    parent text := 'logs_' || to_char(day, 'YYYYMMDD');
    waiting logs[];
BEGIN
    PERFORM pg_advisory_xact_lock(7813273512045176912); -- "logwellP"
    IF to_regclass(parent) IS NOT NULL THEN
        RETURN false;
    END IF;
    WITH moving AS (DELETE FROM logs_default WHERE partition_day = day RETURNING *)
    SELECT array_agg(moving) INTO waiting FROM moving;
    EXECUTE format('CREATE TABLE %I PARTITION OF logs FOR VALUES FROM (%L) TO (%L) PARTITION BY LIST (type)',
        parent, day, day + 1);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (''system'')', parent || '_system', parent);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (''job'')', parent || '_job', parent);
    -- The day's default: task logs, and nothing else that its CHECKs let
    -- in, so that a row of no known type fails on its CHECK, by name.
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_task', parent);
    INSERT INTO logs SELECT * FROM unnest(waiting);
    RETURN true;
END
$$;

-- Earlier versions' signatures go: their inserts would fail here.
DROP FUNCTION logwell_append(uuid[], bigint[], timestamptz[], timestamptz[], uuid[], text[], uuid[], uuid[], int[],
    bigint[], timestamptz[], timestamptz[], text[], text[], text[], text[], text[], text);
DROP FUNCTION logwell_append(uuid[], bigint[], timestamptz[], timestamptz[], bigint[], timestamptz, uuid[], text[],
    uuid[], uuid[], int[], bigint[], timestamptz[], timestamptz[], text[], text[], text[], text[], text[], text);
DROP FUNCTION logwell_allocate(uuid[], bigint[], timestamptz[], timestamptz[]);
DROP FUNCTION logwell_allocate(uuid[], bigint[], timestamptz[], timestamptz[], bigint[], timestamptz);

-- logwell_allocate of migration 0009, answering each sequence's partition
-- day beside its first seq.
CREATE FUNCTION logwell_allocate(
    sequence_ids uuid[], sequence_counts bigint[], sequence_earliest timestamptz[], sequence_latest timestamptz[],
    sequence_levels bigint[], active_at timestamptz, OUT firsts bigint[], OUT days date[]
)
LANGUAGE plpgsql AS $$
DECLARE
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
        RETURNING run.id, run.next_seq, run.partition_day, run.completed_at IS NOT NULL AS complete
    )
    SELECT array_agg(allocated.next_seq - wanted.count ORDER BY wanted.ordinal),
        array_agg(allocated.partition_day ORDER BY wanted.ordinal),
        (array_agg(allocated.id) FILTER (WHERE allocated.complete))[1]
    INTO firsts, days, complete_run
    FROM allocated
    JOIN unnest(sequence_ids, sequence_counts) WITH ORDINALITY AS wanted(id, count, ordinal) ON wanted.id = allocated.id;
    IF complete_run IS NOT NULL THEN
        RAISE EXCEPTION 'job run % is complete and takes no more logs', complete_run
            USING ERRCODE = 'LW001', DETAIL = complete_run::text;
    END IF;
END
$$;

-- logwell_append of migration 0009, filing each log under its partition
-- day: its run's, or for a system log the day it was received.
CREATE FUNCTION logwell_append(
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
        message, metadata, partition_day)
    SELECT batch.id, batch.type, batch.job_run_id, batch.task_run_id,
        reserved.firsts[batch.position] + batch.seq_offset, batch.event_time, batch.received_at, batch.level,
        batch.stream, batch.source, batch.message, batch.metadata::jsonb,
        CASE WHEN batch.job_run_id IS NULL THEN (batch.received_at AT TIME ZONE 'UTC')::date
            ELSE reserved.days[batch.position] END
    FROM unnest(log_ids, log_types, log_job_run_ids, log_task_run_ids, log_positions, log_offsets,
        log_event_times, log_received_ats, log_levels, log_streams, log_sources, log_messages, log_metadata)
        AS batch(id, type, job_run_id, task_run_id, position, seq_offset, event_time, received_at, level, stream,
        source, message, metadata);

    IF notification IS NOT NULL THEN
        PERFORM pg_notify('logwell_commits', notification);
    END IF;
    RETURN reserved.firsts;
END
$$;
