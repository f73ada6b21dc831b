//! From syntax to the model: the attribute's options, the signature and the body, keeping every span. Anything
//! outside the subset is a `syn::Error` at its tokens that says what is supported; building goes on after an
//! error, so every mistake in a kernel is reported at once, each once.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Error, Ident};

use super::model::*;

/// `#[kernel(...)]`'s options.
pub struct Options {
    pub form: Form,
    /// The runtime crate's path (`crate = path`, else `::streamdsl`).
    pub krate: TokenStream,
}

/// Parses the attribute's arguments: `grid`, `device`, `elementwise`, `crate = path` (or `crate = "path"`).
pub fn options(attr: TokenStream) -> (Options, Vec<Error>) {
    let mut form: Option<(Form, Span)> = None;
    let mut krate: Option<TokenStream> = None;
    let mut errors = Vec::new();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.to_token_stream().to_string().replace(' ', "");
        let set_form = |f: Form, form: &mut Option<(Form, Span)>, errors: &mut Vec<Error>| match form {
            Some(_) => errors.push(Error::new_spanned(
                &meta.path,
                "a kernel has one form: give one of `grid`, `device` (or nothing, for an elementwise kernel)",
            )),
            None => *form = Some((f, meta.path.span())),
        };
        match key.as_str() {
            "grid" => set_form(Form::Grid, &mut form, &mut errors),
            "device" => set_form(Form::Device, &mut form, &mut errors),
            "elementwise" => set_form(Form::Elementwise, &mut form, &mut errors),
            "crate" => {
                let value = meta.value()?;
                let path: syn::Path =
                    if value.peek(syn::LitStr) { value.parse::<syn::LitStr>()?.parse()? } else { value.parse()? };
                if krate.is_some() {
                    errors.push(Error::new_spanned(&meta.path, "`crate` is given twice"));
                }
                krate = Some(path.to_token_stream());
            }
            _ => {
                let near = ["grid", "device", "elementwise", "crate"].into_iter().find(|k| close(k, &key));
                let hint = near.map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
                return Err(meta.error(format!(
                    "unknown option `{key}`: {hint}`#[kernel]` takes `grid` (an index-space kernel), `device` (a \
                     helper callable from kernels) and `crate = path` (where the streamdsl crate is, default \
                     `::streamdsl`)"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    let krate = krate.unwrap_or_else(|| quote::quote!(::streamdsl));
    (Options { form: form.map(|(f, _)| f).unwrap_or(Form::Elementwise), krate }, errors)
}

/// Whether `a` and `b` are at most two edits apart (a misspelled option).
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut prev = row[0];
        row[0] = i;
        for j in 1..=b.len() {
            let cur = row[j];
            row[j] = (row[j] + 1).min(row[j - 1] + 1).min(prev + usize::from(a[i - 1] != b[j - 1]));
            prev = cur;
        }
    }
    row[b.len()] <= 2
}

/// An error over the tokens from `start` to `end`.
pub fn error_at(start: Span, end: Span, message: impl std::fmt::Display) -> Error {
    let mut a = proc_macro2::Punct::new('#', proc_macro2::Spacing::Alone);
    a.set_span(start);
    let mut b = proc_macro2::Punct::new('#', proc_macro2::Spacing::Alone);
    b.set_span(end);
    let tokens: TokenStream = [TokenTree::Punct(a), TokenTree::Punct(b)].into_iter().collect();
    Error::new_spanned(tokens, message)
}

/// First and last token spans of a syntax node.
fn range(node: &impl ToTokens) -> (Span, Span) {
    let tokens = node.to_token_stream();
    let mut iter = tokens.into_iter();
    let first = iter.next().map(|t| t.span()).unwrap_or_else(Span::call_site);
    let last = iter.last().map(|t| t.span()).unwrap_or(first);
    (first, last)
}

const SUBSET: &str = "kernels support `let`, assignment and compound assignment, `if`/`else`, `for` over integer \
                      ranges, `while`, `loop`, `break`/`continue`/`return`, arithmetic, comparison, logical and bit \
                      operators, `as` casts, float methods, slice indexing and calls of `#[kernel(device)]` functions";

const TYPES: &str = "`f32`, `f64`, `i32`, `u32`, `i64`, `u64`, `usize`, `isize` and `bool`";

/// Builds the model of one kernel.
pub struct Builder {
    form: Form,
    name: Ident,
    locals: Vec<Local>,
    scopes: Vec<Vec<(String, LocalId)>>,
    vars: usize,
    pub errors: Vec<Error>,
    calls: Vec<Ident>,
    /// For each enclosing loop: whether a `break` leaves it.
    loops: Vec<bool>,
    for_loops: usize,
    tuple_return: bool,
    /// Locals whose declaration was already reported (their uses are not reported again).
    poisoned: Vec<LocalId>,
}

/// The signature of a kernel as the expansion needs it even when the body has errors.
pub struct Signature {
    pub params: Vec<(Ident, Option<ParamTy>)>,
    pub ret: Option<RetTy>,
}

impl Builder {
    fn var(&mut self) -> TyVar {
        self.vars += 1;
        self.vars - 1
    }

    fn err(&mut self, node: &impl ToTokens, message: impl std::fmt::Display) {
        self.errors.push(Error::new_spanned(node, message));
    }

    fn new_local(&mut self, name: &Ident, mutable: bool, slice: Option<(Scalar, bool)>) -> LocalId {
        let ty = self.var();
        self.locals.push(Local { name: name.clone(), mutable, ty, slice, cname: String::new() });
        let id = self.locals.len() - 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_string(), id));
        }
        id
    }

    fn lookup(&self, name: &str) -> Option<LocalId> {
        self.scopes.iter().rev().flat_map(|s| s.iter().rev()).find(|(n, _)| n == name).map(|(_, id)| *id)
    }

    fn expr_of(&mut self, kind: ExprKind, node: &impl ToTokens) -> Expr {
        let (span, end) = range(node);
        Expr { kind, span, end, ty: self.var() }
    }
}

