// The STBP surrogates h(x), x = u - threshold (docs/algorithm.md §5; formulas and peers in docs/api.md), written
// once: a row of NA_SURROGATES and a SurrogateMath specialisation each. The table makes the enum, the name check
// and its message (csrc/op_args.h) and the build fact na_cuda_surrogates (csrc/ops.cpp), which a test compares with
// the Python table na_cuda/surrogates.py. Recipe: docs/development.md, "Add a surrogate".
#pragma once

#include "../lif.h"

// X(Enum, "name", alpha_min): the op's surrogate_alpha must be finite and > alpha_min.
#define NA_SURROGATES(X)                             \
  X(Rect, "rect", 0.0)                               \
  X(Triangle, "triangle", 0.0)                       \
  X(Sigmoid, "sigmoid", 0.0)                         \
  X(ATan, "atan", 0.0)                               \
  X(FastSigmoid, "fast_sigmoid", 0.0)                \
  X(SoftSign, "soft_sign", 0.0)                      \
  X(Erf, "erf", 0.0)                                 \
  X(PiecewiseExp, "piecewise_exp", 0.0)              \
  X(PiecewiseLeakyReLU, "piecewise_leaky_relu", 0.0) \
  X(SuperSpike, "super_spike", 0.0)                  \
  X(QPseudoSpike, "q_pseudo_spike", 1.0)             \
  X(Triangular, "triangular", 0.0)                   \
  X(StraightThroughEstimator, "straight_through_estimator", 0.0)

namespace na {

#define NA_SURROGATE_ENUM(E, name, alpha_min) E,
enum class Surrogate : int { NA_SURROGATES(NA_SURROGATE_ENUM) };
#undef NA_SURROGATE_ENUM

struct SurrogateRow {
  const char* name;
  double alpha_min;
};
#define NA_SURROGATE_ROW(E, name, alpha_min) {name, alpha_min},
inline constexpr SurrogateRow kSurrogates[] = {NA_SURROGATES(NA_SURROGATE_ROW)};
#undef NA_SURROGATE_ROW
inline constexpr int kNumSurrogates = static_cast<int>(sizeof(kSurrogates) / sizeof(kSurrogates[0]));

}  // namespace na

namespace na {
NA_ISA_BEGIN

// One specialisation per row: coef(alpha, p) fills the two constants h uses (host, once per launch, in double);
// h(x, p0, p1) is the derivative on a lane of x. A row without a specialisation does not compile.
template <Surrogate K>
struct SurrogateMath;

// The coef of a surrogate whose only constant is alpha itself.
struct AlphaOnly {
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 0.0;
  }
};

template <>
struct SurrogateMath<Surrogate::Rect> {  // 1/a on |x| < a/2
  static void coef(double a, double* p) {
    p[0] = 0.5 * a;
    p[1] = 1.0 / a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V h = L::splat(p0), zero = L::splat(0);
    return L::select(x < h, L::select(x > -h, L::splat(p1), zero), zero);
  }
};

template <>
struct SurrogateMath<Surrogate::Triangle> {  // max(0, g - |x|) / g^2
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 1.0 / (a * a);
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V zero = L::splat(0), m = L::splat(p0) - L::select(x < zero, -x, x);
    return L::select(m > zero, m * L::splat(p1), zero);
  }
};

template <>
struct SurrogateMath<Surrogate::Sigmoid> : AlphaOnly {  // k sig (1 - sig), sig = 1 / (1 + exp(-k x))
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A) {
    using L = Lanes<V>;
    const V k = L::splat(p0), one = L::splat(1);
    const V sig = one / (one + L::exp(-(k * x)));
    return k * sig * (one - sig);
  }
};

template <>
struct SurrogateMath<Surrogate::ATan> {  // (alpha / 2) / (1 + (pi/2 alpha x)^2): spikingjelly surrogate.ATan
  static void coef(double a, double* p) {
    p[0] = 1.5707963267948966 * a;
    p[1] = 0.5 * a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V y = L::splat(p0) * x;
    return L::splat(p1) / (L::splat(1) + y * y);
  }
};

template <>
struct SurrogateMath<Surrogate::FastSigmoid> : AlphaOnly {  // 1 / (k |x| + 1)^2: snnTorch surrogate.fast_sigmoid
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A) {
    using L = Lanes<V>;
    const V zero = L::splat(0), one = L::splat(1), d = L::splat(p0) * L::select(x < zero, -x, x) + one;
    return one / (d * d);
  }
};

