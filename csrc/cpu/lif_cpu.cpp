// CPU implementations of the na_cuda ops. Neurons are processed in blocks of up to kBlock: a block's [T, nb] slice
// is gathered into contiguous compute-type buffers (so a time step is one contiguous row, whatever N is: with
// the global stride N a power of two, per-neuron strided loops thrash the cache sets), the shared per-neuron math
// of csrc/core runs on packs of kLanes neurons (csrc/cpu/lanes_cpu.h), and the results are scattered back.
// Blocks are distributed over threads with at::parallel_for. A thread's scratch is `planes` x T x W values with W
// = its neuron count rounded up to a pack, at most kBlock: bounded by the work, so a tall narrow input ([1e6, 1])
// does not allocate 64 neurons' worth of planes for its one neuron.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../op_impls.h"
#include "lanes_cpu.h"

namespace na {
namespace {

constexpr int64_t kBlock = 64;  // neurons per block; a multiple of every pack width

int64_t grain(int64_t T) { return std::max<int64_t>(kBlock, (at::internal::GRAIN_SIZE / T) / kBlock * kBlock); }

// One block's buffers: `planes` arrays of [T, w] in the compute type (w = the row stride: nb rounded up to a
// pack, <= kBlock), allocated once per thread.
template <typename acc_t>
struct Block {
  int64_t T, n0, nb, w;
  acc_t* buf;
  acc_t* plane(int64_t i) const { return buf + i * T * w; }
};

// Copy src[t, n0 + j] (global [T, N]) into dst[t * w + j]; lanes past the end of the tensor read zeros.
template <typename scalar_t, typename acc_t>
void gather(const scalar_t* src, acc_t* dst, int64_t N, const Block<acc_t>& b) {
  for (int64_t t = 0; t < b.T; ++t) {
    const scalar_t* s = src + t * N + b.n0;
    acc_t* d = dst + t * b.w;
    for (int64_t j = 0; j < b.nb; ++j) d[j] = static_cast<acc_t>(s[j]);
    for (int64_t j = b.nb; j < b.w; ++j) d[j] = acc_t(0);
  }
}

// The block's slice of a per-neuron [N] array (the learnable decay, §11) into dst[0, w), zeros past the end.
template <typename acc_t>
void gather_row(const acc_t* src, acc_t* dst, const Block<acc_t>& b) {
  for (int64_t j = 0; j < b.nb; ++j) dst[j] = src[b.n0 + j];
  for (int64_t j = b.nb; j < b.w; ++j) dst[j] = acc_t(0);
}

template <typename scalar_t, typename acc_t>
void scatter(const acc_t* src, scalar_t* dst, int64_t N, const Block<acc_t>& b) {
  for (int64_t t = 0; t < b.T; ++t) {
    const acc_t* s = src + t * b.w;
    scalar_t* d = dst + t * N + b.n0;
    for (int64_t j = 0; j < b.nb; ++j) d[j] = static_cast<scalar_t>(s[j]);
  }
}

// Runs body(block) over all blocks of the [T, N] problem in parallel; blocks hold whole packs of V. `rows` more
// rows of w values follow the planes (per-neuron values: the learnable decay and its gradient).
template <typename acc_t, typename V, typename Body>
void for_each_block(int64_t T, int64_t N, int64_t planes, int64_t rows, const Body& body) {
  constexpr int64_t lanes = Lanes<V>::kLanes;
  at::parallel_for(0, N, grain(T), [&](int64_t begin, int64_t end) {
    const int64_t w = std::min(kBlock, (end - begin + lanes - 1) / lanes * lanes);
    std::vector<acc_t> buf(static_cast<size_t>((planes * T + rows) * w));
    for (int64_t n0 = begin; n0 < end; n0 += w) body(Block<acc_t>{T, n0, std::min(w, end - n0), w, buf.data()});
  });
}

// Calls f(j) for the first lane j of every pack of V that holds a neuron of the block.
template <typename V, typename F>
void for_each_pack(int64_t nb, const F& f) {
  constexpr int64_t lanes = Lanes<V>::kLanes;
  static_assert(kBlock % lanes == 0, "kBlock must be a multiple of the pack width");
  for (int64_t j = 0; j < nb; j += lanes) f(j);
}

// The backend of csrc/op_impls.h: the forward, and one backward loop for every rule. Blocks hold c in plane 0 and
// g in plane 1 (which the gradient overwrites in place: every backward reads g[t] before it writes grad[t]), the
// rule's Rule::kCpuPlanes workspace planes from plane 2 on, and the scatter writes plane 1 back. Plane 0 is the
// block's private copy of c, which a rule may overwrite (NA scales it by beta in place, csrc/core/rules/na.h).
// With a learnable decay (§11) the block's lams and dL/dlam are two more rows of w values after the planes.
struct Cpu {
  static at::Tensor forward(const at::Tensor& c, const std::optional<at::Tensor>& decay, const LifConfig& cfg) {
    const at::Tensor cc = c.contiguous();
    at::Tensor out = at::empty_like(cc);
    const int64_t T = cc.size(0), N = num_neurons(cc);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cc.scalar_type(), "na_cuda::lif_forward (CPU)", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      using V = typename PackOf<acc_t>::type;
      const LifCoef<acc_t> lif(cfg);
      const scalar_t* cp = cc.const_data_ptr<scalar_t>();
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      const at::Tensor dc = decay.has_value() ? decay->contiguous() : at::Tensor();
      const acc_t* dp = dc.defined() ? dc.const_data_ptr<acc_t>() : nullptr;
      with_reset(cfg, [&](auto reset) {
        constexpr Reset R = decltype(reset)::value;
        for_each_block<acc_t, V>(T, N, 2, 1, [&](const Block<acc_t>& b) {
          acc_t *lc = b.plane(0), *lo = b.plane(1), *ld = dp ? b.plane(2) : nullptr;
          gather(cp, lc, N, b);
          if (ld) gather_row(dp, ld, b);
          for_each_pack<V>(b.nb, [&](int64_t j) {
            lif_forward_neuron<R, acc_t, acc_t, V>(lc + j, lo + j, T, b.w, lif.at(ld, nullptr, j));
          });
          scatter(lo, op, N, b);
        });
      });
    });
    return out;
  }

