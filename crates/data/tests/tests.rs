//! Integration tests of the data pipeline: one binary, a module per theme.

mod augment;
mod batches;
mod chat;
mod checks;
mod common;
mod formats;
mod formatting;
mod import;
mod split;
