//! brook-benches
pub mod sink;
