//! From CUDA C source to a loadable shared object: the system C++ compiler, the emulation header, and an
//! on-disk cache keyed by a hash of everything that decides the output.
//!
//! 1. The entry points (`extern "C" __global__` functions, and their `__launch_bounds__`) are found in the
//!    *preprocessed* source (`$CXX -E`, with `__global__` kept as a marker), so kernels inside `#if` blocks
//!    that are switched off are not listed.
//! 2. The translation unit is the emulation header, the source (`#line 1`), and a table of entry points
//!    whose C++ thunks deduce each kernel's parameter types from its signature.
//! 3. It is compiled with `-std=c++17 -O2 -fPIC -shared -ffp-contract=off` (no contraction of `a*b+c` into
//!    an FMA; no fast-math) into `<cache>/<sha256>.so` through a temporary file and a rename, so concurrent
//!    processes never see half an entry. The directory is created with mode 0700.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::driver::config::config;

/// The first line of an image that carries source for the simulator (see the crate docs).
pub const MAGIC: &str = "//streamdsl-sim-source v1";

/// The emulation header.
pub const HEADER: &str = include_str!("emulation.h");

/// Why a module could not be built.
#[derive(Debug, Clone)]
pub enum CompileError {
    /// No C++ compiler was found; the text names what was looked for.
    NoCompiler(String),
    /// The compiler rejected the source; the text holds its output.
    Failed(String),
    /// Writing the cache or running the compiler failed.
    Io(String),
}

/// The compiler: its command and its identity (`--version`'s first line).
#[derive(Debug, Clone)]
pub struct Compiler {
    /// Program and leading arguments (from `$CXX`, which may carry flags).
    pub command: Vec<String>,
    /// First line of `--version`.
    pub version: String,
}

/// Finds `$CXX`, else `c++`, else `g++` (once per process).
pub fn compiler() -> Result<&'static Compiler, CompileError> {
    static FOUND: OnceLock<Result<Compiler, CompileError>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let from_env = std::env::var("CXX").ok().filter(|v| !v.trim().is_empty());
            let mut candidates: Vec<Vec<String>> = Vec::new();
            if let Some(cxx) = &from_env {
                candidates.push(cxx.split_whitespace().map(String::from).collect());
            }
            candidates.push(vec!["c++".into()]);
            candidates.push(vec!["g++".into()]);
            for cmd in &candidates {
                let out = Command::new(&cmd[0]).args(&cmd[1..]).arg("--version").stderr(Stdio::null()).output();
                if let Ok(out) = out {
                    if out.status.success() {
                        let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string();
                        return Ok(Compiler { command: cmd.clone(), version });
                    }
                }
            }
            let env_part = match &from_env {
                Some(v) => format!("$CXX ({v}), "),
                None => "$CXX (unset), ".to_string(),
            };
            Err(CompileError::NoCompiler(format!(
                "no C++ compiler found to build kernels for the simulated GPU: looked for {env_part}`c++` and `g++` \
                 on PATH. Install one (e.g. `apt-get install g++`) or set CXX"
            )))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A kernel entry point found in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDecl {
    /// Its name.
    pub name: String,
    /// The first argument of `__launch_bounds__`, as C++ text, if any.
    pub bound: Option<String>,
}

fn flags() -> Vec<String> {
    let cfg = config();
    let arch = cfg.cc.0 * 100 + cfg.cc.1 * 10;
    vec![
        "-std=c++17".into(),
        cfg.opt.clone(),
        "-fPIC".into(),
        "-shared".into(),
        "-ffp-contract=off".into(),
        "-fno-fast-math".into(),
        "-fno-strict-aliasing".into(),
        "-fno-exceptions".into(),
        "-fvisibility=hidden".into(),
        "-w".into(),
        "-DSTREAMDSL_SIM=1".into(),
        format!("-D__CUDA_ARCH__={arch}"),
    ]
}

/// Builds (or finds in the cache) the shared object for `source`; returns its path.
pub fn build(source: &str) -> Result<PathBuf, CompileError> {
    let cxx = compiler()?;
    let flags = flags();
    let mut h = Sha256::new();
    for part in [MAGIC, source, HEADER, &cxx.command.join(" "), &cxx.version, &flags.join(" ")] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let dir = &config().cache_dir;
    create_private_dir(dir).map_err(|e| CompileError::Io(format!("creating {}: {e}", dir.display())))?;
    let so = dir.join(format!("{key}.so"));
    if so.is_file() {
        return Ok(so);
    }
    let entries = scan(cxx, source)?;
    let tu = translation_unit(source, &entries);
    let unique = format!("{}.{}", std::process::id(), unique_suffix());
    let cpp = dir.join(format!("{key}.{unique}.cpp"));
    let tmp = dir.join(format!("{key}.{unique}.tmp"));
    std::fs::write(&cpp, &tu).map_err(|e| CompileError::Io(format!("writing {}: {e}", cpp.display())))?;
    let out = Command::new(&cxx.command[0])
        .args(&cxx.command[1..])
        .args(&flags)
        .arg("-x")
        .arg("c++")
        .arg(&cpp)
        .arg("-o")
        .arg(&tmp)
        .output()
        .map_err(|e| CompileError::Io(format!("running {}: {e}", cxx.command[0])));
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_file(&cpp);
            return Err(e);
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let kept = dir.join(format!("{key}.failed.cpp"));
        let _ = std::fs::rename(&cpp, &kept);
        return Err(CompileError::Failed(format!(
            "{} failed to compile the kernel source (translation unit kept at {}):\n{log}",
            cxx.command[0],
            kept.display()
        )));
    }
    // Keep the translation unit next to the object (readable line numbers when debugging a kernel).
    let _ = std::fs::rename(&cpp, dir.join(format!("{key}.cpp")));
    std::fs::rename(&tmp, &so).map_err(|e| CompileError::Io(format!("renaming into {}: {e}", so.display())))?;
    Ok(so)
}

