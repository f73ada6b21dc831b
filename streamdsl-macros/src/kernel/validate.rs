//! Type inference over the model, as Rust does it for the subset: every expression gets one type; the operands
//! of an operator have the same type (kernels never convert implicitly); integer literals default to `i32` and
//! float literals to `f64` only when nothing else decides them. The CUDA C needs every type (a float literal
//! is `0.5f` or `0.5`, a division is a float or an integer one), and the Rust form is written with the same
//! types, so rustc checks what the CUDA C was generated from.
//!
//! The result of a `#[kernel(device)]` function is not visible here (it is another item): it takes the type its
//! context gives it, and where nothing does, the checker asks for an annotation rather than guess.

use proc_macro2::Span;
use syn::Error;

use super::model::*;
use super::parse::error_at;

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// The type of `return`, `break`, `continue`: fits anywhere.
    Never,
    /// Unknown (a device function's result).
    Any,
    /// A number.
    Num,
    /// An integer or `bool` (`!`, `&`, `|`, `^`).
    Bits,
    /// An integer (an unsuffixed integer literal).
    Int,
    /// A float (an unsuffixed float literal).
    Float,
    Known(Ty),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Never | Kind::Any => "a value".into(),
            Kind::Num => "a number".into(),
            Kind::Bits => "an integer or `bool`".into(),
            Kind::Int => "an integer".into(),
            Kind::Float => "a float".into(),
            Kind::Known(t) => format!("`{t}`"),
        }
    }

    fn admits(&self, s: Scalar) -> bool {
        match self {
            Kind::Never | Kind::Any => true,
            Kind::Num => s != Scalar::Bool,
            Kind::Bits => !s.is_float(),
            Kind::Int => s.is_int(),
            Kind::Float => s.is_float(),
            Kind::Known(Ty::Scalar(t)) => *t == s,
            Kind::Known(_) => false,
        }
    }
}

fn meet(a: &Kind, b: &Kind) -> Option<Kind> {
    use Kind::*;
    Some(match (a, b) {
        (Never, x) | (x, Never) => x.clone(),
        (Any, x) | (x, Any) => x.clone(),
        (Known(x), Known(y)) if x == y => Known(x.clone()),
        (Known(Ty::Scalar(s)), k) | (k, Known(Ty::Scalar(s))) if k.admits(*s) && !matches!(k, Known(_)) => {
            Known(Ty::Scalar(*s))
        }
        (Known(_), _) | (_, Known(_)) => return None,
        (Num, x) | (x, Num) => x.clone(),
        (Bits, Bits) => Bits,
        (Bits, Int) | (Int, Bits) => Int,
        (Int, Int) => Int,
        (Float, Float) => Float,
        _ => return None,
    })
}

/// The solved types of a kernel.
pub struct Types {
    parent: Vec<usize>,
    kind: Vec<Kind>,
}

impl Types {
    fn find(&self, mut v: usize) -> usize {
        while self.parent[v] != v {
            v = self.parent[v];
        }
        v
    }

    /// The type of `v` after solving (`()` for what never produces a value).
    pub fn of(&self, v: TyVar) -> Ty {
        match &self.kind[self.find(v)] {
            Kind::Known(t) => t.clone(),
            Kind::Int | Kind::Bits | Kind::Num => Ty::Scalar(Scalar::I32),
            Kind::Float => Ty::Scalar(Scalar::F64),
            Kind::Never | Kind::Any => Ty::Unit,
        }
    }

    /// The scalar type of `v` (`i32` where it has none, which the checker has already reported).
    pub fn scalar(&self, v: TyVar) -> Scalar {
        match self.of(v) {
            Ty::Scalar(s) => s,
            _ => Scalar::I32,
        }
    }

    fn never(&self, v: TyVar) -> bool {
        self.kind[self.find(v)] == Kind::Never
    }
}

