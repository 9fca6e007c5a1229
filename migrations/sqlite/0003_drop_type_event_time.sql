-- Job and task logs across runs by time are read through logs_event_time with
-- a filter on type: together they are nearly the whole table, so a
-- (type, event_time, id) index saved a reader little and cost every write
-- about a fifth of its throughput. System logs are read through
-- logs_system_seq.
DROP INDEX logs_type_event_time;
