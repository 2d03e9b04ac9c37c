//! Integration tests of ferrotune-store: a module per theme, one test binary.

mod common;
mod errors;
mod import;
mod registry;
mod streaming;
