//! The model to CUDA C: readable code with the Rust types (`float` is only ever an `f32`), precedence-aware
//! parentheses, and calls of `kernel.cuh` wherever C++ would not do what Rust does (signed wrapping, casts,
//! shifts, integer division) or where the portable math library must be used (`k_exp`, `k_tanh`, …).
//!
//! Layout of what this emits, for a kernel `name`:
//! - elementwise: `__device__ R name_scalar(params)` (the body), and the entry points `name_contiguous` (every
//!   tensor has the output's shape) and `name_broadcast` (a `KBroadcast<N>` of strides), each a grid-stride loop
//!   that loads each float parameter from its tensor (`in_x`, widened) or takes its value (`val_x`), and rounds
//!   each result once to the tensors' element type `T`;
//! - grid: the entry `name` (`name_kernel` where `name` is taken by CUDA), one thread per global index below
//!   `k_n`, slices as a pointer and a length (`k_len_x`);
//! - device: `__device__ R dev_name(params)`.
//!
//! Shared memory and barriers are a later step: they would be declared at the top of the grid entry (a
//! `__shared__` array per `#[shared]` local) and `__syncthreads()` statements; the CPU form would then run a
//! block's threads in phases between barriers. Nothing here assumes a thread runs alone beyond its statements.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::Error;

use super::model::*;
use super::parse::error_at;
use super::validate::Types;

const CPP_KEYWORDS: &[&str] = &[
    "alignas",
    "alignof",
    "and",
    "and_eq",
    "asm",
    "auto",
    "bitand",
    "bitor",
    "bool",
    "break",
    "case",
    "catch",
    "char",
    "char8_t",
    "char16_t",
    "char32_t",
    "class",
    "compl",
    "concept",
    "const",
    "consteval",
    "constexpr",
    "constinit",
    "const_cast",
    "continue",
    "co_await",
    "co_return",
    "co_yield",
    "decltype",
    "default",
    "delete",
    "do",
    "double",
    "dynamic_cast",
    "else",
    "enum",
    "explicit",
    "export",
    "extern",
    "false",
    "float",
    "for",
    "friend",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "not",
    "not_eq",
    "nullptr",
    "operator",
    "or",
    "or_eq",
    "private",
    "protected",
    "public",
    "register",
    "reinterpret_cast",
    "requires",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "static_assert",
    "static_cast",
    "struct",
    "switch",
    "template",
    "this",
    "thread_local",
    "throw",
    "true",
    "try",
    "typedef",
    "typeid",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "wchar_t",
    "while",
    "xor",
    "xor_eq",
    "main",
];

/// Names the headers or CUDA define.
const TAKEN: &[&str] = &[
    "T",
    "u32",
    "u64",
    "i32",
    "i64",
    "usize",
    "isize",
    "f16_t",
    "bf16_t",
    "to_float",
    "to_double",
    "from_float",
    "from_double",
    "round_to_odd_f32",
    "uniform_f32",
    "uniform_f64",
    "box_muller_f32",
    "box_muller_f64",
    "philox4x32_10",
    "threadIdx",
    "blockIdx",
    "blockDim",
    "gridDim",
    "warpSize",
    "FOR_EACH_INDEX",
    "KBroadcast",
    "K_MAX_DIMS",
    "MAX_DIMS",
    "min",
    "max",
    "abs",
    "fabs",
    "fabsf",
    "fmin",
    "fminf",
    "fmax",
    "fmaxf",
    "sqrt",
    "sqrtf",
    "exp",
    "expf",
    "exp2",
    "exp2f",
    "expm1",
    "expm1f",
    "log",
    "logf",
    "log2",
    "log2f",
    "log10",
    "log10f",
    "log1p",
    "sin",
    "sinf",
    "cos",
    "cosf",
    "tan",
    "tanf",
    "tanh",
    "tanhf",
    "erf",
    "erff",
    "floor",
    "floorf",
    "ceil",
    "ceilf",
    "trunc",
    "truncf",
    "round",
    "roundf",
    "rint",
    "rintf",
    "fmod",
    "fmodf",
    "pow",
    "powf",
    "fma",
    "fmaf",
    "printf",
    "assert",
    "malloc",
    "free",
    "memcpy",
    "memset",
    "signbit",
    "isnan",
    "isinf",
    "copysign",
    "copysignf",
    "atomicAdd",
];

