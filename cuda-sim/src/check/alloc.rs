//! Device memory: one reserved stretch of address space; each allocation gets its own pages, placed so
//! that its last byte abuts a `PROT_NONE` guard page, and is never reused once freed (its pages become
//! `PROT_NONE` too), so out-of-bounds and use-after-free accesses by kernels fault in hardware. The table
//! maps any address of the stretch back to its allocation for reports.
//!
//! Placement: the allocation ends exactly at its guard page, so its start is aligned to the largest power
//! of two dividing its size (capped at the page size): at least the alignment of any element type an array
//! of that size can hold, but not CUDA's 256 bytes. The first byte past the end faults; a negative index
//! that stays inside the allocation's first page does not. `STREAMDSL_SIM_ALIGN=N` aligns starts to `N`
//! bytes instead (then up to `N - 1` bytes past the end do not fault).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Who did something to an allocation: the operation and its stream.
pub type Origin = Arc<str>;

/// One allocation, live or freed.
#[derive(Debug)]
pub struct Allocation {
    /// A number unique in the process (the race checker's key).
    pub id: u64,
    /// The device pointer.
    pub base: u64,
    /// Bytes requested.
    pub size: u64,
    /// First byte of its pages.
    pub map_start: usize,
    /// Bytes of its readable pages (the guard page follows).
    pub map_len: usize,
    /// The operation that allocated it.
    pub allocated_by: Origin,
    /// Whether it came from a stream-ordered pool (`cuMemAllocAsync`).
    pub pooled: bool,
    /// The device ordinal.
    pub device: usize,
    state: Mutex<AllocState>,
}

#[derive(Debug, Default)]
struct AllocState {
    /// Set when a free was enqueued (or done, for synchronous frees).
    free_enqueued: Option<Origin>,
    /// Set once the pages are `PROT_NONE`.
    unmapped: bool,
}

impl Allocation {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    /// Whether `[ptr, ptr + bytes)` lies inside the allocation.
    pub fn contains(&self, ptr: u64, bytes: u64) -> bool {
        ptr >= self.base && ptr.checked_add(bytes).is_some_and(|e| e <= self.end())
    }

    /// The operation that freed it (or enqueued its free).
    pub fn freed_by(&self) -> Option<Origin> {
        self.lock().free_enqueued.clone()
    }

    fn lock(&self) -> MutexGuard<'_, AllocState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A one-line description: address, size, who allocated (and freed) it.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "allocation 0x{:x}..0x{:x} ({} bytes, allocated by {})",
            self.base,
            self.end(),
            self.size,
            self.allocated_by
        );
        if let Some(f) = self.freed_by() {
            s.push_str(&format!(", free enqueued by {f}"));
        }
        s
    }

    /// Marks the free as enqueued; false if it already was (a double free).
    pub fn mark_free_enqueued(&self, by: Origin) -> bool {
        let mut st = self.lock();
        if st.free_enqueued.is_some() {
            return false;
        }
        st.free_enqueued = Some(by);
        true
    }

    /// Makes the pages inaccessible and returns their memory to the system (the addresses stay reserved).
    pub fn unmap(&self) {
        let mut st = self.lock();
        if st.unmapped {
            return;
        }
        st.unmapped = true;
        // SAFETY: the pages belong to this allocation inside our reservation; nothing else maps them.
        unsafe {
            libc::mprotect(self.map_start as *mut libc::c_void, self.map_len, libc::PROT_NONE);
            libc::madvise(self.map_start as *mut libc::c_void, self.map_len, libc::MADV_DONTNEED);
        }
    }
}

/// Where an address falls.
pub enum Place {
    /// Inside an allocation (`offset` from its base; may be negative: in its first page, before the base).
    Inside(Arc<Allocation>, i64),
    /// In the guard page after an allocation, `past` bytes past its end.
    PastEnd(Arc<Allocation>, u64),
    /// Nowhere we know.
    Unknown,
}

struct Reservation {
    start: usize,
    len: usize,
}

struct Table {
    next: usize,
    /// By `map_start`.
    regions: BTreeMap<usize, Arc<Allocation>>,
    next_id: u64,
}

const RESERVE_TRY: [usize; 4] = [1 << 44, 1 << 42, 1 << 40, 1 << 37];

fn page() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(4096))
}