/// Deletes a cache entry that failed to load, so the next build recompiles it.
pub fn evict(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    t ^ N.fetch_add(1, Ordering::Relaxed).rotate_left(40)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.is_dir() {
        let r = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
        if r.is_err() && !dir.is_dir() {
            return r;
        }
    }
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Preprocesses `source` (no header) with `__global__` kept as a marker and lists the entry points.
fn scan(cxx: &Compiler, source: &str) -> Result<Vec<EntryDecl>, CompileError> {
    let cfg = config();
    let arch = cfg.cc.0 * 100 + cfg.cc.1 * 10;
    let mut child = Command::new(&cxx.command[0])
        .args(&cxx.command[1..])
        .args(["-E", "-P", "-x", "c++", "-DSTREAMDSL_SIM=1", "-D__global__=__sim_global__"])
        .arg(format!("-D__CUDA_ARCH__={arch}"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CompileError::Io(format!("running {}: {e}", cxx.command[0])))?;
    if let Some(mut stdin) = child.stdin.take() {
        let src = source.to_string();
        // Written from another thread: the child may fill its stdout pipe before reading all of stdin.
        std::thread::spawn(move || {
            let _ = stdin.write_all(src.as_bytes());
        });
    }
    let out = child.wait_with_output().map_err(|e| CompileError::Io(format!("running {}: {e}", cxx.command[0])))?;
    if !out.status.success() {
        return Err(CompileError::Failed(format!(
            "{} failed to preprocess the kernel source:\n{}",
            cxx.command[0],
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(entry_points(&String::from_utf8_lossy(&out.stdout)))
}

/// The `extern "C" __sim_global__ void [__launch_bounds__(…)] NAME(` declarations of preprocessed text.
pub fn entry_points(pre: &str) -> Vec<EntryDecl> {
    let mut found: Vec<EntryDecl> = Vec::new();
    let marker = "__sim_global__";
    let mut at = 0;
    while let Some(pos) = pre[at..].find(marker) {
        let start = at + pos;
        at = start + marker.len();
        // Preceded by extern "C" (C linkage: the name is the symbol cuModuleGetFunction looks up).
        let before = pre[..start].trim_end();
        if !before.ends_with("extern \"C\"") {
            continue;
        }
        let mut rest = pre[at..].trim_start();
        let Some(r) = rest.strip_prefix("void") else { continue };
        rest = r.trim_start();
        let mut bound = None;
        if let Some(r) = rest.strip_prefix("__launch_bounds__") {
            let r = r.trim_start();
            let Some((args, after)) = balanced(r) else { continue };
            bound = Some(split_top_level(args).into_iter().next().unwrap_or_default().trim().to_string());
            rest = after.trim_start();
        }
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.is_empty() || !rest[name.len()..].trim_start().starts_with('(') {
            continue;
        }
        if !found.iter().any(|e| e.name == name) {
            found.push(EntryDecl { name, bound });
        }
    }
    found
}

/// `(inner, rest)` for text starting with a parenthesised group.
fn balanced(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[1..i], &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    for c in s.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// The C++ translation unit: header, source, entry table.
pub fn translation_unit(source: &str, entries: &[EntryDecl]) -> String {
    let mut tu = String::with_capacity(HEADER.len() + source.len() + 1024);
    tu.push_str(HEADER);
    tu.push_str("\n#line 1 \"kernel.cu\"\n");
    tu.push_str(source);
    tu.push_str("\n// ---- generated by streamdsl-cuda-sim: the entry points ----\n");
    tu.push_str(
        "extern \"C\" __attribute__((visibility(\"default\"))) const sim_entry* streamdsl_sim_entries(\
         int* streamdsl_sim_count_out, int* streamdsl_sim_abi_out) {\n",
    );
    tu.push_str("    static const sim_entry streamdsl_sim_table[] = {\n");
    for e in entries {
        let bound = e.bound.clone().unwrap_or_else(|| "1024".into());
        tu.push_str(&format!("        SIM_ENTRY({}, ({}))\n", e.name, bound));
    }
    tu.push_str("        { nullptr, nullptr, 0, nullptr, 0 }\n    };\n");
    tu.push_str(&format!(
        "    *streamdsl_sim_count_out = {};\n    *streamdsl_sim_abi_out = 1;\n    return streamdsl_sim_table;\n}}\n",
        entries.len()
    ));
    tu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entry_points_and_bounds() {
        let pre = "extern \"C\" __sim_global__ void __launch_bounds__(((128 / 8) * (128 / 8)))\nmm_tiled(const float* A) {}\n\
                   __sim_global__ void not_c(int x) {}\nextern \"C\" __sim_global__ void copy(int n) {}\n\
                   extern \"C\" __sim_global__ void __launch_bounds__(256, 2) sum(int n) {}";
        let e = entry_points(pre);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[0].name, "mm_tiled");
        assert_eq!(e[0].bound.as_deref(), Some("((128 / 8) * (128 / 8))"));
        assert_eq!(e[1], EntryDecl { name: "copy".into(), bound: None });
        assert_eq!(e[2].bound.as_deref(), Some("256"));
    }
}
