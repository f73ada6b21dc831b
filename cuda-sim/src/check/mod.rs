//! The checks: the allocation table (bounds, use after free; hardware-detected for kernels through guard
//! pages and the fault handler), the vector-clock race checker, reports, and fault injection (for testing a
//! program's error handling).

pub mod alloc;
pub mod fault;
pub mod inject;
pub mod race;
pub mod report;
