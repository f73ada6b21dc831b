#!/usr/bin/env python3
"""Generates the constants of streamdsl's portable math library (streamdsl/src/math/coeffs.rs and the
matching block of kernels/src/cuda/math.cuh) with mpmath: near-minimax polynomial coefficients
(Chebyshev fits, rounded to the target precision and re-checked), the split constants of ln 2 and pi/2,
and the bits of 2/pi for the Payne-Hanek reduction.

Usage: python3 scripts/math_coefficients.py rust|cuda|check
The generated blocks are committed; this script only documents (and can reproduce) where they come from.
"""
import struct
import sys

import mpmath as mp

mp.mp.prec = 256


def f64(v):
    return float(mp.mpf(v))


def f32(v):
    return struct.unpack("<f", struct.pack("<f", float(mp.mpf(v))))[0]


def hex64(x):
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", x))[0]


def hex32(x):
    return "0x%08X" % struct.unpack("<I", struct.pack("<f", x))[0]


def fit(f, a, b, deg, rnd):
    # mpmath's chebyfit misbehaves for some odd point counts on symmetric intervals: fit one degree more
    # when asked for an odd count and drop nothing (the extra term is part of the polynomial).
    c = mp.chebyfit(f, [a, b], deg + 1)[::-1]
    return [rnd(x) for x in c]


def horner(c, t):
    acc = mp.mpf(0)
    for x in reversed(c):
        acc = acc * t + mp.mpf(x)
    return acc


def maxerr(f, c, a, b, n=2000, rel=False):
    worst = mp.mpf(0)
    for i in range(n + 1):
        t = mp.mpf(a) + (mp.mpf(b) - a) * i / n
        e = abs(horner(c, t) - f(t))
        if rel:
            e /= abs(f(t))
        worst = max(worst, e)
    return worst


def split(v, bits, rnd):
    """v as hi + lo, hi with `bits` significant bits (so small integer multiples of hi are exact)."""
    v = mp.mpf(v)
    e = mp.floor(mp.log(abs(v), 2))
    q = mp.mpf(2) ** (e - bits + 1)
    hi = mp.floor(v / q) * q
    return rnd(hi), rnd(v - hi)


def g_log(z):
    if z == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(z)
    return (mp.log((1 + s) / (1 - s)) - 2 * s) / (s * z)


def q_exp(r):
    if r == 0:
        return mp.mpf(1) / 2
    return (mp.exp(r) - 1 - r) / r**2


def s_sin(z):
    if z == 0:
        return -mp.mpf(1) / 6
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / r**3


def c_cos(z):
    if z == 0:
        return mp.mpf(1) / 24
    r = mp.sqrt(z)
    return (mp.cos(r) - 1 + z / 2) / (z * z)


def p_erf(z):
    if z == 0:
        return 2 / mp.sqrt(mp.pi) - 1
    x = mp.sqrt(z)
    return mp.erf(x) / x - 1


SMAX2 = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2
LN2H = mp.log(2) / 2 * mp.mpf("1.001")
PIO4 = mp.pi / 4 * mp.mpf("1.001")
ERF_PIECES = [(1, 1.5), (1.5, 2), (2, 2.5), (2.5, 3), (3, 3.5), (3.5, 4), (4, 5), (5, 6)]
ERF_DEG = 14


def tables():
    t = {}
    t["LOG_F64"] = fit(g_log, 0, SMAX2, 6, f64)
    t["LOG_F32"] = fit(g_log, 0, SMAX2, 3, f32)
    t["EXP_F64"] = fit(q_exp, -LN2H, LN2H, 10, f64)
    t["EXP_F32"] = fit(q_exp, -LN2H, LN2H, 4, f32)
    t["SIN_F64"] = fit(s_sin, 0, PIO4**2, 5, f64)
    t["COS_F64"] = fit(c_cos, 0, PIO4**2, 5, f64)
    t["SIN_F32"] = fit(s_sin, 0, PIO4**2, 3, f32)
    t["COS_F32"] = fit(c_cos, 0, PIO4**2, 3, f32)
    t["ERF_SMALL_F64"] = fit(p_erf, 0, 1, 12, f64)
    pieces = []
    for a, b in ERF_PIECES:
        m = (mp.mpf(a) + b) / 2
        pieces.append(fit(lambda u, m=m: mp.erf(m + u), -(mp.mpf(b) - a) / 2, (mp.mpf(b) - a) / 2, ERF_DEG, f64))
    t["ERF_PIECES_F64"] = pieces
    return t


def scalars():
    s = {}
    s["LN2_HI_F64"], s["LN2_LO_F64"] = split(mp.log(2), 42, f64)
    s["LN2_HI_F32"], s["LN2_LO_F32"] = split(mp.log(2), 16, f32)
    s["INV_LN2_F64"] = f64(1 / mp.log(2))
    s["INV_LN2_F32"] = f32(1 / mp.log(2))
    s["TWO_OVER_PI_F64"] = f64(2 / mp.pi)
    s["TWO_OVER_PI_F32"] = f32(2 / mp.pi)
    p = mp.pi / 2
    a = f64(p); b = f64(p - a); c = f64(p - a - b)
    s["PIO2_1_F64"], s["PIO2_2_F64"], s["PIO2_3_F64"] = a, b, c
    s["PIO2_HI_F64"], s["PIO2_LO_F64"] = a, b
    a = f32(p); b = f32(p - a); c = f32(p - a - b)
    s["PIO2_1_F32"], s["PIO2_2_F32"], s["PIO2_3_F32"] = a, b, c
    s["TAU_F64"] = f64(2 * mp.pi)
    s["TAU_F32"] = f32(2 * mp.pi)

    return s


