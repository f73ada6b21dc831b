//! The kernel model: the subset of Rust a kernel is written in, as a tree whose every node keeps its span and a
//! type variable (solved by `validate`). Both lowerings (`lower_cuda`, `lower_rust`) read only this model, so
//! the two backends cannot see different programs.

use proc_macro2::Span;
use syn::Ident;

/// Which kernel an item is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Form {
    /// `#[kernel]`: scalars in, scalars out, mapped over tensors.
    Elementwise,
    /// `#[kernel(grid)]`: the body runs once per global index, over slices.
    Grid,
    /// `#[kernel(device)]`: a helper callable from kernels.
    Device,
}

/// A scalar type of the subset.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Scalar {
    Bool,
    I32,
    U32,
    I64,
    U64,
    Usize,
    Isize,
    F32,
    F64,
}

impl Scalar {
    pub const ALL: [Scalar; 9] = [
        Scalar::Bool,
        Scalar::I32,
        Scalar::U32,
        Scalar::I64,
        Scalar::U64,
        Scalar::Usize,
        Scalar::Isize,
        Scalar::F32,
        Scalar::F64,
    ];

    /// The Rust name.
    pub fn rust(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::I32 => "i32",
            Scalar::U32 => "u32",
            Scalar::I64 => "i64",
            Scalar::U64 => "u64",
            Scalar::Usize => "usize",
            Scalar::Isize => "isize",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
        }
    }

    /// The CUDA C name (`kernel.cuh` typedefs the Rust names of the integers).
    pub fn c(self) -> &'static str {
        match self {
            Scalar::F32 => "float",
            Scalar::F64 => "double",
            other => other.rust(),
        }
    }

    pub fn from_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|s| s.rust() == name)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }

    pub fn is_int(self) -> bool {
        !self.is_float() && self != Scalar::Bool
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, Scalar::I32 | Scalar::I64 | Scalar::Isize)
    }
}

/// A parameter's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamTy {
    Scalar(Scalar),
    /// `&[elem]` or `&mut [elem]` (grid kernels).
    Slice {
        elem: Scalar,
        mutable: bool,
    },
}

/// What a kernel returns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RetTy {
    Unit,
    Scalar(Scalar),
    Tuple(Vec<Scalar>),
}

/// A type the checker knows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Ty {
    Scalar(Scalar),
    Unit,
    Tuple(Vec<Scalar>),
}

impl std::fmt::Display for Ty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ty::Scalar(s) => write!(f, "{}", s.rust()),
            Ty::Unit => write!(f, "()"),
            Ty::Tuple(items) => {
                let names: Vec<_> = items.iter().map(|s| s.rust()).collect();
                write!(f, "({})", names.join(", "))
            }
        }
    }
}

pub type TyVar = usize;
pub type LocalId = usize;

/// A parameter or a `let` (or `for`) binding.
pub struct Local {
    pub name: Ident,
    pub mutable: bool,
    pub ty: TyVar,
    /// `Some` for a slice parameter.
    pub slice: Option<(Scalar, bool)>,
    /// The name in the CUDA C (unique in the kernel; see `lower_cuda`).
    pub cname: String,
}

/// A built-in function of the subset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Builtin {
    GlobalIndex,
    ThreadIndex,
    BlockIndex,
    BlockDim,
    GridDim,
    Erf,
}

impl Builtin {
    pub const ALL: [(&'static str, Builtin); 6] = [
        ("global_index", Builtin::GlobalIndex),
        ("thread_index", Builtin::ThreadIndex),
        ("block_index", Builtin::BlockIndex),
        ("block_dim", Builtin::BlockDim),
        ("grid_dim", Builtin::GridDim),
        ("erf", Builtin::Erf),
    ];

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }

    pub fn arity(self) -> usize {
        match self {
            Builtin::Erf => 1,
            _ => 0,
        }
    }

    /// Whether it needs the grid (an index of the thread that runs the body).
    pub fn needs_grid(self) -> bool {
        self != Builtin::Erf
    }
}

/// A method of the subset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    // floats
    Sqrt,
    Exp,
    ExpM1,
    Ln,
    Sin,
    Cos,
    Tan,
    Tanh,
    Floor,
    Ceil,
    Trunc,
    Round,
    Recip,
    Signum,
    Powf,
    Powi,
    MulAdd,
    // numbers
    Abs,
    Min,
    Max,
    // slices
    Len,
}

