//! NVRTC through cudarc: load a located library, ask its version, compile a program to CUBIN.
//!
//! cudarc loads `libnvrtc` by its soname on first use and panics when it is missing, so callers must go
//! through [`load`] first: it opens the library found by `super::nvrtc`'s search by absolute path and keeps it
//! loaded; the dynamic loader then resolves cudarc's by-soname open to that same library.

use std::ffi::{c_char, CString};
use std::path::Path;
use std::sync::OnceLock;

use cudarc::nvrtc::{result, sys};

/// What a failed compilation returns: the NVRTC log, or a message when NVRTC itself failed.
pub(crate) struct CompileFailure {
    pub log: String,
}

/// Opens `path` and keeps it loaded for the life of the process. Returns the NVRTC version.
pub(crate) fn load(path: &Path) -> Result<(i32, i32), String> {
    static LOADED: OnceLock<Result<(i32, i32), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
            let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
            std::mem::forget(lib); // stays loaded: cudarc's handle resolves to it by soname
                                   // NVRTC opens its builtins library by soname when it compiles; a wheel's copy sits beside it
                                   // but is not on the loader path, so load it the same way.
            if let Some(builtins) = builtins_beside(path) {
                // SAFETY: as above.
                if let Ok(lib) = unsafe { libloading::Library::new(&builtins) } {
                    std::mem::forget(lib);
                }
            }
            // SAFETY: the library is loaded (above), so cudarc finds it.
            if !unsafe { sys::is_culib_present() } {
                return Err(format!(
                    "{} loaded, but not under a name cudarc looks for (libnvrtc.so.13 or libnvrtc.so)",
                    path.display()
                ));
            }
            let (mut major, mut minor) = (0, 0);
            // SAFETY: plain out-parameters.
            unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
                .result()
                .map_err(|e| format!("nvrtcVersion failed: {e:?}"))?;
            Ok((major, minor))
        })
        .clone()
}

/// `libnvrtc-builtins.so.*` in the same folder as `nvrtc` (not the `.alt` variant), if any.
fn builtins_beside(nvrtc: &Path) -> Option<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(nvrtc.parent()?)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libnvrtc-builtins.so")))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Compiles `source` (named `name` in messages) with `options`; returns the CUBIN. Call [`load`] first.
pub(crate) fn compile_cubin(source: &str, name: &str, options: &[String]) -> Result<Vec<u8>, CompileFailure> {
    // SAFETY: `compile` passes a live, compiled program.
    compile(source, name, options, |prog| unsafe { cubin(prog) })
}

/// Compiles `source` like [`compile_cubin`] and returns the PTX NVRTC generated on the way (for inspection).
pub(crate) fn compile_ptx(source: &str, name: &str, options: &[String]) -> Result<String, CompileFailure> {
    compile(source, name, options, |prog| {
        // SAFETY: `compile` passes a live, compiled program.
        unsafe { result::get_ptx(prog) }
            .map(|chars| text(&chars))
            .map_err(|e| CompileFailure { log: format!("nvrtcGetPTX: {e:?}") })
    })
}

/// Creates an NVRTC program for `source`, compiles it with `options` and hands the compiled program to
/// `output` (which reads what it needs from it); the program is destroyed after. A compile error is the log.
fn compile<R>(
    source: &str,
    name: &str,
    options: &[String],
    output: impl FnOnce(sys::nvrtcProgram) -> Result<R, CompileFailure>,
) -> Result<R, CompileFailure> {
    let fail = |log: String| CompileFailure { log };
    let src = CString::new(source).map_err(|_| fail("the source contains a NUL byte".into()))?;
    let cname = CString::new(name).map_err(|_| fail("the kernel name contains a NUL byte".into()))?;
    let prog = result::create_program(&src, Some(&cname)).map_err(|e| fail(format!("nvrtcCreateProgram: {e:?}")))?;
    // SAFETY: `prog` was created above and is destroyed once, at the end; `src`/`cname` outlive it.
    let outcome = unsafe {
        match result::compile_program(prog, options) {
            Ok(()) => output(prog),
            Err(_) => Err(fail(log(prog))),
        }
    };
    // SAFETY: as above; a failure to free is not worth more than a leak.
    let _ = unsafe { result::destroy_program(prog) };
    outcome
}

/// NVRTC's NUL-terminated characters as text.
fn text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// # Safety
/// `prog` must be a live, compiled program.
unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, CompileFailure> {
    let mut size = 0usize;
    // SAFETY: per the function's contract.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
        .result()
        .map_err(|e| CompileFailure { log: format!("nvrtcGetCUBINSize: {e:?} (was a real sm_XY arch given?)") })?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds `size` bytes, as NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast::<c_char>()) }
        .result()
        .map_err(|e| CompileFailure { log: format!("nvrtcGetCUBIN: {e:?}") })?;
    Ok(buf)
}

/// # Safety
/// `prog` must be a live program.
unsafe fn log(prog: sys::nvrtcProgram) -> String {
    // SAFETY: per the function's contract.
    match unsafe { result::get_program_log(prog) } {
        Ok(chars) => text(&chars),
        Err(e) => format!("(no log: {e:?})"),
    }
}
