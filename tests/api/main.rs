//! Integration tests: the real server on a real port, real gRPC clients, a
//! real SQLite file and a real PostgreSQL server. Every `conformance!` test
//! runs against both backends.

mod browser;
mod helpers;
mod http_client;
mod postgres_cluster;
mod scrape;

mod auth;
mod checkpoints;
mod cli_bench;
mod cli_completions;
mod cli_export;
mod cli_logs;
mod cli_run;
mod cli_runs;
mod cli_stats;
mod cli_tail;
mod context;
mod counts;
mod export;
mod filters;
mod follow_across;

mod health;
mod hostile;
mod ingest;
mod job_runs;
mod lifecycle;
mod limits;
mod observability;
mod otlp;
mod otlp_http;
mod outage;
mod partitions;
mod queries;
mod races;
mod rate_limit;
mod retention;
mod run_listing;
mod schema;
mod shutdown;
mod streams;
mod text_index;
mod tls;
mod upgrade;
mod viewer;
mod web;
mod writes;