def two_over_pi_words(n=40):
    # Word 0 and 1 are zero padding; bit 64 (the MSB of word 2) is the first bit after the binary point.
    bits = 32 * n - 64
    with mp.workprec(bits + 128):
        v = int(mp.floor(2 / mp.pi * mp.mpf(2) ** bits))
    words = [0, 0] + [(v >> (32 * (n - 3 - i))) & 0xFFFFFFFF for i in range(n - 2)]
    return words


def check():
    t = tables()
    print("log f64 rel err", mp.nstr(maxerr(g_log, t["LOG_F64"], 0, SMAX2, rel=True), 4))
    print("log f32 rel err", mp.nstr(maxerr(g_log, t["LOG_F32"], 0, SMAX2, rel=True), 4))
    print("exp f64 rel err", mp.nstr(maxerr(q_exp, t["EXP_F64"], -LN2H, LN2H, rel=True), 4))
    print("exp f32 rel err", mp.nstr(maxerr(q_exp, t["EXP_F32"], -LN2H, LN2H, rel=True), 4))
    print("sin f64 rel err", mp.nstr(maxerr(s_sin, t["SIN_F64"], 0, PIO4**2, rel=True), 4))
    print("cos f64 rel err", mp.nstr(maxerr(c_cos, t["COS_F64"], 0, PIO4**2, rel=True), 4))
    print("sin f32 rel err", mp.nstr(maxerr(s_sin, t["SIN_F32"], 0, PIO4**2, rel=True), 4))
    print("cos f32 rel err", mp.nstr(maxerr(c_cos, t["COS_F32"], 0, PIO4**2, rel=True), 4))
    print("erf small abs err", mp.nstr(maxerr(p_erf, t["ERF_SMALL_F64"], 0, 1), 4))
    for (a, b), c in zip(ERF_PIECES, t["ERF_PIECES_F64"]):
        m = (mp.mpf(a) + b) / 2
        print("erf piece", a, b, mp.nstr(maxerr(lambda u: mp.erf(m + u), c, -(b - a) / 2, (b - a) / 2), 4))
    w = two_over_pi_words()
    print("2/pi words", " ".join("%08X" % x for x in w[:6]))
    # The thresholds used by the code.
    print("erfc(6) =", mp.nstr(mp.erfc(6), 5), "< 2^-54 =", mp.nstr(mp.mpf(2) ** -54, 5))


def emit(lang):
    t = tables()
    s = scalars()
    out = []
    if lang == "rust":
        for k, v in s.items():
            ty = "f32" if k.endswith("F32") else "f64"
            h = hex32(v) if ty == "f32" else hex64(v)
            out.append(f"pub(crate) const {k}: {ty} = {ty}::from_bits({h}); // {v!r}")
        for k, v in t.items():
            if k == "ERF_PIECES_F64":
                rows = ",\n".join("    [" + ", ".join(f"f64::from_bits({hex64(x)})" for x in row) + "]" for row in v)
                out.append(f"pub(crate) const {k}: [[f64; {ERF_DEG + 1}]; {len(v)}] = [\n{rows},\n];")
                continue
            ty = "f32" if k.endswith("F32") else "f64"
            hx = hex32 if ty == "f32" else hex64
            body = ", ".join(f"{ty}::from_bits({hx(x)})" for x in v)
            out.append(f"pub(crate) const {k}: [{ty}; {len(v)}] = [{body}];")
        w = two_over_pi_words()
        out.append(f"pub(crate) const TWO_OVER_PI_BITS: [u32; {len(w)}] = [" + ", ".join("0x%08X" % x for x in w) + "];")
    else:
        for k, v in s.items():
            if k.endswith("F32"):
                out.append(f"#define MATH_{k} __uint_as_float({hex32(v)}u) /* {v!r} */")
            else:
                out.append(f"#define MATH_{k} __longlong_as_double({hex64(v)}ll) /* {v!r} */")
        for k, v in t.items():
            if k == "ERF_PIECES_F64":
                rows = ",\n".join("    {" + ", ".join(f"{hex64(x)}ull" for x in row) + "}" for row in v)
                out.append(f"__device__ static const unsigned long long MATH_{k}[{len(v)}][{ERF_DEG + 1}] = {{\n{rows}\n}};")
                continue
            if k.endswith("F32"):
                body = ", ".join(f"{hex32(x)}u" for x in v)
                out.append(f"__device__ static const unsigned int MATH_{k}[{len(v)}] = {{{body}}};")
            else:
                body = ", ".join(f"{hex64(x)}ull" for x in v)
                out.append(f"__device__ static const unsigned long long MATH_{k}[{len(v)}] = {{{body}}};")
        w = two_over_pi_words()
        out.append(f"__device__ static const unsigned int MATH_TWO_OVER_PI_BITS[{len(w)}] = {{" + ", ".join("0x%08Xu" % x for x in w) + "};")
    print("\n".join(out))


if __name__ == "__main__":
    {"rust": lambda: emit("rust"), "cuda": lambda: emit("cuda"), "check": check}[sys.argv[1]]()