fn reserved(name: &str) -> bool {
    CPP_KEYWORDS.contains(&name)
        || TAKEN.contains(&name)
        || ["k_", "math_", "ptx_", "dev_", "sim_", "in_", "val_", "MATH_", "_"].iter().any(|p| name.starts_with(p))
}

/// The C name of an entry point: the Rust name, unless CUDA has that name already.
pub fn entry_name(name: &str) -> String {
    if reserved(name) {
        format!("{name}_kernel")
    } else {
        name.to_string()
    }
}

/// Unique C names for the kernel's locals: the Rust name where possible, `_` appended to names C++ or the
/// headers take, `_1`, `_2`… for Rust's shadowing (C++ forbids redeclaring a name in one scope, and
/// `float x = x + 1` would read the new `x`).
pub fn name_locals(k: &mut Kernel) {
    let mut used: HashSet<String> = HashSet::new();
    for local in &mut k.locals {
        let mut base = local.name.to_string();
        if let Some(raw) = base.strip_prefix("r#") {
            base = raw.to_string();
        }
        if reserved(&base) {
            base.push('_');
        }
        let mut name = base.clone();
        let mut n = 1;
        while used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        used.insert(name.clone());
        local.cname = name;
    }
}

/// Precedences of C++ operators (higher binds tighter).
const PREC_ATOM: u8 = 16;
const PREC_UNARY: u8 = 15;
const PREC_TERNARY: u8 = 3;

fn binary_prec(op: BinOp) -> u8 {
    match op {
        BinOp::Mul | BinOp::Div | BinOp::Rem => 13,
        BinOp::Add | BinOp::Sub => 12,
        BinOp::Shl | BinOp::Shr => 11,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 10,
        BinOp::Eq | BinOp::Ne => 9,
        BinOp::BitAnd => 8,
        BinOp::BitXor => 7,
        BinOp::BitOr => 6,
        BinOp::And => 5,
        BinOp::Or => 4,
    }
}

/// The shortest text that reads back as `v` (`0.7978846f`, `1e-7f`), or a bit pattern for inf/NaN.
pub fn float_literal(s: Scalar, bits: u64) -> String {
    if s == Scalar::F32 {
        let v = f32::from_bits(bits as u32);
        if v.is_finite() {
            let text = format!("{v:?}");
            let text = if text.contains(['.', 'e']) { text } else { format!("{text}.0") };
            format!("{text}f")
        } else {
            format!("__uint_as_float(0x{:08X}u)", bits as u32)
        }
    } else {
        let v = f64::from_bits(bits);
        if v.is_finite() {
            let text = format!("{v:?}");
            if text.contains(['.', 'e']) {
                text
            } else {
                format!("{text}.0")
            }
        } else {
            format!("__longlong_as_double(0x{bits:016X}ll)")
        }
    }
}

/// An integer literal of type `s` whose two's complement bits (in 64) are `bits`.
pub fn int_literal(s: Scalar, bits: u64) -> String {
    match s {
        Scalar::I32 => {
            let v = bits as i64 as i32;
            if v == i32::MIN {
                "(-2147483647 - 1)".into()
            } else {
                v.to_string()
            }
        }
        Scalar::U32 => format!("{}u", bits as u32),
        Scalar::I64 | Scalar::Isize => {
            let v = bits as i64;
            if v == i64::MIN {
                "(-9223372036854775807ll - 1ll)".into()
            } else {
                format!("{v}ll")
            }
        }
        Scalar::Bool => if bits != 0 { "true" } else { "false" }.into(),
        _ => format!("{bits}ull"),
    }
}

fn literal_bits(lit: &syn::LitInt) -> u64 {
    lit.base10_parse::<u128>().map(|v| v as u64).unwrap_or(0)
}

fn float_bits(s: Scalar, digits: &str) -> u64 {
    if s == Scalar::F32 {
        u64::from(digits.parse::<f32>().unwrap_or(0.0).to_bits())
    } else {
        digits.parse::<f64>().unwrap_or(0.0).to_bits()
    }
}

/// `text` in parentheses where its precedence is below `min`.
fn paren((text, prec): (String, u8), min: u8) -> String {
    if prec < min {
        format!("({text})")
    } else {
        text
    }
}

