//! brook-views
