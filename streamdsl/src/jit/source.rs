//! Assembling a kernel's full source: its specialisation's defines, then the `.cu` file with our own
//! headers inlined (each once), so NVRTC needs no include paths.

use streamdsl_kernels::HEADERS;

/// `defines` as `#define` lines, then `source` with every `#include "x.cuh"` of ours replaced by the
/// header's text.
pub(crate) fn assemble(defines: &[(String, String)], source: &str) -> String {
    let mut out = String::new();
    for (name, value) in defines {
        out.push_str(&format!("#define {name} {value}\n"));
    }
    let mut included = Vec::new();
    inline(source, &mut out, &mut included);
    out
}

fn inline(source: &str, out: &mut String, included: &mut Vec<&'static str>) {
    for line in source.lines() {
        let header = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .and_then(|name| HEADERS.iter().find(|(h, _)| *h == name));
        match header {
            Some((name, text)) => {
                if !included.contains(name) {
                    included.push(name);
                    inline(text, out, included);
                }
            }
            None if line.trim() == "#pragma once" => {}
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_are_inlined_once_after_the_defines() {
        let s = super::assemble(&[("T".into(), "float".into())], streamdsl_kernels::RANDN);
        assert!(s.starts_with("#define T float\n"));
        assert_eq!(s.matches("typedef unsigned int u32;").count(), 1, "common.cuh inlined once");
        assert!(s.contains("philox4x32_10"));
        assert!(!s.contains("#include \"common.cuh\""));
    }
}