struct Checker<'k> {
    k: &'k Kernel,
    t: Types,
    errors: Vec<Error>,
    /// Arguments of device calls, to report literals whose type only a default decided.
    call_args: Vec<(TyVar, Span, Span, String)>,
    /// Expressions whose type must be known in the end (locals, operands, …).
    needed: Vec<(TyVar, Span, Span)>,
    /// Post-checks on solved types.
    post: Vec<Post>,
}

enum Post {
    CastFromBool(TyVar, Span, Span, Scalar),
    NegUnsigned(TyVar, Span, Span),
    AbsUnsigned(TyVar, Span, Span),
}

/// Solves the kernel's types, or reports every type error.
pub fn check(k: &Kernel) -> Result<Types, Vec<Error>> {
    let mut c = Checker {
        k,
        t: Types { parent: (0..k.vars).collect(), kind: vec![Kind::Any; k.vars] },
        errors: Vec::new(),
        call_args: Vec::new(),
        needed: Vec::new(),
        post: Vec::new(),
    };
    for p in &k.params {
        if let ParamTy::Scalar(s) = p.ty {
            c.set(k.locals[p.local].ty, Kind::Known(Ty::Scalar(s)));
        }
    }
    let ret = match &k.ret {
        RetTy::Unit => Kind::Known(Ty::Unit),
        RetTy::Scalar(s) => Kind::Known(Ty::Scalar(*s)),
        RetTy::Tuple(items) => Kind::Known(Ty::Tuple(items.clone())),
    };
    if let RetTy::Tuple(_) = k.ret {
        // The tail is a returned value: tuples are allowed there (and in `if`/`else` branches there).
        c.stmts(&k.body, &ret);
        match &k.body.tail {
            Some(tail) => c.returned(tail, &ret),
            None => {
                let diverges = matches!(k.body.stmts.last(), Some(Stmt::Expr(e)) if c.t.never(e.ty));
                if !diverges {
                    let msg = format!("the kernel must return {}: end the body with the value", ret.describe());
                    c.errors.push(error_at(k.body.span, k.body.span, msg));
                }
            }
        }
        c.finish();
        return if c.errors.is_empty() { Ok(c.t) } else { Err(c.errors) };
    }
    c.block(&k.body, &ret);
    if !c.t.never(k.body.ty) {
        match (&k.body.tail, &k.ret) {
            (Some(tail), _) => c.expect(tail.ty, &ret, tail.span, tail.end),
            (None, RetTy::Unit) => {}
            (None, _) => {
                let msg = format!("the kernel must return {}: end the body with the value", ret.describe());
                c.errors.push(error_at(k.body.span, k.body.span, msg));
            }
        }
    }
    c.finish();
    if c.errors.is_empty() {
        Ok(c.t)
    } else {
        Err(c.errors)
    }
}

