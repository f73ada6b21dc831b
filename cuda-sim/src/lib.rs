//! Placeholder; the crate doc is written below.
pub mod api;
pub mod check;
pub mod driver;
pub mod exec;
