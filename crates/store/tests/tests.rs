//! Integration tests of ferrotune-store.
