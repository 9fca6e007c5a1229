//! The command line's client side: subcommands that talk to a running
//! logwell over gRPC, as any other client does. It depends on the generated
//! client and the model's names, never on storage or the server.

mod backlog;
pub mod bench;
pub mod connection;
pub mod error;
pub mod export;
mod filter;
mod lines;
pub mod logs;
mod names;
mod output;
pub mod push;
mod retry;
pub mod run;
pub mod runs;
mod shipper;
pub mod stats;
pub mod tail;
mod time;

pub use error::CliError;
