//! brook-config