template <>
struct SurrogateMath<Surrogate::SoftSign> {  // 1 / (2 a (1/a + |x|)^2): spikingjelly SoftSign
  static void coef(double a, double* p) {
    p[0] = 1.0 / a;
    p[1] = 0.5 / a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V zero = L::splat(0), d = L::splat(p0) + L::select(x < zero, -x, x);
    return L::splat(p1) / (d * d);
  }
};

template <>
struct SurrogateMath<Surrogate::Erf> {  // a / sqrt(pi) exp(-(a x)^2): spikingjelly Erf
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = a * 0.5641895835477563;  // 1/sqrt(pi)
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V y = L::splat(p0) * x;
    return L::splat(p1) * L::exp(-(y * y));
  }
};

template <>
struct SurrogateMath<Surrogate::PiecewiseExp> {  // a / 2 exp(-a |x|): spikingjelly PiecewiseExp
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 0.5 * a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V zero = L::splat(0);
    return L::splat(p1) * L::exp(-(L::splat(p0) * L::select(x < zero, -x, x)));
  }
};

template <>
struct SurrogateMath<Surrogate::PiecewiseLeakyReLU> {  // 1 / (2w) on |x| < w, else c = 0.01: spikingjelly
                                                       // PiecewiseLeakyReLU(w, c=0.01)
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 0.5 / a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V w = L::splat(p0);
    return L::select(x < w, L::select(x > -w, L::splat(p1), L::splat(0.01)), L::splat(0.01));
  }
};

template <>
struct SurrogateMath<Surrogate::SuperSpike> : AlphaOnly {  // a / (|x| + 1)^2: spikingjelly SuperSpike
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A) {
    using L = Lanes<V>;
    const V zero = L::splat(0), d = L::select(x < zero, -x, x) + L::splat(1);
    return L::splat(p0) / (d * d);
  }
};

template <>
struct SurrogateMath<Surrogate::QPseudoSpike> {  // (1 + 2 |x| / (q - 1))^-q, q = a > 1, as exp(-q log(...)):
                                                 // spikingjelly QPseudoSpike
  static void coef(double a, double* p) {
    p[0] = 2.0 / (a - 1.0);
    p[1] = -a;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A p1) {
    using L = Lanes<V>;
    const V zero = L::splat(0), b = L::splat(1) + L::splat(p0) * L::select(x < zero, -x, x);
    return L::exp(L::splat(p1) * L::log(b));
  }
};

template <>
struct SurrogateMath<Surrogate::Triangular> {  // a where x < 0, -a where x >= 0: snnTorch
                                               // surrogate.triangular(threshold=a)
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 0.0;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A) {
    using L = Lanes<V>;
    const V t = L::splat(p0);
    return L::select(x < L::splat(0), t, -t);
  }
};

template <>
struct SurrogateMath<Surrogate::StraightThroughEstimator> {  // a everywhere: snnTorch
                                                             // surrogate.straight_through_estimator() (a = 1)
  static void coef(double a, double* p) {
    p[0] = a;
    p[1] = 0.0;
  }
  template <typename V, typename A>
  static NA_HD V h(V x, A p0, A) {
    (void)x;
    return Lanes<V>::splat(p0);
  }
};

// The constants of `k` for `alpha` (host). No default in either switch: -Werror=switch names a forgotten row.
inline void surrogate_coef(Surrogate k, double alpha, double* p) {
  switch (k) {
#define NA_SURROGATE_COEF(E, name, alpha_min) \
  case Surrogate::E:                          \
    return SurrogateMath<Surrogate::E>::coef(alpha, p);
    NA_SURROGATES(NA_SURROGATE_COEF)
#undef NA_SURROGATE_COEF
  }
}

// h(x) of surrogate `k`.
template <typename V, typename A>
NA_HD V surrogate_h(Surrogate k, V x, A p0, A p1) {
  switch (k) {
#define NA_SURROGATE_H(E, name, alpha_min) \
  case Surrogate::E:                       \
    return SurrogateMath<Surrogate::E>::template h<V, A>(x, p0, p1);
    NA_SURROGATES(NA_SURROGATE_H)
#undef NA_SURROGATE_H
  }
  return Lanes<V>::splat(0);  // unreachable: every enumerator has its case
}

NA_ISA_END
}  // namespace na
