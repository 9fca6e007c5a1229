//! Reads that are more than one statement: the algorithms every entry point
//! shares (gRPC now; the CLI and the browser next), over the store.

pub mod context;
pub mod count;
pub mod export;
