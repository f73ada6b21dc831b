//! The `SIGSEGV` / `SIGBUS` handler that turns a hardware fault inside a kernel into a failed launch.
//!
//! A worker arms its thread before running blocks (`arm`, called by the kernel module's block runner with
//! a `sigjmp_buf` it set); a fault on an armed thread records the address and jumps back into that runner
//! (which returns `SIM_FAULT`). Faults on any other thread go to the handler that was installed before ours
//! (Rust's stack-overflow handler, or the default action).

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

type Jump = unsafe extern "C" fn(*mut c_void);

thread_local! {
    static ARMED: Cell<Option<(usize, Jump)>> = const { Cell::new(None) };
    static FAULT: Cell<Option<(usize, bool)>> = const { Cell::new(None) };
}

static ARMED_THREADS: AtomicUsize = AtomicUsize::new(0);
static mut OLD_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
static mut OLD_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
static INSTALL: Once = Once::new();

/// Installs the handler (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: plain sigaction calls; the old actions are saved before ours is in place and only read by
        // the handler afterwards.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSEGV, &sa, (&raw mut OLD_SEGV).cast());
            libc::sigaction(libc::SIGBUS, &sa, (&raw mut OLD_BUS).cast());
        }
    });
}

/// Called by the block runner: a fault on this thread calls `jump(jmp)`.
pub extern "C" fn arm(jmp: *mut c_void, jump: Option<Jump>) {
    let Some(jump) = jump else { return };
    FAULT.with(|f| f.set(None));
    if ARMED.with(|a| a.replace(Some((jmp as usize, jump)))).is_none() {
        ARMED_THREADS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Called by the block runner when it leaves kernel code.
pub extern "C" fn disarm() {
    if ARMED.with(|a| a.take()).is_some() {
        ARMED_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The address (and whether it was a write, where the platform says) of this thread's last kernel fault.
pub fn take_fault() -> Option<(usize, bool)> {
    FAULT.with(|f| f.take())
}

unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    if ARMED_THREADS.load(Ordering::SeqCst) > 0 {
        if let Some((jmp, jump)) = ARMED.with(|a| a.take()) {
            ARMED_THREADS.fetch_sub(1, Ordering::SeqCst);
            // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
            let addr = unsafe { (*info).si_addr() } as usize;
            FAULT.with(|f| f.set(Some((addr, is_write(ctx)))));
            // SAFETY: `jmp` is the live sigjmp_buf of the block runner below us on this thread's stack; the
            // frames jumped over (kernel code, fibers, this handler) own nothing that needs dropping.
            unsafe { jump(jmp as *mut c_void) };
        }
    }
    // Not ours: hand over to the previous handler, or restore the default action and return (the faulting
    // instruction runs again and takes it).
    // SAFETY: reading the actions saved by `install`, which completed before this handler was installed.
    unsafe {
        let old = if sig == libc::SIGBUS {
            (&raw const OLD_BUS).cast::<libc::sigaction>()
        } else {
            (&raw const OLD_SEGV).cast::<libc::sigaction>()
        };
        let old = &*old;
        let h = old.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: unsafe extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) = std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: unsafe extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn is_write(ctx: *mut c_void) -> bool {
    if ctx.is_null() {
        return false;
    }
    // SAFETY: for SA_SIGINFO handlers the third argument is the interrupted ucontext.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    // The page-fault error code: bit 1 set for a write.
    uc.uc_mcontext.gregs[libc::REG_ERR as usize] & 2 != 0
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn is_write(_ctx: *mut c_void) -> bool {
    false
}

/// Gives the calling thread an alternate signal stack if it has none (fiber stack overflows are handled on
/// it).
pub fn ensure_altstack() {
    const SIZE: usize = 64 * 1024;
    // SAFETY: querying then installing an alternate stack for this thread; the memory is leaked on purpose
    // (the thread keeps using it until it exits).
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut old) == 0 && old.ss_flags & libc::SS_DISABLE == 0 {
            return;
        }
        let mem = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t { ss_sp: mem, ss_flags: 0, ss_size: SIZE };
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}
