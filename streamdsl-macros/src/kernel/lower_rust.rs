//! The model to Rust for the CPU backend: the same program with every type written out (literals suffixed,
//! `let`s annotated), so rustc checks the types the CUDA C was generated with. Where Rust's own operations
//! would differ from the CUDA C (debug-build overflow panics, division by zero, out-of-range indexing) the code
//! calls `kernel::__rt`, whose functions wrap like the GPU does or return a `Fault`, which becomes an `Err` that
//! poisons the stream: a kernel never panics. Transcendentals come from `streamdsl::math`, the portable library
//! the CUDA C uses too.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

use super::model::*;
use super::validate::Types;

/// Where the code runs: an elementwise or device function (returns a value), or a grid thread.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// A function returning its value; `Result` when fallible.
    Function { fallible: bool },
    /// The body of a grid thread: a closure returning `Result<(), Fault>`.
    Thread,
}

pub struct RustGen<'a> {
    pub k: &'a Kernel,
    pub t: &'a Types,
    /// `#krate::kernel::__rt`
    pub rt: TokenStream,
    /// `#krate::math`
    pub math: TokenStream,
    pub ctx: Ctx,
}

/// Whether the CPU form of `k` can fail: integer division or remainder, a device call.
pub fn fallible(k: &Kernel, t: &Types) -> bool {
    fn expr(e: &Expr, t: &Types) -> bool {
        match &e.kind {
            ExprKind::Call(..) => true,
            ExprKind::Binary(op, l, r) => {
                (matches!(op, BinOp::Div | BinOp::Rem) && t.scalar(l.ty).is_int()) || expr(l, t) || expr(r, t)
            }
            ExprKind::OpAssign(op, place, v) => {
                let int = t.scalar(v.ty).is_int();
                (matches!(op, BinOp::Div | BinOp::Rem) && int) || matches!(place, Place::Index(..)) || expr(v, t)
            }
            ExprKind::Index(..) => true,
            ExprKind::Unary(_, x) | ExprKind::Cast(x, _) | ExprKind::Paren(x) => expr(x, t),
            ExprKind::Method(_, r, a) => expr(r, t) || a.iter().any(|x| expr(x, t)),
            ExprKind::Builtin(_, a) | ExprKind::Tuple(a) => a.iter().any(|x| expr(x, t)),
            ExprKind::If(c, b, o) => expr(c, t) || block(b, t) || o.as_ref().is_some_and(|o| expr(o, t)),
            ExprKind::Block(b) | ExprKind::Loop(b, _) => block(b, t),
            ExprKind::While(c, b) => expr(c, t) || block(b, t),
            ExprKind::For { start, end, body, .. } => expr(start, t) || expr(end, t) || block(body, t),
            ExprKind::Assign(p, v) => place_fallible(p, t) || expr(v, t),
            ExprKind::Return(Some(v)) => expr(v, t),
            _ => false,
        }
    }
    fn place_fallible(p: &Place, _: &Types) -> bool {
        matches!(p, Place::Index(..))
    }
    fn block(b: &Block, t: &Types) -> bool {
        b.stmts.iter().any(|s| match s {
            Stmt::Let { init, .. } => init.as_ref().is_some_and(|i| expr(i, t)),
            Stmt::Expr(e) => expr(e, t),
        }) || b.tail.as_ref().is_some_and(|x| expr(x, t))
    }
    block(&k.body, t)
}