/// The type of a parameter, a `let` or a cast, if it is one of the subset's.
fn scalar_of(ty: &syn::Type) -> Option<Scalar> {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            let seg = &p.path.segments[0];
            if !seg.arguments.is_empty() {
                return None;
            }
            Scalar::from_name(&seg.ident.to_string())
        }
        syn::Type::Paren(p) => scalar_of(&p.elem),
        syn::Type::Group(g) => scalar_of(&g.elem),
        _ => None,
    }
}

fn unsupported_type(ty: &syn::Type) -> Error {
    let text = ty.to_token_stream().to_string().replace(' ', "");
    let heap = ["Vec", "String", "Box", "Rc", "Arc", "HashMap"].iter().any(|h| text.starts_with(h));
    let message = if heap {
        format!(
            "`{text}` is not available in kernels: kernels do not allocate (no `Vec`, `String` or `Box` on a GPU \
             thread); use scalars ({TYPES}) and the slice parameters"
        )
    } else if matches!(ty, syn::Type::Reference(_)) {
        format!(
            "references are not supported in kernels except the slice parameters of a `#[kernel(grid)]` \
             (`&[f32]`, `&mut [f64]`); `{text}` is not one"
        )
    } else {
        format!("unsupported type `{text}` in a kernel: kernels use {TYPES}")
    };
    Error::new_spanned(ty, message)
}

fn param_ty(ty: &syn::Type) -> Result<ParamTy, Error> {
    if let Some(s) = scalar_of(ty) {
        return Ok(ParamTy::Scalar(s));
    }
    if let syn::Type::Reference(r) = ty {
        if let syn::Type::Slice(slice) = &*r.elem {
            if let Some(lt) = &r.lifetime {
                return Err(Error::new_spanned(lt, "kernel slice parameters take no lifetime: write `&[f32]`"));
            }
            return match scalar_of(&slice.elem) {
                Some(elem @ (Scalar::F32 | Scalar::F64)) => {
                    Ok(ParamTy::Slice { elem, mutable: r.mutability.is_some() })
                }
                _ => Err(Error::new_spanned(
                    &slice.elem,
                    "kernel slices hold `f32` or `f64`: they are tensors (f16/bf16 tensors: use an elementwise \
                     kernel, which computes them in f32)",
                )),
            };
        }
    }
    Err(unsupported_type(ty))
}

fn ret_ty(ret: &syn::ReturnType) -> Result<RetTy, Error> {
    let ty = match ret {
        syn::ReturnType::Default => return Ok(RetTy::Unit),
        syn::ReturnType::Type(_, ty) => ty,
    };
    if let Some(s) = scalar_of(ty) {
        return Ok(RetTy::Scalar(s));
    }
    if let syn::Type::Tuple(t) = &**ty {
        if t.elems.is_empty() {
            return Ok(RetTy::Unit);
        }
        let mut items = Vec::new();
        for elem in &t.elems {
            items.push(scalar_of(elem).ok_or_else(|| unsupported_type(elem))?);
        }
        return Ok(RetTy::Tuple(items));
    }
    Err(unsupported_type(ty))
}

/// The signature alone (for the expansion of a kernel whose body has errors).
pub fn signature(f: &syn::ItemFn) -> Signature {
    let params = f
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(t) => match &*t.pat {
                syn::Pat::Ident(p) => Some((p.ident.clone(), param_ty(&t.ty).ok())),
                _ => None,
            },
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    Signature { params, ret: ret_ty(&f.sig.output).ok() }
}

