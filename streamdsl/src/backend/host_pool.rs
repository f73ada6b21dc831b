//! The CPU backend's cache of freed host buffers, reused for the next output of the same size.
//!
//! A fresh output costs more than it looks: a large one is new pages that the kernel faults in and clears on
//! first write, a smaller one comes from the heap and is cleared by `calloc`. For a memory-bound op (an add,
//! a conversion) that is a third or more of its time. Like PyTorch's caching allocator on CUDA, freed host
//! buffers of 64 KiB and more are kept (up to a byte budget) and handed to the next allocation of exactly
//! the same size and alignment, whose op then writes over them. Their contents are old values of some
//! float type — every bit pattern is a valid value of every element type — so a reused buffer is always
//! initialised memory; an allocation that must read as zeros (`zeros`) is cleared by its op.
//!
//! The budget is `STREAMDSL_CPU_CACHE_BYTES` (bytes; `0` turns the cache off), by default the smaller of
//! 1 GiB and an eighth of physical memory. When it is exceeded the oldest buffers are freed first;
//! [`release_all`] frees everything (also done before the CPU backend reports out of memory).

use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::runtime::ProcessWide;

/// Buffers below this size are left to the allocator: the heap reuses them cheaply.
pub(crate) const MIN_CACHED_BYTES: usize = 64 << 10;

/// An allocation owned by the pool: its address and the layout it was allocated with. Dropping it frees it.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Block {
    /// Gives up ownership without freeing.
    fn into_raw(self) -> NonNull<u8> {
        let ptr = self.ptr;
        std::mem::forget(self);
        ptr
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: a block owns its allocation, made by the global allocator with `layout` (see `give`).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: a `Block` owns its allocation outright (nothing else refers to it), so it may move to and be freed by
// any thread.
unsafe impl Send for Block {}

/// Cached blocks by layout, with an age order for eviction.
#[derive(Default)]
struct Pool {
    /// Blocks by (size, alignment), each with its age stamp; the newest last.
    by_layout: HashMap<(usize, usize), Vec<(u64, Block)>>,
    /// Age stamp → layout key, oldest first.
    by_age: BTreeMap<u64, (usize, usize)>,
    next_stamp: u64,
    bytes: usize,
}

impl Pool {
    /// The newest block with exactly `layout`.
    fn take(&mut self, layout: Layout) -> Option<Block> {
        let key = (layout.size(), layout.align());
        let blocks = self.by_layout.get_mut(&key)?;
        let (stamp, block) = blocks.pop()?;
        if blocks.is_empty() {
            self.by_layout.remove(&key);
        }
        self.by_age.remove(&stamp);
        self.bytes -= block.layout.size();
        Some(block)
    }

    /// Adds `block`; returns the oldest blocks taken out to stay within `budget` bytes (to be freed by the
    /// caller, outside any lock: returning a large block to the system is a system call).
    fn give(&mut self, block: Block, budget: usize) -> Vec<Block> {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let key = (block.layout.size(), block.layout.align());
        self.bytes += block.layout.size();
        self.by_layout.entry(key).or_default().push((stamp, block));
        self.by_age.insert(stamp, key);
        let mut evicted = Vec::new();
        while self.bytes > budget {
            let Some((stamp, key)) = self.by_age.pop_first() else { break };
            let Some(blocks) = self.by_layout.get_mut(&key) else { continue };
            let Some(i) = blocks.iter().position(|(s, _)| *s == stamp) else { continue };
            let (_, block) = blocks.remove(i);
            if blocks.is_empty() {
                self.by_layout.remove(&key);
            }
            self.bytes -= block.layout.size();
            evicted.push(block);
        }
        evicted
    }

    /// Takes every block out.
    fn drain(&mut self) -> Vec<Block> {
        self.by_age.clear();
        self.bytes = 0;
        self.by_layout.drain().flat_map(|(_, v)| v.into_iter().map(|(_, b)| b)).collect()
    }
}

static POOL: ProcessWide<Mutex<Pool>> = ProcessWide::new("backend.host_pool", Mutex::default);

fn pool() -> MutexGuard<'static, Pool> {
    // A panic while the lock was held cannot leave the pool unsound: at worst `bytes` is off, which only
    // changes how much is kept.
    POOL.get().lock().unwrap_or_else(|e| e.into_inner())
}