fn reservation() -> Option<&'static Reservation> {
    static RES: OnceLock<Option<Reservation>> = OnceLock::new();
    RES.get_or_init(|| {
        for len in RESERVE_TRY {
            // SAFETY: an anonymous PROT_NONE reservation; no memory is committed.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return Some(Reservation { start: p as usize, len });
            }
        }
        None
    })
    .as_ref()
}

fn table() -> MutexGuard<'static, Table> {
    static TABLE: Mutex<Table> = Mutex::new(Table { next: 0, regions: BTreeMap::new(), next_id: 1 });
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `addr` lies in the simulator's device address range.
pub fn in_device_range(addr: usize) -> bool {
    reservation().is_some_and(|r| addr >= r.start && addr < r.start + r.len)
}

/// Maps a new allocation of `size` bytes (> 0). `None` when the address space is exhausted.
pub fn allocate(size: u64, device: usize, pooled: bool, allocated_by: Origin) -> Option<Arc<Allocation>> {
    let res = reservation()?;
    let pg = page();
    let size_us = usize::try_from(size).ok()?;
    let align = crate::driver::config::config().align.unwrap_or(1).max(1);
    let map_len = size_us.checked_add(align - 1)?.checked_next_multiple_of(pg)?;
    let mut t = table();
    let region = map_len.checked_add(pg)?;
    if t.next.checked_add(region)? > res.len {
        return None;
    }
    let map_start = res.start + t.next;
    t.next += region;
    // SAFETY: the pages are inside our reservation and not handed out before (the bump pointer never goes
    // back).
    let ok =
        unsafe { libc::mprotect(map_start as *mut libc::c_void, map_len, libc::PROT_READ | libc::PROT_WRITE) == 0 };
    if !ok {
        return None;
    }
    let end = map_start + map_len;
    let base = ((end - size_us) & !(align - 1)) as u64;
    let id = t.next_id;
    t.next_id += 1;
    let a = Arc::new(Allocation {
        id,
        base,
        size,
        map_start,
        map_len,
        allocated_by,
        pooled,
        device,
        state: Mutex::default(),
    });
    t.regions.insert(map_start, Arc::clone(&a));
    Some(a)
}

/// The allocation whose pages or guard page hold `addr`.
pub fn place(addr: u64) -> Place {
    let Ok(a) = usize::try_from(addr) else { return Place::Unknown };
    if !in_device_range(a) {
        return Place::Unknown;
    }
    let t = table();
    let Some((_, alloc)) = t.regions.range(..=a).next_back() else { return Place::Unknown };
    let alloc = Arc::clone(alloc);
    drop(t);
    let data_end = alloc.map_start + alloc.map_len;
    if a < data_end {
        Place::Inside(Arc::clone(&alloc), addr as i64 - alloc.base as i64)
    } else if a < data_end + page() {
        let past = addr.saturating_sub(alloc.end());
        Place::PastEnd(alloc, past)
    } else {
        Place::Unknown
    }
}

/// The allocation containing `ptr` (base ≤ ptr ≤ end: a pointer one past the end still names it).
pub fn find(ptr: u64) -> Option<Arc<Allocation>> {
    match place(ptr) {
        Place::Inside(a, off) if off >= 0 => Some(a),
        Place::PastEnd(a, 0) => Some(a),
        _ => None,
    }
}

/// The allocation whose base is exactly `ptr`.
pub fn find_base(ptr: u64) -> Option<Arc<Allocation>> {
    find(ptr).filter(|a| a.base == ptr)
}

/// Describes an address for a fault report.
pub fn describe_address(addr: u64) -> String {
    match place(addr) {
        Place::Inside(a, off) => {
            if let Some(f) = a.freed_by() {
                format!(
                    "address 0x{addr:x} is {off} bytes into a freed {} (use after free; freed by {f})",
                    a.describe()
                )
            } else if off < 0 {
                format!("address 0x{addr:x} is {} bytes before the start of {}", -off, a.describe())
            } else {
                format!("address 0x{addr:x} is inside {}", a.describe())
            }
        }
        Place::PastEnd(a, past) => {
            format!("address 0x{addr:x} is {past} bytes past the end of {}", a.describe())
        }
        Place::Unknown => format!("address 0x{addr:x} is not in any device allocation (a null, host or stray pointer)"),
    }
}
