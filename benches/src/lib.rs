//! brook-benches