/// Where the value of a lowered expression goes.
#[derive(Clone)]
enum Dest {
    /// `return value;` (a scalar or device function).
    Return,
    /// `name = value;`
    Assign(String),
    /// Evaluated as a statement.
    Discard,
}

pub struct Cuda<'a> {
    k: &'a Kernel,
    t: &'a Types,
    out: String,
    indent: usize,
    pub errors: Vec<Error>,
}

fn is_unit(t: &Types, v: TyVar) -> bool {
    t.of(v) == Ty::Unit
}

impl<'a> Cuda<'a> {
    pub fn new(k: &'a Kernel, t: &'a Types) -> Self {
        Cuda { k, t, out: String::new(), indent: 0, errors: Vec::new() }
    }

    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn cname(&self, id: LocalId) -> &str {
        &self.k.locals[id].cname
    }

    fn scalar(&self, v: TyVar) -> Scalar {
        self.t.scalar(v)
    }

    fn complex(&mut self, span: Span, end: Span) -> String {
        self.errors.push(error_at(
            span,
            end,
            "a block with statements (or an `if` without `else`) cannot be used inside an expression in a kernel: \
             bind it with `let` first (`let y = if c { .. } else { .. };`)",
        ));
        "0".into()
    }

    /// Whether `e` lowers to one C expression.
    fn simple(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Const(_)
            | ExprKind::Local(_)
            | ExprKind::Len(_) => true,
            ExprKind::Unary(_, x) | ExprKind::Cast(x, _) | ExprKind::Paren(x) | ExprKind::Index(_, x) => self.simple(x),
            ExprKind::Binary(_, l, r) => self.simple(l) && self.simple(r),
            ExprKind::Method(_, r, args) => self.simple(r) && args.iter().all(|a| self.simple(a)),
            ExprKind::Builtin(_, args) | ExprKind::Call(_, args) => args.iter().all(|a| self.simple(a)),
            ExprKind::If(c, then, Some(other)) => {
                self.simple(c) && self.simple_block(then) && self.simple(other) && !is_unit(self.t, e.ty)
            }
            ExprKind::Block(b) => self.simple_block(b),
            _ => false,
        }
    }

    fn simple_block(&self, b: &Block) -> bool {
        b.stmts.is_empty() && b.tail.as_ref().is_some_and(|t| self.simple(t))
    }

    /// One C expression and its precedence.
    fn expr(&mut self, e: &Expr) -> (String, u8) {
        match &e.kind {
            ExprKind::Int(lit) => {
                let s = self.scalar(e.ty);
                if s.is_float() {
                    (float_literal(s, float_bits(s, lit.base10_digits())), PREC_ATOM)
                } else {
                    (int_literal(s, literal_bits(lit)), PREC_ATOM)
                }
            }
            ExprKind::Float(lit) => {
                let s = self.scalar(e.ty);
                (float_literal(s, float_bits(s, lit.base10_digits())), PREC_ATOM)
            }
            ExprKind::Bool(b) => (b.to_string(), PREC_ATOM),
            ExprKind::Const(c) => {
                let text = if c.ty.is_float() { float_literal(c.ty, c.bits) } else { int_literal(c.ty, c.bits) };
                let prec = if text.starts_with('-') { PREC_UNARY } else { PREC_ATOM };
                (text, prec)
            }
            ExprKind::Local(id) => (self.cname(*id).to_string(), PREC_ATOM),
            ExprKind::Unary(op, x) => {
                let s = self.scalar(x.ty);
                match op {
                    UnOp::Neg if s.is_float() => (format!("-{}", paren(self.expr(x), PREC_UNARY)), PREC_UNARY),
                    UnOp::Neg => {
                        if let ExprKind::Int(lit) = &x.kind {
                            let v = (literal_bits(lit) as i64).wrapping_neg() as u64;
                            let text = int_literal(s, v);
                            return (text, PREC_UNARY);
                        }
                        let inner = self.expr(x).0;
                        (format!("k_neg({inner})"), PREC_ATOM)
                    }
                    UnOp::Not if s == Scalar::Bool => (format!("!{}", paren(self.expr(x), PREC_UNARY)), PREC_UNARY),
                    UnOp::Not => (format!("~{}", paren(self.expr(x), PREC_UNARY)), PREC_UNARY),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r),
            ExprKind::Cast(x, target) => {
                let from = self.scalar(x.ty);
                let inner = self.expr(x);
                if from == *target {
                    return inner;
                }
                if from.is_float() && target.is_int() {
                    (format!("k_cast<{}>({})", target.c(), inner.0), PREC_ATOM)
                } else {
                    (format!("({}){}", target.c(), paren(inner, PREC_UNARY)), PREC_UNARY)
                }
            }
            ExprKind::Method(m, recv, args) => {
                let name = match m {
                    Method::Powf => "pow",
                    other => other.name(),
                };
                let mut parts = vec![self.expr(recv).0];
                parts.extend(args.iter().map(|a| self.expr(a).0));
                (format!("k_{name}({})", parts.join(", ")), PREC_ATOM)
            }
            ExprKind::Builtin(b, args) => {
                let text = match b {
                    Builtin::GlobalIndex => "k_gid".to_string(),
                    Builtin::ThreadIndex => "threadIdx.x".to_string(),
                    Builtin::BlockIndex => "blockIdx.x".to_string(),
                    Builtin::BlockDim => "blockDim.x".to_string(),
                    Builtin::GridDim => "gridDim.x".to_string(),
                    Builtin::Erf => {
                        let a = args.first().map(|a| self.expr(a).0).unwrap_or_default();
                        format!("k_erf({a})")
                    }
                };
                (text, PREC_ATOM)
            }
            ExprKind::Call(name, args) => {
                let args: Vec<String> = args.iter().map(|a| self.expr(a).0).collect();
                (format!("dev_{}({})", name, args.join(", ")), PREC_ATOM)
            }
            ExprKind::Index(id, index) => {
                let i = self.expr(index).0;
                (format!("{}[{i}]", self.cname(*id)), PREC_ATOM)
            }
            ExprKind::Len(id) => (format!("k_len_{}", self.cname(*id)), PREC_ATOM),
            ExprKind::Paren(x) => self.expr(x),
            ExprKind::If(c, then, Some(other)) if self.simple(e) => {
                let c = paren(self.expr(c), PREC_TERNARY + 1);
                let a = match &then.tail {
                    Some(t) => paren(self.expr(t), PREC_TERNARY + 1),
                    None => "0".into(),
                };
                let b = paren(self.expr(other), PREC_TERNARY);
                (format!("{c} ? {a} : {b}"), PREC_TERNARY)
            }
            ExprKind::Block(b) if self.simple_block(b) => match &b.tail {
                Some(t) => self.expr(t),
                None => ("0".into(), PREC_ATOM),
            },
            _ => (self.complex(e.span, e.end), PREC_ATOM),
        }
    }

    fn binary(&mut self, op: BinOp, l: &Expr, r: &Expr) -> (String, u8) {
        let s = self.scalar(l.ty);
        let call = |this: &mut Self, f: &str| {
            let (a, b) = (this.expr(l).0, this.expr(r).0);
            (format!("{f}({a}, {b})"), PREC_ATOM)
        };
        if op.is_shift() {
            let a = self.expr(l).0;
            let b = paren(self.expr(r), PREC_UNARY);
            let f = if op == BinOp::Shl { "k_shl" } else { "k_shr" };
            let amount = if self.scalar(r.ty) == Scalar::U32 { b } else { format!("(u32){b}") };
            return (format!("{f}({a}, {amount})"), PREC_ATOM);
        }
        match op {
            BinOp::Div | BinOp::Rem if s.is_int() => {
                return call(self, if op == BinOp::Div { "k_div" } else { "k_rem" })
            }
            BinOp::Rem if s.is_float() => return call(self, "k_rem"),
            BinOp::Add if s.is_signed_int() => return call(self, "k_add"),
            BinOp::Sub if s.is_signed_int() => return call(self, "k_sub"),
            BinOp::Mul if s.is_signed_int() => return call(self, "k_mul"),
            _ => {}
        }
        let prec = binary_prec(op);
        let a = paren(self.expr(l), prec);
        let b = paren(self.expr(r), prec + 1);
        (format!("{a} {} {b}", op.symbol()), prec)
    }

    fn place(&mut self, p: &Place) -> String {
        match p {
            Place::Local(id) => self.cname(*id).to_string(),
            Place::Index(id, index) => {
                let i = self.expr(index).0;
                format!("{}[{i}]", self.cname(*id))
            }
        }
    }

    fn place_ty(&self, p: &Place) -> Scalar {
        match p {
            Place::Local(id) => self.scalar(self.k.locals[*id].ty),
            Place::Index(id, ..) => self.k.locals[*id].slice.map(|(s, _)| s).unwrap_or(Scalar::F32),
        }
    }

    fn block_stmts(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Let { local, init, .. } => {
                let ty = self.scalar(self.k.locals[*local].ty).c();
                let name = self.cname(*local).to_string();
                match init {
                    None => self.line(&format!("{ty} {name};")),
                    Some(init) if self.simple(init) => {
                        let v = self.expr(init).0;
                        self.line(&format!("{ty} {name} = {v};"));
                    }
                    Some(init) => {
                        self.line(&format!("{ty} {name};"));
                        self.lower_into(init, &Dest::Assign(name));
                    }
                }
            }
            Stmt::Expr(e) => self.lower_into(e, &Dest::Discard),
        }
    }

    /// Lowers `e`, sending its value to `dest`.
    fn lower_into(&mut self, e: &Expr, dest: &Dest) {
        match &e.kind {
            ExprKind::If(c, then, other) if !self.simple(e) || matches!(dest, Dest::Discard) => {
                let cond = self.condition(c);
                self.line(&format!("if ({cond}) {{"));
                self.indent += 1;
                self.block_into(then, dest);
                self.indent -= 1;
                match other {
                    Some(other) => {
                        self.line("} else {");
                        self.indent += 1;
                        match &other.kind {
                            ExprKind::Block(b) => self.block_into(b, dest),
                            _ => self.lower_into(other, dest),
                        }
                        self.indent -= 1;
                        self.line("}");
                    }
                    None => self.line("}"),
                }
            }
            ExprKind::Block(b) if !self.simple(e) || matches!(dest, Dest::Discard) => {
                self.line("{");
                self.indent += 1;
                self.block_into(b, dest);
                self.indent -= 1;
                self.line("}");
            }
            ExprKind::Paren(x) => self.lower_into(x, dest),
            ExprKind::Assign(place, value) => {
                let v = self.value(value);
                let p = self.place(place);
                self.line(&format!("{p} = {v};"));
            }
            ExprKind::OpAssign(op, place, value) => {
                let s = self.place_ty(place);
                let v = self.value(value);
                let p = self.place(place);
                let special = match op {
                    BinOp::Div | BinOp::Rem if s.is_int() => Some(if *op == BinOp::Div { "k_div" } else { "k_rem" }),
                    BinOp::Rem => Some("k_rem"),
                    BinOp::Add if s.is_signed_int() => Some("k_add"),
                    BinOp::Sub if s.is_signed_int() => Some("k_sub"),
                    BinOp::Mul if s.is_signed_int() => Some("k_mul"),
                    BinOp::Shl => Some("k_shl"),
                    BinOp::Shr => Some("k_shr"),
                    _ => None,
                };
                match special {
                    Some(f) if op.is_shift() => {
                        let amount = if self.scalar(value.ty) == Scalar::U32 { v } else { format!("(u32)({v})") };
                        self.line(&format!("{p} = {f}({p}, {amount});"));
                    }
                    Some(f) => self.line(&format!("{p} = {f}({p}, {v});")),
                    None => self.line(&format!("{p} {}= {v};", op.symbol())),
                }
            }
            ExprKind::For { var, start, end, inclusive, body, id } => {
                let ty = self.scalar(self.k.locals[*var].ty).c();
                let i = self.cname(*var).to_string();
                let (a, b) = (self.value(start), self.value(end));
                if *inclusive {
                    // `a..=b` must stop at b == MAX without wrapping: a flag ends the loop after b.
                    let done = format!("k_done_{id}");
                    let stop = format!("k_end_{id}");
                    self.line(&format!(
                        "for ({ty} {i} = {a}, {stop} = {b}, {done} = 0; !{done} && {i} <= {stop}; {done} = ({i} == {stop}), {i} += ({ty})!{done}) {{"
                    ));
                } else {
                    let stop = format!("k_end_{id}");
                    self.line(&format!("for ({ty} {i} = {a}, {stop} = {b}; {i} < {stop}; ++{i}) {{"));
                }
                self.indent += 1;
                self.block_into(body, &Dest::Discard);
                self.indent -= 1;
                self.line("}");
            }
            ExprKind::While(cond, body) => {
                let c = self.condition(cond);
                self.line(&format!("while ({c}) {{"));
                self.indent += 1;
                self.block_into(body, &Dest::Discard);
                self.indent -= 1;
                self.line("}");
            }
            ExprKind::Loop(body, _) => {
                self.line("for (;;) {");
                self.indent += 1;
                self.block_into(body, &Dest::Discard);
                self.indent -= 1;
                self.line("}");
            }
            ExprKind::Break => self.line("break;"),
            ExprKind::Continue => self.line("continue;"),
            ExprKind::Return(value) => match value {
                Some(v) => self.returned(v),
                None => self.line("return;"),
            },
            ExprKind::Tuple(_) => self.returned(e),
            _ => {
                if matches!(e.kind, ExprKind::Tuple(_)) {
                    return self.returned(e);
                }
                let v = self.value(e);
                match dest {
                    Dest::Return => self.line(&format!("return {v};")),
                    Dest::Assign(name) => self.line(&format!("{name} = {v};")),
                    Dest::Discard => {
                        if !is_unit(self.t, e.ty) {
                            self.line(&format!("(void)({v});"));
                        }
                    }
                }
            }
        }
    }

    /// A returned value (a tuple becomes the kernel's output struct).
    fn returned(&mut self, v: &Expr) {
        if let ExprKind::Tuple(items) = &v.kind {
            let values: Vec<String> = items.iter().map(|i| self.value(i)).collect();
            let name = &self.k.name;
            self.line(&format!("return {name}_out{{{}}};", values.join(", ")));
        } else if let ExprKind::Paren(inner) = &v.kind {
            self.returned(inner);
        } else if self.simple(v) {
            let text = self.value(v);
            self.line(&format!("return {text};"));
        } else {
            self.lower_into(v, &Dest::Return);
        }
    }

    fn block_into(&mut self, b: &Block, dest: &Dest) {
        self.block_stmts(b);
        if let Some(tail) = &b.tail {
            self.lower_into(tail, dest);
        }
    }

    /// A value that must be one C expression.
    fn value(&mut self, e: &Expr) -> String {
        if self.simple(e) {
            self.expr(e).0
        } else {
            self.complex(e.span, e.end)
        }
    }

    fn condition(&mut self, e: &Expr) -> String {
        self.value(e)
    }

    /// `T name` for each parameter of a scalar or device function.
    fn scalar_params(&self) -> String {
        let params: Vec<String> = self
            .k
            .params
            .iter()
            .map(|p| format!("{} {}", self.scalar(self.k.locals[p.local].ty).c(), self.cname(p.local)))
            .collect();
        params.join(", ")
    }

    fn ret_c(&self) -> String {
        match &self.k.ret {
            RetTy::Unit => "void".into(),
            RetTy::Scalar(s) => s.c().into(),
            RetTy::Tuple(_) => format!("{}_out", self.k.name),
        }
    }

    fn function_body(&mut self) {
        self.indent += 1;
        let body = &self.k.body;
        self.block_stmts(body);
        if let Some(tail) = &body.tail {
            let dest = if self.k.ret == RetTy::Unit { Dest::Discard } else { Dest::Return };
            if dest == Dest::Return {
                self.returned(tail);
            } else {
                self.lower_into(tail, &dest);
            }
        }
        self.indent -= 1;
    }

    /// The CUDA C of the whole kernel.
    pub fn lower(mut self, signature: &str) -> Result<String, Vec<Error>> {
        let name = self.k.name.to_string();
        self.line(&format!("// {signature}"));
        match self.k.form {
            Form::Device => {
                let head =
                    format!("__device__ __forceinline__ {} dev_{name}({}) {{", self.ret_c(), self.scalar_params());
                self.line(&head);
                self.function_body();
                self.line("}");
            }
            Form::Elementwise => self.elementwise(&name),
            Form::Grid => self.grid(&name),
        }
        if self.errors.is_empty() {
            Ok(self.out)
        } else {
            Err(self.errors)
        }
    }

    fn elementwise(&mut self, name: &str) {
        if let RetTy::Tuple(items) = &self.k.ret {
            let fields: Vec<String> = items.iter().enumerate().map(|(i, s)| format!("{} v{i};", s.c())).collect();
            self.line(&format!("struct {name}_out {{ {} }};", fields.join(" ")));
        }
        let head = format!("__device__ __forceinline__ {} {name}_scalar({}) {{", self.ret_c(), self.scalar_params());
        self.line(&head);
        self.function_body();
        self.line("}");
        let outputs = match &self.k.ret {
            RetTy::Tuple(items) => items.len(),
            _ => 1,
        };
        let floats = self.k.params.iter().filter(|p| matches!(p.ty, ParamTy::Scalar(s) if s.is_float())).count();
        for broadcast in [false, true] {
            let mut params = Vec::new();
            let mut args = Vec::new();
            let mut slot = 0;
            for p in &self.k.params {
                let s = self.scalar(self.k.locals[p.local].ty);
                let n = self.cname(p.local).to_string();
                if s.is_float() {
                    params.push(format!("const T* __restrict__ in_{n}, {} val_{n}", s.c()));
                    let at = if broadcast { format!("k_at[{slot}]") } else { "k_i".into() };
                    args.push(format!("in_{n} ? k_widen<{}>(in_{n}[{at}]) : val_{n}", s.c()));
                    slot += 1;
                } else {
                    params.push(format!("{} val_{n}", s.c()));
                    args.push(format!("val_{n}"));
                }
            }
            for o in 0..outputs {
                params.push(format!("T* __restrict__ k_out{o}"));
            }
            params.push("u64 k_n".into());
            if broadcast {
                params.push(format!("KBroadcast<{}> k_bc", floats.max(1)));
            }
            let entry = if broadcast { "broadcast" } else { "contiguous" };
            self.line("");
            self.line(&format!("extern \"C\" __global__ void {name}_{entry}({}) {{", params.join(", ")));
            self.indent += 1;
            self.line("FOR_EACH_INDEX(k_i, k_n) {");
            self.indent += 1;
            if broadcast {
                self.line(&format!("u64 k_at[{}];", floats.max(1)));
                self.line("k_bc.offsets(k_i, k_at);");
            }
            let call = format!("{name}_scalar({})", args.join(", "));
            if outputs == 1 && !matches!(self.k.ret, RetTy::Tuple(_)) {
                self.line(&format!("k_out0[k_i] = k_narrow<T>({call});"));
            } else {
                self.line(&format!("{name}_out k_r = {call};"));
                for o in 0..outputs {
                    self.line(&format!("k_out{o}[k_i] = k_narrow<T>(k_r.v{o});"));
                }
            }
            self.indent -= 1;
            self.line("}");
            self.indent -= 1;
            self.line("}");
        }
    }

    fn grid(&mut self, name: &str) {
        let mut params = Vec::new();
        for p in &self.k.params {
            let n = self.cname(p.local).to_string();
            match p.ty {
                ParamTy::Slice { elem, mutable } => {
                    let c = if mutable { "" } else { "const " };
                    params.push(format!("{c}{}* __restrict__ {n}, u64 k_len_{n}", elem.c()));
                }
                ParamTy::Scalar(s) => params.push(format!("{} {n}", s.c())),
            }
        }
        params.push("u32 k_n".into());
        let entry = entry_name(name);
        self.line(&format!("extern \"C\" __global__ void {entry}({}) {{", params.join(", ")));
        self.indent += 1;
        self.line("const u32 k_gid = blockIdx.x * blockDim.x + threadIdx.x;");
        self.line("if (k_gid >= k_n) return;");
        self.indent -= 1;
        self.function_body();
        self.line("}");
    }
}

impl PartialEq for Dest {
    fn eq(&self, other: &Dest) -> bool {
        matches!((self, other), (Dest::Return, Dest::Return) | (Dest::Discard, Dest::Discard))
            || matches!((self, other), (Dest::Assign(a), Dest::Assign(b)) if a == b)
    }
}