/// Builds the model of `f`, or the errors (every one found).
pub fn kernel(form: Form, f: &syn::ItemFn) -> Result<Kernel, Vec<Error>> {
    let mut b = Builder {
        form,
        name: f.sig.ident.clone(),
        locals: Vec::new(),
        scopes: vec![Vec::new()],
        vars: 0,
        errors: Vec::new(),
        calls: Vec::new(),
        loops: Vec::new(),
        for_loops: 0,
        tuple_return: false,
        poisoned: Vec::new(),
    };
    let sig = &f.sig;
    if let Some(c) = &sig.constness {
        b.err(c, "a kernel cannot be `const`");
    }
    if let Some(a) = &sig.asyncness {
        b.err(a, "a kernel cannot be `async`: it is enqueued on a stream and runs asynchronously already");
    }
    if let Some(u) = &sig.unsafety {
        b.err(u, "a kernel cannot be `unsafe`: the generated code checks every index");
    }
    if let Some(abi) = &sig.abi {
        b.err(abi, "a kernel cannot have an `extern` ABI");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        b.err(
            &sig.generics,
            "a kernel cannot be generic: write it for `f32` (f16 and bf16 tensors run it in f32, rounding once) or \
             `f64`",
        );
    }
    if let Some(v) = &sig.variadic {
        b.err(v, "a kernel cannot be variadic");
    }
    let ret = match ret_ty(&sig.output) {
        Ok(r) => r,
        Err(e) => {
            b.errors.push(e);
            RetTy::Unit
        }
    };
    let mut params = Vec::new();
    for arg in &sig.inputs {
        let t = match arg {
            syn::FnArg::Receiver(r) => {
                b.err(r, "a kernel is a free function: it takes no `self`");
                continue;
            }
            syn::FnArg::Typed(t) => t,
        };
        let (ident, mutable) = match &*t.pat {
            syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => (p.ident.clone(), p.mutability.is_some()),
            other => {
                b.err(other, "kernel parameters are plain names (`x: f32`)");
                continue;
            }
        };
        let ty = match param_ty(&t.ty) {
            Ok(ty) => ty,
            Err(e) => {
                b.errors.push(e);
                // Declared anyway (as what it looks like), so its uses are not reported too.
                let slice = match &*t.ty {
                    syn::Type::Reference(r) if matches!(*r.elem, syn::Type::Slice(_)) => {
                        Some((Scalar::F32, r.mutability.is_some()))
                    }
                    _ => None,
                };
                let local = b.new_local(&ident, mutable, slice);
                b.poisoned.push(local);
                continue;
            }
        };
        match (form, ty) {
            (Form::Elementwise, ParamTy::Slice { .. }) => b.err(
                &t.ty,
                "an elementwise kernel takes scalars (it sees one element of each tensor): use `#[kernel(grid)]` \
                 for a kernel over slices",
            ),
            (Form::Device, ParamTy::Slice { .. }) => b.err(
                &t.ty,
                "a `#[kernel(device)]` function takes scalars; index the slices in the kernel and pass the values",
            ),
            _ => {}
        }
        let slice = match ty {
            ParamTy::Slice { elem, mutable } => Some((elem, mutable)),
            ParamTy::Scalar(_) => None,
        };
        if slice.is_some() && mutable {
            b.err(&t.pat, "a slice parameter cannot be `mut`: declare it `&mut [T]` to write its elements");
        }
        if params.iter().any(|p: &Param| b.locals[p.local].name == ident) {
            b.err(&ident, format!("the parameter `{ident}` is given twice"));
        }
        let local = b.new_local(&ident, mutable, slice);
        params.push(Param { local, ty });
    }
    match form {
        Form::Elementwise => {
            if !params.iter().any(|p| matches!(p.ty, ParamTy::Scalar(s) if s.is_float())) && !params.is_empty() {
                b.err(
                    &sig.inputs,
                    "an elementwise kernel needs a `f32` or `f64` parameter: the tensors it maps over (integer and \
                     `bool` parameters are plain values)",
                );
            }
            if params.is_empty() {
                b.err(&sig.ident, "an elementwise kernel needs a `f32` or `f64` parameter: the tensors it maps over");
            }
            let floats = match &ret {
                RetTy::Scalar(s) => s.is_float(),
                RetTy::Tuple(items) => items.iter().all(|s| s.is_float()),
                RetTy::Unit => false,
            };
            if !floats {
                b.errors.push(Error::new_spanned(
                    match &sig.output {
                        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
                        syn::ReturnType::Default => sig.ident.to_token_stream(),
                    },
                    "an elementwise kernel returns `f32` or `f64` (or a tuple of them, one per output tensor)",
                ));
            }
            b.tuple_return = matches!(ret, RetTy::Tuple(_));
        }
        Form::Grid => {
            if ret != RetTy::Unit {
                b.err(&sig.output, "a `#[kernel(grid)]` returns nothing: it writes its `&mut [T]` slices");
            }
        }
        Form::Device => {
            if !matches!(ret, RetTy::Scalar(_)) {
                b.errors.push(Error::new_spanned(
                    match &sig.output {
                        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
                        syn::ReturnType::Default => sig.ident.to_token_stream(),
                    },
                    format!("a `#[kernel(device)]` function returns one scalar: {TYPES}"),
                ));
            }
        }
    }
    b.scopes.push(Vec::new());
    let body = b.block(&f.block);
    b.scopes.pop();
    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    Ok(Kernel { form, name: b.name, params, ret, body, locals: b.locals, vars: b.vars, calls: b.calls })
}

impl Builder {
    fn block(&mut self, block: &syn::Block) -> Block {
        self.scopes.push(Vec::new());
        let mut stmts = Vec::new();
        let mut tail = None;
        let count = block.stmts.len();
        for (i, stmt) in block.stmts.iter().enumerate() {
            match stmt {
                syn::Stmt::Expr(e, None) if i + 1 == count => tail = Some(Box::new(self.expr(e))),
                _ => {
                    if let Some(s) = self.stmt(stmt) {
                        stmts.push(s);
                    }
                }
            }
        }
        self.scopes.pop();
        let (span, _) = range(block);
        Block { stmts, tail, span, ty: self.var() }
    }