impl Method {
    pub const FLOAT: [(&'static str, Method); 17] = [
        ("sqrt", Method::Sqrt),
        ("exp", Method::Exp),
        ("exp_m1", Method::ExpM1),
        ("ln", Method::Ln),
        ("sin", Method::Sin),
        ("cos", Method::Cos),
        ("tan", Method::Tan),
        ("tanh", Method::Tanh),
        ("floor", Method::Floor),
        ("ceil", Method::Ceil),
        ("trunc", Method::Trunc),
        ("round", Method::Round),
        ("recip", Method::Recip),
        ("signum", Method::Signum),
        ("powf", Method::Powf),
        ("powi", Method::Powi),
        ("mul_add", Method::MulAdd),
    ];
    pub const NUMBER: [(&'static str, Method); 3] = [("abs", Method::Abs), ("min", Method::Min), ("max", Method::Max)];

    pub fn from_name(name: &str) -> Option<Method> {
        Method::FLOAT
            .iter()
            .chain(&Method::NUMBER)
            .chain(&[("len", Method::Len)])
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }

    pub fn name(self) -> &'static str {
        Method::FLOAT
            .iter()
            .chain(&Method::NUMBER)
            .chain(&[("len", Method::Len)])
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("len")
    }

    /// Arguments besides the receiver.
    pub fn arity(self) -> usize {
        match self {
            Method::Powf | Method::Powi | Method::Min | Method::Max => 1,
            Method::MulAdd => 2,
            _ => 0,
        }
    }

    pub fn float_only(self) -> bool {
        !matches!(self, Method::Abs | Method::Min | Method::Max | Method::Len)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }

    pub fn is_bits(self) -> bool {
        matches!(self, BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor)
    }

    pub fn is_shift(self) -> bool {
        matches!(self, BinOp::Shl | BinOp::Shr)
    }

    pub fn is_compare(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
    }

    pub fn is_logic(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or)
    }
}

/// A named constant (`f32::MAX`, `std::f64::consts::PI`, `u32::MAX`).
#[derive(Clone, Debug)]
pub struct Constant {
    pub ty: Scalar,
    /// The Rust path, e.g. `::core::f32::consts::PI`.
    pub rust: String,
    /// The value's bits (floats: IEEE bits; integers: two's complement in 64 bits).
    pub bits: u64,
}

pub struct Expr {
    pub kind: ExprKind,
    /// The first and the last token, for diagnostics over the whole expression.
    pub span: Span,
    pub end: Span,
    pub ty: TyVar,
}

pub enum ExprKind {
    Int(syn::LitInt),
    Float(syn::LitFloat),
    Bool(bool),
    Const(Constant),
    Local(LocalId),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cast(Box<Expr>, Scalar),
    Method(Method, Box<Expr>, Vec<Expr>),
    Builtin(Builtin, Vec<Expr>),
    /// A `#[kernel(device)]` function.
    Call(Ident, Vec<Expr>),
    /// `slice[index]` of a slice parameter.
    Index(LocalId, Box<Expr>),
    /// `slice.len()`.
    Len(LocalId),
    Paren(Box<Expr>),
    If(Box<Expr>, Block, Option<Box<Expr>>),
    Block(Block),
    /// Only as the returned value of an elementwise kernel with several outputs.
    Tuple(Vec<Expr>),
    Assign(Place, Box<Expr>),
    OpAssign(BinOp, Place, Box<Expr>),
    For {
        var: LocalId,
        start: Box<Expr>,
        end: Box<Expr>,
        inclusive: bool,
        body: Block,
        id: usize,
    },
    While(Box<Expr>, Block),
    /// `loop`; `diverges` when no `break` leaves it.
    Loop(Block, bool),
    Break,
    Continue,
    Return(Option<Box<Expr>>),
}

pub enum Place {
    Local(LocalId),
    Index(LocalId, Box<Expr>),
}

pub struct Block {
    pub stmts: Vec<Stmt>,
    pub tail: Option<Box<Expr>>,
    pub span: Span,
    pub ty: TyVar,
}

pub enum Stmt {
    /// `let [mut] name[: ty] [= init];`
    Let { local: LocalId, annot: Option<Scalar>, init: Option<Expr>, span: Span },
    /// An expression statement (with or without its semicolon).
    Expr(Expr),
}

pub struct Param {
    pub local: LocalId,
    pub ty: ParamTy,
}

/// A kernel: its signature and its body.
pub struct Kernel {
    pub form: Form,
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: RetTy,
    pub body: Block,
    pub locals: Vec<Local>,
    /// How many type variables the model uses.
    pub vars: usize,
    /// The device functions it calls (for the CUDA source's dependencies), in first-use order.
    pub calls: Vec<Ident>,
}

impl Kernel {
    pub fn local(&self, id: LocalId) -> &Local {
        &self.locals[id]
    }
}
