//! Integration tests of ferrotune-store: a module per theme, one test binary.

mod common;
mod errors;
mod experiments;
mod import;
mod registry;
mod streaming;
