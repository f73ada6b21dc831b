//! Support crate for the runnable examples in this folder.
