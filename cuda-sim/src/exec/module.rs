//! Loaded modules: a compiled shared object (`dlopen`), its entry points and their parameter tables.

use std::collections::HashMap;
use std::ffi::{c_int, CStr, CString};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use super::abi::{EntriesFn, RunFn, SimEntry, ABI_VERSION};

/// What a kernel parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A value (scalar or struct).
    Value,
    /// A pointer to const: the kernel reads through it.
    ConstPtr,
    /// A pointer to non-const: the kernel may read and write through it.
    MutPtr,
}

/// One parameter: size, alignment, kind.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// `sizeof`.
    pub size: usize,
    /// `alignof`.
    pub align: usize,
    /// Pointer or value.
    pub kind: ParamKind,
}

/// One kernel of a module.
#[derive(Debug)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Runs a range of its blocks.
    pub run: RunFn,
    /// Its parameters, from its signature.
    pub params: Vec<Param>,
    /// `__launch_bounds__` (1024 without).
    pub max_threads: u32,
    /// The module (kept alive while the function is in use).
    pub module: Arc<Module>,
    /// Its handle.
    pub handle: u64,
}

/// A loaded module.
#[derive(Debug)]
pub struct Module {
    /// Its handle.
    pub handle: u64,
    /// The shared object.
    pub path: std::path::PathBuf,
    entries: HashMap<String, (RunFn, Vec<Param>, u32)>,
    functions: Mutex<HashMap<String, Arc<Function>>>,
}

// SAFETY: the entry table points into a shared object that is never unloaded (see `open`); the function
// pointers are plain code addresses.
unsafe impl Send for Module {}
// SAFETY: as above; mutable state is behind a mutex.
unsafe impl Sync for Module {}

struct Lib(*mut libc::c_void);
// SAFETY: a dlopen handle is a plain token, usable from any thread.
unsafe impl Send for Lib {}

/// Loads the shared object at `path` (never unloaded: code may still run after `cuModuleUnload`, and the
/// modules are few). Errors say why.
pub fn open(path: &Path, handle: u64) -> Result<Module, String> {
    static OPEN: LazyLock<Mutex<HashMap<std::path::PathBuf, Lib>>> = LazyLock::new(Mutex::default);
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| "bad path".to_string())?;
    let lib = {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(path) {
            Some(l) => l.0,
            None => {
                // SAFETY: dlopen of a shared object we built from the emulation header; its initialisers only
                // set up statics.
                let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
                if h.is_null() {
                    // SAFETY: dlerror returns a thread-local message or null.
                    let msg = unsafe { libc::dlerror() };
                    let msg = if msg.is_null() {
                        "unknown".to_string()
                    } else {
                        // SAFETY: non-null, NUL-terminated.
                        unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()
                    };
                    return Err(format!("dlopen {}: {msg}", path.display()));
                }
                open.insert(path.to_path_buf(), Lib(h));
                h
            }
        }
    };
    // SAFETY: looking up a symbol in a live handle.
    let sym = unsafe { libc::dlsym(lib, c"streamdsl_sim_entries".as_ptr()) };
    if sym.is_null() {
        return Err(format!("{} has no entry table", path.display()));
    }
    // SAFETY: the symbol is the generated `streamdsl_sim_entries` of the ABI in `abi.rs`.
    let entries_fn: EntriesFn = unsafe { std::mem::transmute::<*mut libc::c_void, EntriesFn>(sym) };
    let (mut count, mut abi): (c_int, c_int) = (0, 0);
    // SAFETY: out-parameters; returns a static table of `count` entries.
    let table = unsafe { entries_fn(&mut count, &mut abi) };
    if abi != ABI_VERSION || table.is_null() {
        return Err(format!("{}: module ABI {abi}, expected {ABI_VERSION}", path.display()));
    }
    let mut entries = HashMap::new();
    for i in 0..usize::try_from(count).unwrap_or(0) {
        // SAFETY: `i < count` entries of a static table.
        let e: &SimEntry = unsafe { &*table.add(i) };
        // SAFETY: a static NUL-terminated name.
        let name = unsafe { CStr::from_ptr(e.name) }.to_string_lossy().into_owned();
        let n = usize::try_from(e.nparams).unwrap_or(0);
        let params = (0..n)
            .map(|j| {
                // SAFETY: `j < nparams` entries of a static table.
                let p = unsafe { *e.params.add(j) };
                Param {
                    size: p.size as usize,
                    align: (p.align as usize).max(1),
                    kind: match p.kind {
                        1 => ParamKind::ConstPtr,
                        2 => ParamKind::MutPtr,
                        _ => ParamKind::Value,
                    },
                }
            })
            .collect();
        let bound = u32::try_from(e.max_threads).ok().filter(|&b| b > 0).unwrap_or(1024).min(1024);
        entries.insert(name, (e.run, params, bound));
    }
    Ok(Module { handle, path: path.to_path_buf(), entries, functions: Mutex::default() })
}

impl Module {
    /// The function `name` (one `Function` per name, created on first request).
    pub fn function(self: &Arc<Self>, name: &str, new_handle: impl FnOnce() -> u64) -> Option<Arc<Function>> {
        let mut fns = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fns.get(name) {
            return Some(Arc::clone(f));
        }
        let (run, params, max_threads) = self.entries.get(name)?.clone();
        let f = Arc::new(Function {
            name: name.to_string(),
            run,
            params,
            max_threads,
            module: Arc::clone(self),
            handle: new_handle(),
        });
        fns.insert(name.to_string(), Arc::clone(&f));
        Some(f)
    }

    /// The names of its kernels.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.keys().cloned().collect();
        v.sort();
        v
    }
}
