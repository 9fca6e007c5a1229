//! logwell for browsers: gRPC-Web on the gRPC port (tonic-web translates;
//! every call then meets the same tokens and scopes as over gRPC), the
//! pages that may make such calls (`origins`), and the built-in viewer
//! (`pages`: its sources are in `viewer/`, built into `assets/`).

mod origins;
mod pages;

pub use origins::{BrowserOrigins, NotAnOrigin, OriginLayer};
pub use pages::ViewerLayer;
