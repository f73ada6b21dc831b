//! Huge pages for large outputs.
//!
//! A fresh CPU tensor's memory comes from `calloc` untouched: its pages are mapped on first write, by the
//! kernel that produces it, one fault per 4 KiB page. On the virtual machines this project is developed on a
//! fault costs several microseconds, so a 40 MB output spent more time faulting than computing (numpy: 27 ms
//! per 10 M-element `add` with its default `madvise(MADV_HUGEPAGE)` on arrays of 4 MiB and more, 94 ms
//! without it). The kernels ask the same for the outputs they are about to write first: one 2 MiB fault
//! instead of 512 where the system grants huge pages (`transparent_hugepage` set to `madvise` or `always`);
//! elsewhere the advice is a no-op. It never changes the contents.

/// Outputs at least this large are advised (numpy's threshold).
const HUGE_MIN_BYTES: usize = 4 << 20;

/// Asks the OS to back the 2 MiB-aligned part of `out` with huge pages (Linux; elsewhere nothing).
pub(crate) fn advise_huge<T>(out: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = std::mem::size_of_val(out);
        if bytes < HUGE_MIN_BYTES {
            return;
        }
        let start = out.as_mut_ptr() as usize;
        let (first, end) = (start.next_multiple_of(HUGE), (start + bytes) & !(HUGE - 1));
        if end > first {
            // SAFETY: `first..end` lies inside `out`, memory this process owns and holds exclusively here;
            // MADV_HUGEPAGE only changes how the kernel backs those pages (never their contents or mapping).
            // A failure (e.g. a kernel without transparent huge pages) leaves everything as it was.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (out, HUGE_MIN_BYTES);
}