    fn stmt(&mut self, stmt: &syn::Stmt) -> Option<Stmt> {
        match stmt {
            syn::Stmt::Local(l) => {
                let (pat, annot) = match &l.pat {
                    syn::Pat::Type(t) => (&*t.pat, Some(&*t.ty)),
                    other => (other, None),
                };
                let (ident, mutable) = match pat {
                    syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                        (p.ident.clone(), p.mutability.is_some())
                    }
                    other => {
                        self.err(other, "a kernel's `let` binds one name (`let x = ...;` or `let mut x: f32 = ...;`)");
                        // Bind the names anyway, so their uses are not reported too.
                        let mut names = Vec::new();
                        collect_idents(other, &mut names);
                        for ident in names {
                            self.new_local(&ident, true, None);
                        }
                        return None;
                    }
                };
                let before = self.errors.len();
                let annot = match annot {
                    Some(ty) => match scalar_of(ty) {
                        Some(s) => Some(s),
                        None => {
                            self.errors.push(unsupported_type(ty));
                            None
                        }
                    },
                    None => None,
                };
                let init = match &l.init {
                    // An initializer of a type that was reported is not checked again.
                    Some(_) if self.errors.len() > before => None,
                    Some(init) => {
                        if let Some((_, diverge)) = &init.diverge {
                            self.err(diverge, "`let ... else` is not supported in kernels");
                        }
                        Some(self.expr(&init.expr))
                    }
                    None => None,
                };
                // After the initializer: `let x = x + 1;` reads the previous `x`.
                let local = self.new_local(&ident, mutable, None);
                if self.errors.len() > before {
                    self.poisoned.push(local);
                }
                Some(Stmt::Let { local, annot, init, span: l.let_token.span })
            }
            syn::Stmt::Item(item) => {
                self.err(
                    item,
                    "items (functions, constants, `use`) inside a kernel are not supported: define a \
                     `#[kernel(device)]` function beside the kernel, and pass constants as parameters",
                );
                None
            }
            syn::Stmt::Expr(e, _) => Some(Stmt::Expr(self.expr(e))),
            syn::Stmt::Macro(m) => {
                self.macro_error(&m.mac);
                None
            }
        }
    }

    fn macro_error(&mut self, mac: &syn::Macro) {
        let name = mac.path.to_token_stream().to_string().replace(' ', "");
        let why = match name.as_str() {
            "panic" | "unreachable" | "todo" | "unimplemented" | "assert" | "assert_eq" | "assert_ne"
            | "debug_assert" | "debug_assert_eq" => "kernels cannot panic (a GPU thread cannot unwind)",
            "println" | "print" | "eprintln" | "eprint" | "dbg" | "format" | "write" | "writeln" => {
                "kernels cannot print or format"
            }
            "vec" => "kernels do not allocate (no `Vec` on a GPU thread)",
            _ => "the macro's expansion cannot be seen by `#[kernel]`",
        };
        self.err(mac, format!("macros are not supported in kernels: `{name}!`: {why}"));
    }

    fn unsupported(&mut self, node: &impl ToTokens, what: &str) -> Expr {
        self.err(node, format!("{what} are not supported in kernels; {SUBSET}"));
        self.expr_of(ExprKind::Bool(false), node)
    }

    fn expr(&mut self, e: &syn::Expr) -> Expr {
        use syn::Expr as E;
        let kind = match e {
            E::Lit(l) => match &l.lit {
                syn::Lit::Int(i) => match i.suffix() {
                    "" => ExprKind::Int(i.clone()),
                    "f32" | "f64" => {
                        let text = format!("{}.0{}", i.base10_digits(), i.suffix());
                        ExprKind::Float(syn::LitFloat::new(&text, i.span()))
                    }
                    s if Scalar::from_name(s).is_some() => ExprKind::Int(i.clone()),
                    s => {
                        self.err(i, format!("unsupported integer type `{s}` in a kernel: kernels use {TYPES}"));
                        ExprKind::Bool(false)
                    }
                },
                syn::Lit::Float(f) => match f.suffix() {
                    "" | "f32" | "f64" => ExprKind::Float(f.clone()),
                    s => {
                        self.err(f, format!("unsupported float type `{s}` in a kernel: kernels use `f32` and `f64`"));
                        ExprKind::Bool(false)
                    }
                },
                syn::Lit::Bool(b) => ExprKind::Bool(b.value),
                other => {
                    self.err(other, "only number and `bool` literals are supported in kernels");
                    ExprKind::Bool(false)
                }
            },
            E::Path(p) => return self.path(p),
            E::Unary(u) => {
                let op = match u.op {
                    syn::UnOp::Neg(_) => UnOp::Neg,
                    syn::UnOp::Not(_) => UnOp::Not,
                    _ => {
                        self.err(u, "dereferences (`*x`) are not supported in kernels: a kernel works on values");
                        return self.expr_of(ExprKind::Bool(false), e);
                    }
                };
                ExprKind::Unary(op, Box::new(self.expr(&u.expr)))
            }
            E::Binary(bin) => return self.binary(e, bin),
            E::Assign(a) => {
                let place = self.place(&a.left);
                let value = self.expr(&a.right);
                match place {
                    Some(place) => ExprKind::Assign(place, Box::new(value)),
                    None => ExprKind::Bool(false),
                }
            }
            E::Cast(c) => {
                let inner = self.expr(&c.expr);
                match scalar_of(&c.ty) {
                    Some(Scalar::Bool) => {
                        self.err(&c.ty, "a number cannot be cast to `bool`: compare it instead (`x != 0`)");
                        ExprKind::Bool(false)
                    }
                    Some(s) => ExprKind::Cast(Box::new(inner), s),
                    None => {
                        self.errors.push(unsupported_type(&c.ty));
                        ExprKind::Bool(false)
                    }
                }
            }
            E::MethodCall(m) => return self.method(e, m),
            E::Call(c) => return self.call(e, c),
            E::Index(i) => {
                let index = self.expr(&i.index);
                match self.slice_local(&i.expr) {
                    Some(local) => ExprKind::Index(local, Box::new(index)),
                    None => {
                        self.err(&i.expr, "only the slice parameters of a `#[kernel(grid)]` can be indexed");
                        ExprKind::Bool(false)
                    }
                }
            }
            E::Paren(p) => ExprKind::Paren(Box::new(self.expr(&p.expr))),
            E::Group(g) => return self.expr(&g.expr),
            E::If(i) => {
                if let E::Let(l) = &*i.cond {
                    return self.unsupported(l, "`if let` patterns");
                }
                let cond = self.expr(&i.cond);
                let then = self.block(&i.then_branch);
                let other = i.else_branch.as_ref().map(|(_, e)| Box::new(self.expr(e)));
                ExprKind::If(Box::new(cond), then, other)
            }
            E::Block(b) => {
                if let Some(label) = &b.label {
                    return self.unsupported(label, "labelled blocks");
                }
                ExprKind::Block(self.block(&b.block))
            }
            E::ForLoop(f) => return self.for_loop(e, f),
            E::While(w) => {
                if let Some(label) = &w.label {
                    return self.unsupported(label, "loop labels");
                }
                if let E::Let(l) = &*w.cond {
                    return self.unsupported(l, "`while let` patterns");
                }
                let cond = self.expr(&w.cond);
                self.loops.push(false);
                let body = self.block(&w.body);
                self.loops.pop();
                ExprKind::While(Box::new(cond), body)
            }
            E::Loop(l) => {
                if let Some(label) = &l.label {
                    return self.unsupported(label, "loop labels");
                }
                self.loops.push(false);
                let body = self.block(&l.body);
                let broken = self.loops.pop().unwrap_or(true);
                ExprKind::Loop(body, !broken)
            }
            E::Break(b) => {
                if let Some(label) = &b.label {
                    return self.unsupported(label, "loop labels");
                }
                if let Some(v) = &b.expr {
                    return self.unsupported(v, "`break` with a value");
                }
                if let Some(top) = self.loops.last_mut() {
                    *top = true;
                }
                ExprKind::Break
            }
            E::Continue(c) => {
                if let Some(label) = &c.label {
                    return self.unsupported(label, "loop labels");
                }
                ExprKind::Continue
            }
            E::Return(r) => ExprKind::Return(r.expr.as_ref().map(|v| Box::new(self.expr(v)))),
            E::Tuple(t) => {
                if !self.tuple_return {
                    return self.unsupported(
                        t,
                        "tuples (except as the returned value of an elementwise kernel with several outputs)",
                    );
                }
                ExprKind::Tuple(t.elems.iter().map(|x| self.expr(x)).collect())
            }
            E::Closure(c) => {
                self.err(c, "closures are not supported in kernels: write a `#[kernel(device)]` function and call it");
                ExprKind::Bool(false)
            }
            E::Macro(m) => {
                self.macro_error(&m.mac);
                ExprKind::Bool(false)
            }
            E::Reference(r) => {
                self.err(
                    r,
                    "references are not supported in kernels: a kernel works on values (write `x`, not `&x`); the \
                     only references are the `&[T]` and `&mut [T]` parameters of a `#[kernel(grid)]`",
                );
                ExprKind::Bool(false)
            }
            E::Array(a) => return self.unsupported(a, "arrays"),
            E::Repeat(r) => return self.unsupported(r, "arrays"),
            E::Match(m) => return self.unsupported(&m.match_token, "`match` expressions (use `if`/`else`)"),
            E::Range(r) => return self.unsupported(r, "ranges outside a `for` loop"),
            E::Try(t) => return self.unsupported(&t.question_token, "`?` operators (kernels have no `Result`)"),
            E::Await(a) => return self.unsupported(a, "`.await`s"),
            E::Async(a) => return self.unsupported(a, "async blocks"),
            E::Unsafe(u) => return self.unsupported(&u.unsafe_token, "`unsafe` blocks"),
            E::Field(f) => return self.unsupported(f, "field accesses"),
            E::Struct(s) => return self.unsupported(s, "structs"),
            E::Let(l) => return self.unsupported(l, "`let` expressions"),
            other => return self.unsupported(other, "expressions like this"),
        };
        self.expr_of(kind, e)
    }

    fn binary(&mut self, e: &syn::Expr, bin: &syn::ExprBinary) -> Expr {
        use syn::BinOp as B;
        let (op, assign) = match bin.op {
            B::Add(_) => (BinOp::Add, false),
            B::Sub(_) => (BinOp::Sub, false),
            B::Mul(_) => (BinOp::Mul, false),
            B::Div(_) => (BinOp::Div, false),
            B::Rem(_) => (BinOp::Rem, false),
            B::And(_) => (BinOp::And, false),
            B::Or(_) => (BinOp::Or, false),
            B::BitXor(_) => (BinOp::BitXor, false),
            B::BitAnd(_) => (BinOp::BitAnd, false),
            B::BitOr(_) => (BinOp::BitOr, false),
            B::Shl(_) => (BinOp::Shl, false),
            B::Shr(_) => (BinOp::Shr, false),
            B::Eq(_) => (BinOp::Eq, false),
            B::Lt(_) => (BinOp::Lt, false),
            B::Le(_) => (BinOp::Le, false),
            B::Ne(_) => (BinOp::Ne, false),
            B::Ge(_) => (BinOp::Ge, false),
            B::Gt(_) => (BinOp::Gt, false),
            B::AddAssign(_) => (BinOp::Add, true),
            B::SubAssign(_) => (BinOp::Sub, true),
            B::MulAssign(_) => (BinOp::Mul, true),
            B::DivAssign(_) => (BinOp::Div, true),
            B::RemAssign(_) => (BinOp::Rem, true),
            B::BitXorAssign(_) => (BinOp::BitXor, true),
            B::BitAndAssign(_) => (BinOp::BitAnd, true),
            B::BitOrAssign(_) => (BinOp::BitOr, true),
            B::ShlAssign(_) => (BinOp::Shl, true),
            B::ShrAssign(_) => (BinOp::Shr, true),
            _ => return self.unsupported(&bin.op, "operators like this"),
        };
        if assign {
            let place = self.place(&bin.left);
            let value = self.expr(&bin.right);
            let kind = match place {
                Some(place) => ExprKind::OpAssign(op, place, Box::new(value)),
                None => ExprKind::Bool(false),
            };
            return self.expr_of(kind, e);
        }
        let left = self.expr(&bin.left);
        let right = self.expr(&bin.right);
        self.expr_of(ExprKind::Binary(op, Box::new(left), Box::new(right)), e)
    }

    /// An assignment's left side: a local or an element of a slice parameter.
    fn place(&mut self, e: &syn::Expr) -> Option<Place> {
        match e {
            syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                let ident = p.path.get_ident()?;
                match self.lookup(&ident.to_string()) {
                    Some(id) if self.locals[id].slice.is_some() => {
                        self.err(e, "a slice parameter cannot be assigned: assign its elements (`out[i] = x`)");
                        None
                    }
                    Some(id) => Some(Place::Local(id)),
                    None => {
                        self.not_found(ident);
                        None
                    }
                }
            }
            syn::Expr::Index(i) => {
                let index = self.expr(&i.index);
                match self.slice_local(&i.expr) {
                    Some(id) => {
                        if self.locals[id].slice.is_some_and(|(_, m)| !m) {
                            let name = &self.locals[id].name;
                            let msg = format!(
                                "cannot assign to an element of `{name}`: it is a read-only slice (`&[T]`); declare \
                                 it `&mut [T]` to write it"
                            );
                            self.err(e, msg);
                        }
                        Some(Place::Index(id, Box::new(index)))
                    }
                    None => {
                        self.err(&i.expr, "only the slice parameters of a `#[kernel(grid)]` can be indexed");
                        None
                    }
                }
            }
            syn::Expr::Paren(p) => self.place(&p.expr),
            other => {
                self.err(other, "only a local variable or an element of a `&mut [T]` slice can be assigned");
                None
            }
        }
    }

    fn slice_local(&mut self, e: &syn::Expr) -> Option<LocalId> {
        if let syn::Expr::Path(p) = e {
            if let Some(ident) = p.path.get_ident() {
                let id = self.lookup(&ident.to_string())?;
                return self.locals[id].slice.map(|_| id);
            }
        }
        None
    }

    fn not_found(&mut self, ident: &Ident) {
        let name = ident.to_string();
        let constant = name.chars().next().is_some_and(|c| c.is_uppercase());
        let message = if constant {
            format!(
                "cannot find `{name}` in this kernel: kernels cannot use constants or statics from outside; pass the \
                 value as a parameter or write the literal"
            )
        } else {
            format!(
                "cannot find `{name}` in this kernel: kernels cannot capture variables from outside (the body runs on \
                 the GPU); pass it as a parameter"
            )
        };
        self.err(ident, message);
    }

    fn path(&mut self, p: &syn::ExprPath) -> Expr {
        let e = syn::Expr::Path(p.clone());
        if p.qself.is_none() {
            if let Some(ident) = p.path.get_ident() {
                return match self.lookup(&ident.to_string()) {
                    Some(id) if self.locals[id].slice.is_some() => {
                        let msg = format!(
                            "`{ident}` is a slice: index it (`{ident}[i]`) or ask for its length (`{ident}.len()`)"
                        );
                        self.err(p, msg);
                        self.expr_of(ExprKind::Bool(false), &e)
                    }
                    Some(id) => self.expr_of(ExprKind::Local(id), &e),
                    None => {
                        self.not_found(ident);
                        self.expr_of(ExprKind::Bool(false), &e)
                    }
                };
            }
            let segments: Vec<String> = p.path.segments.iter().map(|s| s.ident.to_string()).collect();
            if p.path.segments.iter().all(|s| s.arguments.is_empty()) {
                if let Some(c) = constant(&segments) {
                    return self.expr_of(ExprKind::Const(c), &e);
                }
            }
        }
        let text = p.to_token_stream().to_string().replace(' ', "");
        self.err(
            p,
            format!(
                "`{text}` is not available in kernels: they use their parameters, locals, literals and the constants \
                 `f32::MAX`, `u32::MAX`, `std::f32::consts::PI`, …"
            ),
        );
        self.expr_of(ExprKind::Bool(false), &e)
    }

    fn method(&mut self, e: &syn::Expr, m: &syn::ExprMethodCall) -> Expr {
        let name = m.method.to_string();
        if let Some(t) = &m.turbofish {
            self.err(t, "kernel methods take no type arguments");
        }
        if matches!(name.as_str(), "unwrap" | "expect" | "unwrap_or" | "unwrap_unchecked") {
            self.err(
                &m.method,
                format!("`{name}` is not supported: kernels have no `Option`/`Result`, and cannot panic"),
            );
            return self.expr_of(ExprKind::Bool(false), e);
        }
        let Some(method) = Method::from_name(&name) else {
            let floats: Vec<&str> = Method::FLOAT.iter().map(|(n, _)| *n).collect();
            self.err(
                &m.method,
                format!(
                    "unsupported method `{name}` in a kernel: floats have `{}`, numbers `abs`, `min` and `max`, slices \
                     `len` (and `erf(x)` is a function)",
                    floats.join("`, `")
                ),
            );
            return self.expr_of(ExprKind::Bool(false), e);
        };
        if m.args.len() != method.arity() {
            let n = method.arity();
            self.err(
                &m.method,
                format!("`{name}` takes {n} argument{}, not {}", if n == 1 { "" } else { "s" }, m.args.len()),
            );
            return self.expr_of(ExprKind::Bool(false), e);
        }
        if method == Method::Len {
            return match self.slice_local(&m.receiver) {
                Some(id) => self.expr_of(ExprKind::Len(id), e),
                None => {
                    self.err(&m.receiver, "`len()` is for the slice parameters of a `#[kernel(grid)]`");
                    self.expr_of(ExprKind::Bool(false), e)
                }
            };
        }
        let receiver = self.expr(&m.receiver);
        let args = m.args.iter().map(|a| self.expr(a)).collect();
        self.expr_of(ExprKind::Method(method, Box::new(receiver), args), e)
    }

    fn call(&mut self, e: &syn::Expr, c: &syn::ExprCall) -> Expr {
        let func = match &*c.func {
            syn::Expr::Path(p) if p.qself.is_none() => p,
            other => return self.unsupported(other, "calls of anything but a named function"),
        };
        let Some(ident) = func.path.get_ident() else {
            let text = func.to_token_stream().to_string().replace(' ', "");
            let first = func.path.segments.first().map(|s| s.ident.to_string()).unwrap_or_default();
            let message = if ["Vec", "String", "Box", "vec"].contains(&first.as_str()) {
                format!("`{text}` is not available in kernels: kernels do not allocate (no `Vec`, `String` or `Box` on a GPU thread)")
            } else if Scalar::from_name(&first).is_some() {
                format!("`{text}(..)` is not supported in kernels: call the method (`x.sqrt()`, `a.max(b)`)")
            } else {
                format!(
                    "`{text}` cannot be called from a kernel: kernels call `#[kernel(device)]` functions by their plain \
                     name, and the built-ins `global_index()`, `thread_index()`, `block_index()`, `block_dim()`, \
                     `grid_dim()` and `erf(x)`"
                )
            };
            self.err(func, message);
            return self.expr_of(ExprKind::Bool(false), e);
        };
        let args: Vec<Expr> = c.args.iter().map(|a| self.expr(a)).collect();
        let name = ident.to_string();
        if let Some(builtin) = Builtin::from_name(&name) {
            if args.len() != builtin.arity() {
                let n = builtin.arity();
                self.err(c, format!("`{name}` takes {n} argument{}", if n == 1 { "" } else { "s" }));
            } else if builtin.needs_grid() && self.form != Form::Grid {
                let why = match self.form {
                    Form::Elementwise => "an elementwise kernel sees one element at a time, not an index",
                    _ => "pass the index from the kernel as a parameter",
                };
                self.err(ident, format!("`{name}()` is only available in a `#[kernel(grid)]`: {why}"));
            }
            return self.expr_of(ExprKind::Builtin(builtin, args), e);
        }
        if ident == &self.name {
            self.err(
                ident,
                format!("`{name}` calls itself: recursion is not supported in kernels (GPU threads have tiny stacks); use a loop"),
            );
            return self.expr_of(ExprKind::Bool(false), e);
        }
        if let Some(id) = self.lookup(&name) {
            if !self.poisoned.contains(&id) {
                self.err(ident, format!("`{name}` is a variable, not a function"));
            }
            return self.expr_of(ExprKind::Bool(false), e);
        }
        if !self.calls.iter().any(|c| c == ident) {
            self.calls.push(ident.clone());
        }
        self.expr_of(ExprKind::Call(ident.clone(), args), e)
    }

    fn for_loop(&mut self, e: &syn::Expr, f: &syn::ExprForLoop) -> Expr {
        if let Some(label) = &f.label {
            return self.unsupported(label, "loop labels");
        }
        let ident = match &*f.pat {
            syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                if let Some(m) = &p.mutability {
                    self.err(m, "the loop variable cannot be `mut`: copy it into a `let mut` inside the loop");
                }
                p.ident.clone()
            }
            other => {
                self.err(other, "a `for` loop binds one name: `for i in 0..n`");
                return self.expr_of(ExprKind::Bool(false), e);
            }
        };
        let range = match &*f.expr {
            syn::Expr::Range(r) => r,
            syn::Expr::Paren(p) => match &*p.expr {
                syn::Expr::Range(r) => r,
                other => return self.unsupported(other, "`for` loops over anything but an integer range (`0..n`)"),
            },
            other => return self.unsupported(other, "`for` loops over anything but an integer range (`0..n`)"),
        };
        let (Some(start), Some(end)) = (&range.start, &range.end) else {
            return self.unsupported(range, "open ranges (`a..`, `..b`)");
        };
        let inclusive = matches!(range.limits, syn::RangeLimits::Closed(_));
        let start = self.expr(start);
        let end = self.expr(end);
        self.scopes.push(Vec::new());
        let var = self.new_local(&ident, false, None);
        self.loops.push(false);
        let body = self.block(&f.body);
        self.loops.pop();
        self.scopes.pop();
        self.for_loops += 1;
        let kind =
            ExprKind::For { var, start: Box::new(start), end: Box::new(end), inclusive, body, id: self.for_loops };
        self.expr_of(kind, e)
    }
}