impl Checker<'_> {
    fn set(&mut self, v: TyVar, kind: Kind) {
        let r = self.t.find(v);
        self.t.kind[r] = kind;
    }

    fn kind(&self, v: TyVar) -> &Kind {
        &self.t.kind[self.t.find(v)]
    }

    fn mismatch(&mut self, expected: &Kind, found: &Kind, span: Span, end: Span) {
        let mut msg = format!("mismatched types: expected {}, found {}", expected.describe(), found.describe());
        let numbers = |k: &Kind| {
            matches!(k, Kind::Int | Kind::Float | Kind::Num)
                || matches!(k, Kind::Known(Ty::Scalar(s)) if *s != Scalar::Bool)
        };
        if numbers(expected) && numbers(found) {
            if matches!(found, Kind::Int)
                && matches!(expected, Kind::Float | Kind::Known(Ty::Scalar(Scalar::F32 | Scalar::F64)))
            {
                msg.push_str("; write the literal as a float (`2.0`)");
            } else {
                msg.push_str("; kernels never convert between number types implicitly: convert with `as` (`x as f32`)");
            }
        }
        self.errors.push(error_at(span, end, msg));
    }

    /// `v` has kind `kind` (reported at `span..end` otherwise).
    fn expect(&mut self, v: TyVar, kind: &Kind, span: Span, end: Span) {
        let r = self.t.find(v);
        let current = self.t.kind[r].clone();
        match meet(&current, kind) {
            Some(k) => self.t.kind[r] = k,
            None => self.mismatch(kind, &current, span, end),
        }
    }

    /// `a` and `b` have one type; `b` is reported.
    fn unify(&mut self, a: TyVar, b: TyVar, span: Span, end: Span) {
        let (ra, rb) = (self.t.find(a), self.t.find(b));
        if ra == rb {
            return;
        }
        let (ka, kb) = (self.t.kind[ra].clone(), self.t.kind[rb].clone());
        match meet(&ka, &kb) {
            Some(k) => {
                self.t.parent[rb] = ra;
                self.t.kind[ra] = k;
            }
            None => self.mismatch(&ka, &kb, span, end),
        }
    }

    fn block(&mut self, b: &Block, ret: &Kind) {
        self.stmts(b, ret);
        match &b.tail {
            Some(tail) => {
                self.expr(tail, ret);
                self.unify(b.ty, tail.ty, tail.span, tail.end);
            }
            None => {
                let diverges = matches!(b.stmts.last(), Some(Stmt::Expr(e)) if self.t.never(e.ty));
                self.set(b.ty, if diverges { Kind::Never } else { Kind::Known(Ty::Unit) });
            }
        }
    }

    fn stmts(&mut self, b: &Block, ret: &Kind) {
        for s in &b.stmts {
            match s {
                Stmt::Let { local, annot, init, .. } => {
                    let l = &self.k.locals[*local];
                    let (lv, name_span) = (l.ty, l.name.span());
                    if let Some(a) = annot {
                        self.set(lv, Kind::Known(Ty::Scalar(*a)));
                    }
                    if let Some(init) = init {
                        self.expr(init, ret);
                        self.unify(lv, init.ty, init.span, init.end);
                    }
                    self.needed.push((lv, name_span, name_span));
                }
                Stmt::Expr(e) => self.expr(e, ret),
            }
        }
    }

    /// A value returned from the kernel (`return x` or the body's tail); with several outputs, a tuple, or an
    /// `if`/`else` or block whose values are tuples.
    fn returned(&mut self, e: &Expr, ret: &Kind) {
        let Kind::Known(Ty::Tuple(types)) = ret else {
            self.expr(e, ret);
            self.expect(e.ty, ret, e.span, e.end);
            return;
        };
        match &e.kind {
            ExprKind::Tuple(items) => {
                for item in items {
                    self.expr(item, ret);
                }
                if items.len() != types.len() {
                    let msg = format!("the kernel returns {} values, not {}", types.len(), items.len());
                    self.errors.push(error_at(e.span, e.end, msg));
                    return;
                }
                for (item, ty) in items.iter().zip(types) {
                    self.expect(item.ty, &Kind::Known(Ty::Scalar(*ty)), item.span, item.end);
                }
                self.set(e.ty, Kind::Never);
            }
            ExprKind::Paren(x) => self.returned(x, ret),
            ExprKind::If(cond, then, other) => {
                self.expr(cond, ret);
                self.expect(cond.ty, &Kind::Known(Ty::Scalar(Scalar::Bool)), cond.span, cond.end);
                self.returned_block(then, ret);
                match other {
                    Some(o) => match &o.kind {
                        ExprKind::Block(b) => self.returned_block(b, ret),
                        _ => self.returned(o, ret),
                    },
                    None => {
                        let msg = "this `if` needs an `else`: the kernel returns a value on every path";
                        self.errors.push(error_at(e.span, e.end, msg));
                    }
                }
                self.set(e.ty, Kind::Never);
            }
            ExprKind::Block(b) => {
                self.returned_block(b, ret);
                self.set(e.ty, Kind::Never);
            }
            _ => {
                self.expr(e, ret);
                if !self.t.never(e.ty) {
                    let msg = format!("expected {}: return a tuple such as `(a, b)`", ret.describe());
                    self.errors.push(error_at(e.span, e.end, msg));
                }
            }
        }
    }

    fn returned_block(&mut self, b: &Block, ret: &Kind) {
        self.stmts(b, ret);
        if let Some(t) = &b.tail {
            self.returned(t, ret);
        }
        self.set(b.ty, Kind::Never);
    }

    fn expr(&mut self, e: &Expr, ret: &Kind) {
        let (span, end) = (e.span, e.end);
        let scalar = |s: Scalar| Kind::Known(Ty::Scalar(s));
        match &e.kind {
            ExprKind::Int(lit) => {
                let k = match Scalar::from_name(lit.suffix()) {
                    Some(s) => scalar(s),
                    None => Kind::Int,
                };
                self.set(e.ty, k);
            }
            ExprKind::Float(lit) => {
                let k = match Scalar::from_name(lit.suffix()) {
                    Some(s) => scalar(s),
                    None => Kind::Float,
                };
                self.set(e.ty, k);
            }
            ExprKind::Bool(_) => self.set(e.ty, scalar(Scalar::Bool)),
            ExprKind::Const(c) => self.set(e.ty, scalar(c.ty)),
            ExprKind::Local(id) => {
                let lv = self.k.locals[*id].ty;
                self.unify(lv, e.ty, span, end);
            }
            ExprKind::Unary(op, x) => {
                self.expr(x, ret);
                let k = if *op == UnOp::Neg { Kind::Num } else { Kind::Bits };
                self.expect(x.ty, &k, x.span, x.end);
                self.unify(e.ty, x.ty, span, end);
                if *op == UnOp::Neg {
                    self.post.push(Post::NegUnsigned(x.ty, span, end));
                }
                self.needed.push((e.ty, span, end));
            }
            ExprKind::Binary(op, l, r) => {
                self.expr(l, ret);
                self.expr(r, ret);
                if op.is_shift() {
                    self.expect(l.ty, &Kind::Int, l.span, l.end);
                    self.expect(r.ty, &Kind::Int, r.span, r.end);
                    self.unify(e.ty, l.ty, span, end);
                } else if op.is_logic() {
                    self.expect(l.ty, &scalar(Scalar::Bool), l.span, l.end);
                    self.expect(r.ty, &scalar(Scalar::Bool), r.span, r.end);
                    self.set(e.ty, scalar(Scalar::Bool));
                } else {
                    self.unify(l.ty, r.ty, r.span, r.end);
                    if op.is_compare() {
                        self.set(e.ty, scalar(Scalar::Bool));
                    } else {
                        let k = if op.is_bits() { Kind::Bits } else { Kind::Num };
                        self.expect(l.ty, &k, l.span, r.end);
                        self.unify(e.ty, l.ty, span, end);
                    }
                }
                self.needed.push((l.ty, l.span, l.end));
                self.needed.push((r.ty, r.span, r.end));
            }
            ExprKind::Cast(x, target) => {
                self.expr(x, ret);
                self.expect(x.ty, &Kind::Any, x.span, x.end);
                self.set(e.ty, scalar(*target));
                self.post.push(Post::CastFromBool(x.ty, x.span, x.end, *target));
                self.needed.push((x.ty, x.span, x.end));
            }
            ExprKind::Method(m, recv, args) => {
                self.expr(recv, ret);
                for a in args {
                    self.expr(a, ret);
                }
                let k = if m.float_only() { Kind::Float } else { Kind::Num };
                self.expect(recv.ty, &k, recv.span, recv.end);
                match m {
                    Method::Powi => {
                        if let Some(a) = args.first() {
                            self.expect(a.ty, &scalar(Scalar::I32), a.span, a.end);
                        }
                    }
                    _ => {
                        for a in args {
                            self.unify(recv.ty, a.ty, a.span, a.end);
                        }
                    }
                }
                if *m == Method::Abs {
                    self.post.push(Post::AbsUnsigned(recv.ty, span, end));
                }
                self.unify(e.ty, recv.ty, span, end);
                self.needed.push((recv.ty, recv.span, recv.end));
            }
            ExprKind::Builtin(b, args) => {
                for a in args {
                    self.expr(a, ret);
                }
                match b {
                    Builtin::Erf => {
                        if let Some(a) = args.first() {
                            self.expect(a.ty, &Kind::Float, a.span, a.end);
                            self.unify(e.ty, a.ty, span, end);
                        }
                    }
                    _ => self.set(e.ty, scalar(Scalar::U32)),
                }
                self.needed.push((e.ty, span, end));
            }
            ExprKind::Call(name, args) => {
                for a in args {
                    self.expr(a, ret);
                    self.expect(a.ty, &Kind::Any, a.span, a.end);
                    self.call_args.push((a.ty, a.span, a.end, name.to_string()));
                }
                // The result's type comes from the context.
                self.needed.push((e.ty, span, end));
            }
            ExprKind::Index(id, index) => {
                self.expr(index, ret);
                self.expect(index.ty, &scalar(Scalar::Usize), index.span, index.end);
                let elem = self.k.locals[*id].slice.map(|(s, _)| s).unwrap_or(Scalar::F32);
                self.set(e.ty, scalar(elem));
            }
            ExprKind::Len(_) => self.set(e.ty, scalar(Scalar::Usize)),
            ExprKind::Paren(x) => {
                self.expr(x, ret);
                self.unify(e.ty, x.ty, span, end);
            }
            ExprKind::If(cond, then, other) => {
                self.expr(cond, ret);
                self.expect(cond.ty, &scalar(Scalar::Bool), cond.span, cond.end);
                self.block(then, ret);
                match other {
                    Some(other) => {
                        self.expr(other, ret);
                        self.unify(e.ty, then.ty, span, end);
                        self.unify(e.ty, other.ty, other.span, other.end);
                    }
                    None => {
                        let tail = then.tail.as_ref().map(|t| (t.span, t.end)).unwrap_or((then.span, then.span));
                        self.expect(then.ty, &Kind::Known(Ty::Unit), tail.0, tail.1);
                        self.set(e.ty, Kind::Known(Ty::Unit));
                    }
                }
            }
            ExprKind::Block(b) => {
                self.block(b, ret);
                self.unify(e.ty, b.ty, span, end);
            }
            ExprKind::Tuple(items) => {
                for i in items {
                    self.expr(i, ret);
                }
                self.errors.push(error_at(
                    span,
                    end,
                    "a tuple is only supported as the returned value of an elementwise kernel with several outputs",
                ));
            }
            ExprKind::Assign(place, value) => {
                self.expr(value, ret);
                let pv = self.place(place, ret);
                self.unify(pv, value.ty, value.span, value.end);
                self.set(e.ty, Kind::Known(Ty::Unit));
            }
            ExprKind::OpAssign(op, place, value) => {
                self.expr(value, ret);
                let pv = self.place(place, ret);
                if op.is_shift() {
                    self.expect(pv, &Kind::Int, span, end);
                    self.expect(value.ty, &Kind::Int, value.span, value.end);
                } else {
                    self.unify(pv, value.ty, value.span, value.end);
                    let k = if op.is_bits() { Kind::Bits } else { Kind::Num };
                    self.expect(pv, &k, span, end);
                }
                self.needed.push((value.ty, value.span, value.end));
                self.set(e.ty, Kind::Known(Ty::Unit));
            }
            ExprKind::For { var, start, end: stop, body, .. } => {
                self.expr(start, ret);
                self.expr(stop, ret);
                self.unify(start.ty, stop.ty, stop.span, stop.end);
                self.expect(start.ty, &Kind::Int, start.span, stop.end);
                let lv = self.k.locals[*var].ty;
                self.unify(lv, start.ty, start.span, start.end);
                self.needed.push((lv, start.span, stop.end));
                self.block(body, ret);
                self.expect_unit_body(body);
                self.set(e.ty, Kind::Known(Ty::Unit));
            }
            ExprKind::While(cond, body) => {
                self.expr(cond, ret);
                self.expect(cond.ty, &scalar(Scalar::Bool), cond.span, cond.end);
                self.block(body, ret);
                self.expect_unit_body(body);
                self.set(e.ty, Kind::Known(Ty::Unit));
            }
            ExprKind::Loop(body, diverges) => {
                self.block(body, ret);
                self.expect_unit_body(body);
                self.set(e.ty, if *diverges { Kind::Never } else { Kind::Known(Ty::Unit) });
            }
            ExprKind::Break | ExprKind::Continue => self.set(e.ty, Kind::Never),
            ExprKind::Return(value) => {
                match value {
                    Some(v) => self.returned(v, ret),
                    None => {
                        if *ret != Kind::Known(Ty::Unit) {
                            let msg = format!("this kernel returns {}: `return` needs a value", ret.describe());
                            self.errors.push(error_at(span, end, msg));
                        }
                    }
                }
                self.set(e.ty, Kind::Never);
            }
        }
    }

    fn expect_unit_body(&mut self, body: &Block) {
        if let Some(t) = &body.tail {
            self.expect(body.ty, &Kind::Known(Ty::Unit), t.span, t.end);
        }
    }

    fn place(&mut self, place: &Place, ret: &Kind) -> TyVar {
        match place {
            Place::Local(id) => self.k.locals[*id].ty,
            Place::Index(id, index) => {
                self.expr(index, ret);
                self.expect(index.ty, &Kind::Known(Ty::Scalar(Scalar::Usize)), index.span, index.end);
                // A fresh variable of the element's type.
                let elem = self.k.locals[*id].slice.map(|(s, _)| s).unwrap_or(Scalar::F32);
                index_var(self, elem)
            }
        }
    }

    fn finish(&mut self) {
        // Unknowns (a device function's result no context decides) are errors, reported once each.
        let mut reported = std::collections::HashSet::new();
        for (v, span, end) in std::mem::take(&mut self.needed) {
            let r = self.t.find(v);
            if self.t.kind[r] == Kind::Any && reported.insert(r) {
                self.errors.push(error_at(
                    span,
                    end,
                    "cannot infer the type of this value: the result of a `#[kernel(device)]` function is not visible \
                     to `#[kernel]`; annotate it (`let y: f32 = helper(x);`)",
                ));
            }
        }
        for (v, span, end, callee) in std::mem::take(&mut self.call_args) {
            let k = self.kind(v).clone();
            if matches!(k, Kind::Int | Kind::Float | Kind::Num | Kind::Bits) {
                self.errors.push(error_at(
                    span,
                    end,
                    format!(
                        "cannot infer the type of this literal passed to `{callee}`: its parameters are not visible to \
                         `#[kernel]`; give it a suffix (`1.0f32`, `2u32`)"
                    ),
                ));
            }
        }
        for p in std::mem::take(&mut self.post) {
            match p {
                Post::CastFromBool(v, span, end, target) if target.is_float() => {
                    if self.t.of(v) == Ty::Scalar(Scalar::Bool) {
                        let msg =
                            format!("a `bool` cannot be cast to `{}`: cast it to an integer first", target.rust());
                        self.errors.push(error_at(span, end, msg));
                    }
                }
                Post::NegUnsigned(v, span, end) => {
                    if let Ty::Scalar(s) = self.t.of(v) {
                        if s.is_int() && !s.is_signed_int() {
                            let msg = format!("cannot negate a `{}`: it is unsigned", s.rust());
                            self.errors.push(error_at(span, end, msg));
                        }
                    }
                }
                Post::AbsUnsigned(v, span, end) => {
                    if let Ty::Scalar(s) = self.t.of(v) {
                        if s.is_int() && !s.is_signed_int() {
                            let msg = format!("`abs` is for signed numbers; a `{}` is unsigned", s.rust());
                            self.errors.push(error_at(span, end, msg));
                        }
                    }
                }
                Post::CastFromBool(..) => {}
            }
        }
    }
}

fn index_var(c: &mut Checker<'_>, elem: Scalar) -> TyVar {
    c.t.parent.push(c.t.parent.len());
    c.t.kind.push(Kind::Known(Ty::Scalar(elem)));
    c.t.parent.len() - 1
}
