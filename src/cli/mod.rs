//! The command line's client side: subcommands that talk to a running
//! logwell over gRPC, as any other client does. It depends on the generated
//! client and the model's names, never on storage or the server.

pub mod connection;
pub mod error;
pub mod export;
mod filter;
pub mod logs;
mod names;
mod output;
mod retry;
pub mod runs;
pub mod stats;
pub mod tail;
mod time;

pub use error::CliError;