fn scalar_tokens(s: Scalar, span: Span) -> TokenStream {
    let ident = Ident::new(s.rust(), span);
    quote!(#ident)
}

impl RustGen<'_> {
    fn ty(&self, v: TyVar) -> Scalar {
        self.t.scalar(v)
    }

    fn local(&self, id: LocalId) -> &Ident {
        &self.k.locals[id].name
    }

    fn ok(&self, value: TokenStream, span: Span) -> TokenStream {
        match self.ctx {
            Ctx::Function { fallible: false } => value,
            _ => quote_spanned!(span=> ::core::result::Result::Ok(#value)),
        }
    }

    pub fn expr(&self, e: &Expr) -> TokenStream {
        let span = e.span;
        let rt = &self.rt;
        let math = &self.math;
        match &e.kind {
            ExprKind::Int(lit) => {
                let s = self.ty(e.ty);
                if s.is_float() {
                    let l = syn::LitFloat::new(&format!("{}.0{}", lit.base10_digits(), s.rust()), lit.span());
                    quote!(#l)
                } else {
                    let l = syn::LitInt::new(&format!("{}{}", lit.base10_digits(), s.rust()), lit.span());
                    quote!(#l)
                }
            }
            ExprKind::Float(lit) => {
                let s = self.ty(e.ty);
                let mut digits = lit.base10_digits().to_string();
                if digits.ends_with('.') {
                    digits.push('0');
                }
                let l = syn::LitFloat::new(&format!("{digits}{}", s.rust()), lit.span());
                quote!(#l)
            }
            ExprKind::Bool(b) => quote_spanned!(span=> #b),
            ExprKind::Const(c) => {
                let path: syn::Path = syn::parse_str(&c.rust).unwrap_or_else(|_| syn::parse_quote!(::core::f32::NAN));
                let path = super::expand::respan(quote!(#path), span);
                quote!(#path)
            }
            ExprKind::Local(id) => {
                let name = self.local(*id);
                quote!(#name)
            }
            ExprKind::Unary(op, x) => {
                let s = self.ty(x.ty);
                let inner = self.expr(x);
                match op {
                    UnOp::Neg if s.is_float() => quote_spanned!(span=> (-(#inner))),
                    UnOp::Neg => {
                        if let ExprKind::Int(_) = x.kind {
                            quote_spanned!(span=> (-#inner))
                        } else {
                            quote_spanned!(span=> (#inner).wrapping_neg())
                        }
                    }
                    UnOp::Not => quote_spanned!(span=> (!(#inner))),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, span),
            ExprKind::Cast(x, target) => {
                let inner = self.expr(x);
                let t = scalar_tokens(*target, span);
                if self.ty(x.ty) == *target {
                    quote_spanned!(span=> (#inner))
                } else {
                    quote_spanned!(span=> ((#inner) as #t))
                }
            }
            ExprKind::Method(m, recv, args) => {
                let s = self.ty(recv.ty);
                let r = self.expr(recv);
                let a: Vec<TokenStream> = args.iter().map(|x| self.expr(x)).collect();
                let suffix = s.rust();
                let f = |name: &str| format_ident!("{}_{}", name, suffix, span = span);
                match m {
                    Method::Sqrt => quote_spanned!(span=> (#r).sqrt()),
                    Method::Floor => quote_spanned!(span=> (#r).floor()),
                    Method::Ceil => quote_spanned!(span=> (#r).ceil()),
                    Method::Trunc => quote_spanned!(span=> (#r).trunc()),
                    Method::Round => quote_spanned!(span=> (#r).round()),
                    Method::MulAdd => quote_spanned!(span=> (#r).mul_add(#(#a),*)),
                    Method::Exp | Method::ExpM1 | Method::Ln | Method::Sin | Method::Cos | Method::Tanh => {
                        let name = match m {
                            Method::Exp => "exp",
                            Method::ExpM1 => "expm1",
                            Method::Ln => "log",
                            Method::Sin => "sin",
                            Method::Cos => "cos",
                            _ => "tanh",
                        };
                        let func = f(name);
                        quote_spanned!(span=> #math::#func(#r))
                    }
                    Method::Tan | Method::Recip | Method::Signum | Method::Powf | Method::Powi => {
                        let name = match m {
                            Method::Tan => "tan",
                            Method::Recip => "recip",
                            Method::Signum => "signum",
                            Method::Powf => "pow",
                            _ => "powi",
                        };
                        let func = f(name);
                        quote_spanned!(span=> #rt::#func(#r #(, #a)*))
                    }
                    Method::Abs if s.is_float() => quote_spanned!(span=> (#r).abs()),
                    Method::Abs => quote_spanned!(span=> (#r).wrapping_abs()),
                    Method::Min | Method::Max => {
                        let name = if *m == Method::Min { "min" } else { "max" };
                        if s.is_float() {
                            let func = f(name);
                            quote_spanned!(span=> #rt::#func(#r #(, #a)*))
                        } else {
                            let func = format_ident!("{}", name, span = span);
                            quote_spanned!(span=> ::core::cmp::Ord::#func(#r #(, #a)*))
                        }
                    }
                    Method::Len => quote_spanned!(span=> 0usize),
                }
            }
            ExprKind::Builtin(b, args) => {
                let (gid, tid, blk) = (thread_ident("__gid"), thread_ident("__tid"), thread_ident("__blk"));
                match b {
                    Builtin::GlobalIndex => quote_spanned!(span=> #gid),
                    Builtin::ThreadIndex => quote_spanned!(span=> #tid),
                    Builtin::BlockIndex => quote_spanned!(span=> #blk.block()),
                    Builtin::BlockDim => quote_spanned!(span=> #blk.block_dim()),
                    Builtin::GridDim => quote_spanned!(span=> #blk.grid_dim()),
                    Builtin::Erf => {
                        let a = args.first().map(|x| (self.expr(x), self.ty(x.ty)));
                        match a {
                            Some((x, s)) => {
                                let func = format_ident!("erf_{}", s.rust(), span = span);
                                quote_spanned!(span=> #math::#func(#x))
                            }
                            None => quote!(0.0f32),
                        }
                    }
                }
            }
            ExprKind::Call(name, args) => {
                let a: Vec<TokenStream> = args.iter().map(|x| self.expr(x)).collect();
                let cpu = Ident::new("__streamdsl_cpu", name.span());
                quote_spanned!(span=> #name::#cpu(#(#a),*)?)
            }
            ExprKind::Index(id, index) => {
                let name = self.local(*id);
                let i = self.expr(index);
                let mutable = self.k.locals[*id].slice.is_some_and(|(_, m)| m);
                if mutable {
                    quote_spanned!(span=> #name.load(#i)?)
                } else {
                    quote_spanned!(span=> #name.get(#i)?)
                }
            }
            ExprKind::Len(id) => {
                let name = self.local(*id);
                quote_spanned!(span=> #name.len())
            }
            ExprKind::Paren(x) => {
                let inner = self.expr(x);
                quote_spanned!(span=> (#inner))
            }
            ExprKind::If(c, then, other) => {
                let c = self.expr(c);
                let then = self.block(then);
                match other {
                    Some(o) => {
                        let o = match &o.kind {
                            ExprKind::Block(b) => self.block(b),
                            _ => self.expr(o),
                        };
                        quote_spanned!(span=> if #c #then else #o)
                    }
                    None => quote_spanned!(span=> if #c #then),
                }
            }
            ExprKind::Block(b) => self.block(b),
            ExprKind::Tuple(items) => {
                let items: Vec<TokenStream> = items.iter().map(|x| self.expr(x)).collect();
                quote_spanned!(span=> (#(#items),*))
            }
            ExprKind::Assign(place, value) => {
                let v = self.expr(value);
                match place {
                    Place::Local(id) => {
                        let name = self.local(*id);
                        quote_spanned!(span=> #name = #v)
                    }
                    Place::Index(id, index) => {
                        let name = self.local(*id);
                        let i = self.expr(index);
                        let value = Ident::new("__value", Span::mixed_site());
                        quote_spanned!(span=> { let #value = #v; #name.store(#i, #value)?; })
                    }
                }
            }
            ExprKind::OpAssign(op, place, value) => self.op_assign(*op, place, value, span),
            ExprKind::For { var, start, end, inclusive, body, .. } => {
                let v = self.local(*var);
                let (a, b) = (self.expr(start), self.expr(end));
                let body = self.block(body);
                if *inclusive {
                    quote_spanned!(span=> for #v in (#a)..=(#b) #body)
                } else {
                    quote_spanned!(span=> for #v in (#a)..(#b) #body)
                }
            }
            ExprKind::While(c, body) => {
                let c = self.expr(c);
                let body = self.block(body);
                quote_spanned!(span=> while #c #body)
            }
            ExprKind::Loop(body, _) => {
                let body = self.block(body);
                quote_spanned!(span=> loop #body)
            }
            ExprKind::Break => quote_spanned!(span=> break),
            ExprKind::Continue => quote_spanned!(span=> continue),
            ExprKind::Return(value) => match (self.ctx, value) {
                (Ctx::Thread, _) | (_, None) => quote_spanned!(span=> return ::core::result::Result::Ok(())),
                (_, Some(v)) => {
                    let v = self.expr(v);
                    let v = self.ok(v, span);
                    quote_spanned!(span=> return #v)
                }
            },
        }
    }

    fn binary(&self, op: BinOp, l: &Expr, r: &Expr, span: Span) -> TokenStream {
        let s = self.ty(l.ty);
        let (a, b) = (self.expr(l), self.expr(r));
        let rt = &self.rt;
        if op.is_shift() {
            let f = if op == BinOp::Shl { quote!(wrapping_shl) } else { quote!(wrapping_shr) };
            return quote_spanned!(span=> (#a).#f((#b) as u32));
        }
        if s.is_int() {
            match op {
                BinOp::Add => return quote_spanned!(span=> (#a).wrapping_add(#b)),
                BinOp::Sub => return quote_spanned!(span=> (#a).wrapping_sub(#b)),
                BinOp::Mul => return quote_spanned!(span=> (#a).wrapping_mul(#b)),
                BinOp::Div => return quote_spanned!(span=> #rt::div(#a, #b)?),
                BinOp::Rem => return quote_spanned!(span=> #rt::rem(#a, #b)?),
                _ => {}
            }
        }
        let o: TokenStream = match op {
            BinOp::Add => quote_spanned!(span=> +),
            BinOp::Sub => quote_spanned!(span=> -),
            BinOp::Mul => quote_spanned!(span=> *),
            BinOp::Div => quote_spanned!(span=> /),
            BinOp::Rem => quote_spanned!(span=> %),
            BinOp::BitAnd => quote_spanned!(span=> &),
            BinOp::BitOr => quote_spanned!(span=> |),
            BinOp::BitXor => quote_spanned!(span=> ^),
            BinOp::Eq => quote_spanned!(span=> ==),
            BinOp::Ne => quote_spanned!(span=> !=),
            BinOp::Lt => quote_spanned!(span=> <),
            BinOp::Le => quote_spanned!(span=> <=),
            BinOp::Gt => quote_spanned!(span=> >),
            BinOp::Ge => quote_spanned!(span=> >=),
            BinOp::And => quote_spanned!(span=> &&),
            BinOp::Or => quote_spanned!(span=> ||),
            BinOp::Shl | BinOp::Shr => quote!(),
        };
        quote_spanned!(span=> ((#a) #o (#b)))
    }

    fn op_assign(&self, op: BinOp, place: &Place, value: &Expr, span: Span) -> TokenStream {
        let v = self.expr(value);
        let rt = &self.rt;
        let (current, store): (TokenStream, Box<dyn Fn(TokenStream) -> TokenStream>) = match place {
            Place::Local(id) => {
                let name = self.local(*id).clone();
                let n2 = name.clone();
                (quote!(#name), Box::new(move |x| quote_spanned!(span=> #n2 = #x)))
            }
            Place::Index(id, index) => {
                let name = self.local(*id).clone();
                let i = self.expr(index);
                let at = Ident::new("__at", Span::mixed_site());
                let value = Ident::new("__value", Span::mixed_site());
                let n2 = name.clone();
                let at2 = at.clone();
                let head = quote_spanned!(span=> let #value = #v; let #at = #i;);
                return {
                    let s = self.k.locals[*id].slice.map(|(s, _)| s).unwrap_or(Scalar::F32);
                    let combined = self.combine(op, s, quote!(#n2.load(#at2)?), quote!(#value), span);
                    quote_spanned!(span=> { #head #name.store(#at, #combined)?; })
                };
            }
        };
        let s = match place {
            Place::Local(id) => self.ty(self.k.locals[*id].ty),
            Place::Index(..) => Scalar::F32,
        };
        if !(s.is_int() || op.is_shift()) {
            let o: TokenStream = match op {
                BinOp::Add => quote_spanned!(span=> +=),
                BinOp::Sub => quote_spanned!(span=> -=),
                BinOp::Mul => quote_spanned!(span=> *=),
                BinOp::Div => quote_spanned!(span=> /=),
                BinOp::Rem => quote_spanned!(span=> %=),
                BinOp::BitAnd => quote_spanned!(span=> &=),
                BinOp::BitOr => quote_spanned!(span=> |=),
                BinOp::BitXor => quote_spanned!(span=> ^=),
                _ => quote!(=),
            };
            return quote_spanned!(span=> #current #o #v);
        }
        let _ = rt;
        let combined = self.combine(op, s, current, v, span);
        store(combined)
    }

    /// `a op b` for a compound assignment (with Rust-on-GPU semantics for integers).
    fn combine(&self, op: BinOp, s: Scalar, a: TokenStream, b: TokenStream, span: Span) -> TokenStream {
        let rt = &self.rt;
        if op.is_shift() {
            let f = if op == BinOp::Shl { quote!(wrapping_shl) } else { quote!(wrapping_shr) };
            return quote_spanned!(span=> (#a).#f((#b) as u32));
        }
        if s.is_int() {
            return match op {
                BinOp::Add => quote_spanned!(span=> (#a).wrapping_add(#b)),
                BinOp::Sub => quote_spanned!(span=> (#a).wrapping_sub(#b)),
                BinOp::Mul => quote_spanned!(span=> (#a).wrapping_mul(#b)),
                BinOp::Div => quote_spanned!(span=> #rt::div(#a, #b)?),
                BinOp::Rem => quote_spanned!(span=> #rt::rem(#a, #b)?),
                BinOp::BitAnd => quote_spanned!(span=> (#a) & (#b)),
                BinOp::BitOr => quote_spanned!(span=> (#a) | (#b)),
                _ => quote_spanned!(span=> (#a) ^ (#b)),
            };
        }
        match op {
            BinOp::Add => quote_spanned!(span=> (#a) + (#b)),
            BinOp::Sub => quote_spanned!(span=> (#a) - (#b)),
            BinOp::Mul => quote_spanned!(span=> (#a) * (#b)),
            BinOp::Div => quote_spanned!(span=> (#a) / (#b)),
            BinOp::Rem => quote_spanned!(span=> (#a) % (#b)),
            BinOp::BitAnd => quote_spanned!(span=> (#a) & (#b)),
            BinOp::BitOr => quote_spanned!(span=> (#a) | (#b)),
            _ => quote_spanned!(span=> (#a) ^ (#b)),
        }
    }

    fn stmt(&self, s: &Stmt) -> TokenStream {
        match s {
            Stmt::Let { local, init, span, .. } => {
                let l = &self.k.locals[*local];
                let name = &l.name;
                let m = l.mutable.then(|| quote_spanned!(*span=> mut));
                let ty = scalar_tokens(self.ty(l.ty), name.span());
                match init {
                    Some(init) => {
                        let v = self.expr(init);
                        quote_spanned!(*span=> let #m #name: #ty = #v;)
                    }
                    None => quote_spanned!(*span=> let #m #name: #ty;),
                }
            }
            Stmt::Expr(e) => {
                let v = self.expr(e);
                quote_spanned!(e.span=> #v;)
            }
        }
    }

    pub fn block(&self, b: &Block) -> TokenStream {
        let stmts: Vec<TokenStream> = b.stmts.iter().map(|s| self.stmt(s)).collect();
        let tail = b.tail.as_ref().map(|t| self.expr(t));
        quote_spanned!(b.span=> { #(#stmts)* #tail })
    }

    /// The body of a function returning the kernel's value (`Ok(..)` when fallible).
    pub fn function_body(&self) -> TokenStream {
        let body = self.block(&self.k.body);
        match self.ctx {
            Ctx::Function { fallible: true } => quote!({ ::core::result::Result::Ok(#body) }),
            Ctx::Function { fallible: false } => body,
            Ctx::Thread => quote!({ #body; ::core::result::Result::Ok(()) }),
        }
    }
}

/// The identifiers a grid thread's body sees its indices by (hygienic: user code cannot name them).
pub fn thread_ident(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}
