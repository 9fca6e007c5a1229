-- Metadata conditions: equality and one-of on a top-level key are asked as
-- containment (metadata @> '{"worker_id": "gpu-7"}'), which a GIN index in
-- the jsonb_path_ops class serves; it is smaller and cheaper to write than
-- the default jsonb_ops (which would also serve "key exists", left to the
-- other filters here). Its cost on ingestion is in docs/benchmarks.md.
CREATE INDEX logs_metadata ON logs USING gin (metadata jsonb_path_ops);