  template <typename Rule>
  static std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& c,
                                                     const std::optional<at::Tensor>& decay, const LifConfig& lcfg,
                                                     const typename Rule::Config& rcfg) {
    const at::Tensor cc = c.contiguous(), gc = grad_out.contiguous();
    at::Tensor grad = at::empty_like(cc);
    const int64_t T = cc.size(0), N = num_neurons(cc);
    const at::Tensor dc = decay.has_value() ? decay->contiguous() : at::Tensor();
    at::Tensor gdecay = decay.has_value() ? at::empty_like(dc) : at::empty({0}, cc.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cc.scalar_type(), "na_cuda backward (CPU)", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      using V = typename PackOf<acc_t>::type;
      const LifCoef<acc_t> lif(lcfg);
      const typename Rule::template Coef<acc_t> coef(rcfg);
      const scalar_t* cp = cc.const_data_ptr<scalar_t>();
      const scalar_t* gp = gc.const_data_ptr<scalar_t>();
      scalar_t* dp = grad.mutable_data_ptr<scalar_t>();
      const acc_t* lp = dc.defined() ? dc.const_data_ptr<acc_t>() : nullptr;
      acc_t* glp = dc.defined() ? gdecay.mutable_data_ptr<acc_t>() : nullptr;
      with_reset<Rule::kSoftReset>(lcfg, [&](auto reset) {
        constexpr Reset R = decltype(reset)::value;
        constexpr int P = 2 + Rule::kCpuPlanes;
        for_each_block<acc_t, V>(T, N, P, 2, [&](const Block<acc_t>& b) {
          acc_t *lc = b.plane(0), *lg = b.plane(1);
          acc_t* w1 = Rule::kCpuPlanes > 1 ? b.plane(3) : nullptr;
          acc_t *ld = lp ? b.plane(P) : nullptr, *lgd = lp ? b.plane(P) + b.w : nullptr;
          gather(cp, lc, N, b);
          gather(gp, lg, N, b);
          if (ld) gather_row(lp, ld, b);
          for_each_pack<V>(b.nb, [&](int64_t j) {
            Rule::template neuron<R, 0, acc_t, acc_t, V>(lc + j, lg + j, b.plane(2) + j, w1 ? w1 + j : nullptr, lg + j,
                                                         T, b.w, b.w, lif.at(ld, lgd, j), coef);
          });
          scatter(lg, dp, N, b);
          if (lgd) std::copy(lgd, lgd + b.nb, glp + b.n0);
        });
      });
    });
    return {grad, gdecay};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(na_cuda, CPU, m) { register_ops<Cpu>(m); }

}  // namespace na
