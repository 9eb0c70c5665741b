// What the bindings take from torch: the LibTorch stable ABI only (torch/csrc/stable, torch/headeronly;
// docs/install.md), so one binary serves every torch from TORCH_TARGET_VERSION (setup.py: 2.10) on. Two pieces of
// our own on top: NA_CHECK (throws our message alone, a RuntimeError in Python, without torch's C++ prefix) and
// NA_BOX (the boxed kernel: unboxes `str` arguments without the torch 2.13 headers' leak; tests/test_stable_abi.py).
// Why: docs/kernels.md ("csrc/binding.h").
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace na {

using Tensor = torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;

template <typename... A>
std::string cat(const A&... a) {
  std::ostringstream out;
  (out << ... << a);
  return out.str();
}

#define NA_CHECK(cond, ...)                                        \
  do {                                                             \
    if (!(cond)) throw std::runtime_error(::na::cat(__VA_ARGS__)); \
  } while (0)

inline std::string device_str(const Tensor& t) {
  if (t.is_cpu()) return "cpu";
  return cat(t.is_cuda() ? "cuda:" : "device:", static_cast<int>(t.get_device_index()));
}

inline std::string sizes_str(const Tensor& t) {
  std::ostringstream out;
  out << "[";
  for (int64_t d = 0; d < t.dim(); ++d) out << (d ? ", " : "") << t.size(d);
  out << "]";
  return out.str();
}

namespace box {

template <typename T>
T unbox(StableIValue v) {
  return torch::stable::detail::to<T>(v);
}

// A `str` argument arrives as a string handle the callee owns: copy it, then free the handle.
template <>
inline std::string unbox<std::string>(StableIValue v) {
  StringHandle handle = torch::stable::detail::to<StringHandle>(v);
  size_t length = 0;
  const char* data = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(torch_string_length(handle, &length));
  STABLE_TORCH_ERROR_CODE_CHECK(torch_string_c_str(handle, &data));
  std::string out(data, length);
  STABLE_TORCH_ERROR_CODE_CHECK(torch_delete_string(handle));
  return out;
}

// A `str?` argument: None, or a pointer to a StableIValue holding the string handle (torch's own ToImpl of an
// optional, with the string unboxed as above so that nothing leaks).
template <>
inline std::optional<std::string> unbox<std::optional<std::string>>(StableIValue v) {
  auto* inner = torch::stable::detail::to<StableIValue*>(v);
  if (inner == nullptr) return std::nullopt;
  std::string out = unbox<std::string>(*inner);
#if TORCH_FEATURE_VERSION >= TORCH_VERSION_2_13_0
  STABLE_TORCH_ERROR_CODE_CHECK(torch_delete_stable_ivalue(inner));
#else
  delete inner;
#endif
  return out;
}

// The outputs of a kernel's result: one Tensor, or a std::tuple of them (a schema with several outputs).
template <typename R>
struct Outputs {
  static constexpr uint64_t count = 1;
  static void put(StableIValue* stack, R&& r) { stack[0] = torch::stable::detail::from(std::move(r)); }
};
template <typename... T>
struct Outputs<std::tuple<T...>> {
  static constexpr uint64_t count = sizeof...(T);
  static void put(StableIValue* stack, std::tuple<T...>&& r) {
    std::apply(
        [&](auto&&... t) {
          uint64_t i = 0;
          ((stack[i++] = torch::stable::detail::from(std::move(t))), ...);
        },
        std::move(r));
  }
};

template <auto F>
struct Boxed;

// The arguments in schema order, the outputs (Outputs<R>) from stack[0] on. A braced initializer evaluates left
// to right, so the handles are taken over in stack order.
template <typename R, typename... A, R (*F)(A...)>
struct Boxed<F> {
  static void call(StableIValue* stack, uint64_t num_args, uint64_t num_outputs) {
    NA_CHECK(num_args == sizeof...(A) && num_outputs == Outputs<R>::count, "na_cuda: internal error: the schema has ",
             num_args, " arguments and ", num_outputs, " outputs, the kernel ", sizeof...(A), " and ",
             Outputs<R>::count);
    call_impl(stack, std::index_sequence_for<A...>{});
  }
  template <size_t... I>
  static void call_impl(StableIValue* stack, std::index_sequence<I...>) {
    std::tuple<std::decay_t<A>...> args{unbox<std::decay_t<A>>(stack[I])...};
    Outputs<R>::put(stack, std::apply(F, std::move(args)));
  }
};

}  // namespace box

#define NA_BOX(fn) (&::na::box::Boxed<fn>::call)

}  // namespace na
