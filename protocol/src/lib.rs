//! brook-protocol
