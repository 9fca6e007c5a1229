//! logwell: gRPC log collection for job systems, with one unified model of
//! system, job and task logs, stored in SQLite or PostgreSQL.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
mod connections;
mod health;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod proto;
pub mod query;
pub mod rate_limit;
mod reload;
pub mod retention;
pub mod scheduling;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
