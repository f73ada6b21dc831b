//! Procedural macros of streamdsl. Use them through the `streamdsl` crate, which re-exports them.
