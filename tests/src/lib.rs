//! brook-tests
