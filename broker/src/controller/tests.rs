//! Deterministic tests of the controller decisions.
