//! The checks: the allocation table (bounds, use after free; hardware-detected for kernels through guard
//! pages and the fault handler), the vector-clock race checker, and reports.

pub mod alloc;
pub mod fault;
pub mod race;
pub mod report;