/// The byte budget, read once.
fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let from_env = std::env::var("STREAMDSL_CPU_CACHE_BYTES").ok().and_then(|v| v.trim().parse::<usize>().ok());
        from_env.unwrap_or_else(|| (1usize << 30).min(super::storage::physical_memory_bytes() / 8))
    })
}

/// A cached allocation with exactly `layout`, if there is one; the caller owns it. Its memory holds old,
/// initialised values.
pub(crate) fn take(layout: Layout) -> Option<NonNull<u8>> {
    if layout.size() < MIN_CACHED_BYTES {
        return None;
    }
    pool().take(layout).map(Block::into_raw)
}

/// Keeps a freed allocation for reuse, or frees it (too small, cache off, or larger than the budget).
///
/// # Safety
/// `ptr` was allocated by the global allocator with `layout`, every byte of it is initialised, and nothing
/// else refers to it: the pool owns it from now on.
pub(crate) unsafe fn give(ptr: NonNull<u8>, layout: Layout) {
    let block = Block { ptr, layout };
    let budget = budget();
    if layout.size() < MIN_CACHED_BYTES || layout.size() > budget {
        return; // `block` frees it
    }
    let evicted = pool().give(block, budget);
    drop(evicted); // outside the lock
}

/// Frees every cached allocation; returns the bytes given back.
pub(crate) fn release_all() -> usize {
    let blocks = pool().drain();
    blocks.iter().map(|b| b.layout.size()).sum()
}

/// `v.try_reserve_exact(additional)`, emptying the cache and trying once more when it fails: for host memory an
/// op allocates outside [`crate::backend::Storage`] (scratch space, a copy to the host).
pub(crate) fn try_reserve_exact<T>(v: &mut Vec<T>, additional: usize) -> bool {
    v.try_reserve_exact(additional).is_ok() || (release_all() > 0 && v.try_reserve_exact(additional).is_ok())
}

/// Bytes held by the cache now.
pub(crate) fn cached_bytes() -> usize {
    pool().bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(size: usize, align: usize) -> Block {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).unwrap();
        Block { ptr, layout }
    }

    /// A block comes back for its exact layout only, newest first.
    #[test]
    fn blocks_are_reused_by_exact_layout() {
        let mut pool = Pool::default();
        let (a1, a2) = (block(1 << 20, 8), block(1 << 20, 8));
        let (p1, p2) = (a1.ptr, a2.ptr);
        assert!(pool.give(a1, 1 << 30).is_empty());
        assert!(pool.give(a2, 1 << 30).is_empty());
        assert_eq!(pool.bytes, 2 << 20);
        let other_align = Layout::from_size_align(1 << 20, 4).unwrap();
        assert!(pool.take(other_align).is_none(), "a different alignment is a different layout");
        let same = Layout::from_size_align(1 << 20, 8).unwrap();
        assert_eq!(pool.take(same).map(|b| b.ptr), Some(p2), "the newest block first");
        assert_eq!(pool.take(same).map(|b| b.ptr), Some(p1));
        assert!(pool.take(same).is_none());
        assert_eq!(pool.bytes, 0);
    }

    /// Beyond the budget, the oldest blocks go first, whatever their size.
    #[test]
    fn the_oldest_blocks_are_evicted_beyond_the_budget() {
        let mut pool = Pool::default();
        let budget = 3 << 20;
        assert!(pool.give(block(2 << 20, 8), budget).is_empty());
        let young = block(1 << 20, 4);
        let young_ptr = young.ptr;
        assert!(pool.give(young, budget).is_empty());
        let evicted = pool.give(block(1 << 20, 8), budget);
        assert_eq!(evicted.iter().map(|b| b.layout.size()).collect::<Vec<_>>(), vec![2 << 20]);
        assert_eq!(pool.bytes, 2 << 20);
        let layout = Layout::from_size_align(1 << 20, 4).unwrap();
        assert_eq!(pool.take(layout).map(|b| b.ptr), Some(young_ptr));
        assert_eq!(pool.drain().len(), 1);
        assert_eq!(pool.bytes, 0);
    }
}