/// The names a pattern binds.
fn collect_idents(pat: &syn::Pat, out: &mut Vec<Ident>) {
    match pat {
        syn::Pat::Ident(p) => out.push(p.ident.clone()),
        syn::Pat::Tuple(t) => t.elems.iter().for_each(|p| collect_idents(p, out)),
        syn::Pat::TupleStruct(t) => t.elems.iter().for_each(|p| collect_idents(p, out)),
        syn::Pat::Slice(s) => s.elems.iter().for_each(|p| collect_idents(p, out)),
        syn::Pat::Type(t) => collect_idents(&t.pat, out),
        syn::Pat::Paren(p) => collect_idents(&p.pat, out),
        syn::Pat::Reference(r) => collect_idents(&r.pat, out),
        _ => {}
    }
}

/// `f32::MAX`, `u32::MAX`, `std::f64::consts::PI`, … by path segments.
fn constant(segments: &[String]) -> Option<Constant> {
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let segs = match segs.as_slice() {
        ["std" | "core", rest @ ..] => rest.to_vec(),
        other => other.to_vec(),
    };
    let float = |ty: Scalar, v32: f32, v64: f64, rust: String| Constant {
        ty,
        rust,
        bits: if ty == Scalar::F32 { u64::from(v32.to_bits()) } else { v64.to_bits() },
    };
    match segs.as_slice() {
        [t @ ("f32" | "f64"), "consts", name] => {
            let ty = Scalar::from_name(t)?;
            let (a, b): (f32, f64) = match *name {
                "PI" => (std::f32::consts::PI, std::f64::consts::PI),
                "TAU" => (std::f32::consts::TAU, std::f64::consts::TAU),
                "E" => (std::f32::consts::E, std::f64::consts::E),
                "SQRT_2" => (std::f32::consts::SQRT_2, std::f64::consts::SQRT_2),
                "FRAC_1_SQRT_2" => (std::f32::consts::FRAC_1_SQRT_2, std::f64::consts::FRAC_1_SQRT_2),
                "FRAC_2_SQRT_PI" => (std::f32::consts::FRAC_2_SQRT_PI, std::f64::consts::FRAC_2_SQRT_PI),
                "FRAC_1_PI" => (std::f32::consts::FRAC_1_PI, std::f64::consts::FRAC_1_PI),
                "FRAC_2_PI" => (std::f32::consts::FRAC_2_PI, std::f64::consts::FRAC_2_PI),
                "FRAC_PI_2" => (std::f32::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2),
                "FRAC_PI_3" => (std::f32::consts::FRAC_PI_3, std::f64::consts::FRAC_PI_3),
                "FRAC_PI_4" => (std::f32::consts::FRAC_PI_4, std::f64::consts::FRAC_PI_4),
                "FRAC_PI_6" => (std::f32::consts::FRAC_PI_6, std::f64::consts::FRAC_PI_6),
                "FRAC_PI_8" => (std::f32::consts::FRAC_PI_8, std::f64::consts::FRAC_PI_8),
                "LN_2" => (std::f32::consts::LN_2, std::f64::consts::LN_2),
                "LN_10" => (std::f32::consts::LN_10, std::f64::consts::LN_10),
                "LOG2_E" => (std::f32::consts::LOG2_E, std::f64::consts::LOG2_E),
                "LOG10_E" => (std::f32::consts::LOG10_E, std::f64::consts::LOG10_E),
                "LOG2_10" => (std::f32::consts::LOG2_10, std::f64::consts::LOG2_10),
                "LOG10_2" => (std::f32::consts::LOG10_2, std::f64::consts::LOG10_2),
                _ => return None,
            };
            Some(float(ty, a, b, format!("::core::{t}::consts::{name}")))
        }
        [t @ ("f32" | "f64"), name] => {
            let ty = Scalar::from_name(t)?;
            let (a, b): (f32, f64) = match *name {
                "MAX" => (f32::MAX, f64::MAX),
                "MIN" => (f32::MIN, f64::MIN),
                "MIN_POSITIVE" => (f32::MIN_POSITIVE, f64::MIN_POSITIVE),
                "EPSILON" => (f32::EPSILON, f64::EPSILON),
                "INFINITY" => (f32::INFINITY, f64::INFINITY),
                "NEG_INFINITY" => (f32::NEG_INFINITY, f64::NEG_INFINITY),
                "NAN" => (f32::NAN, f64::NAN),
                _ => return None,
            };
            Some(float(ty, a, b, format!("::core::primitive::{t}::{name}")))
        }
        [t, name @ ("MAX" | "MIN")] => {
            let ty = Scalar::from_name(t).filter(|s| s.is_int())?;
            let max = *name == "MAX";
            let bits: u64 = match (ty, max) {
                (Scalar::I32, true) => i32::MAX as u64,
                (Scalar::I32, false) => i32::MIN as i64 as u64,
                (Scalar::U32, true) => u32::MAX as u64,
                (Scalar::I64 | Scalar::Isize, true) => i64::MAX as u64,
                (Scalar::I64 | Scalar::Isize, false) => i64::MIN as u64,
                (Scalar::U64 | Scalar::Usize, true) => u64::MAX,
                (_, false) => 0,
                _ => return None,
            };
            Some(Constant { ty, rust: format!("::core::primitive::{t}::{name}"), bits })
        }
        _ => None,
    }
}
