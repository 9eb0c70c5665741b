// Exhaustive check of the AVX2 unit's vector expf (csrc/cpu/lanes_cpu.h) against the library's expf: every float
// with |x| < 88 bit for bit, the special cases (nan, +-inf, overflow, underflow, subnormals), and the load-time
// self check. Needs a CPU with AVX2 and FMA and glibc >= 2.27; about a minute:
//   g++ -std=c++17 -O2 -mavx2 -mfma -ffp-contract=off scripts/check_vexpf.cpp -o /tmp/check_vexpf && /tmp/check_vexpf
#include "../csrc/cpu/isa_avx2.cpp"

#include <cstdio>

int main() {
  using na::avx2::vfloat;
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::printf("this CPU lacks AVX2 or FMA\n");
    return 2;
  }
  long checked = 0, differ = 0;
  auto check = [&](const float* x) {
    vfloat v;
    std::memcpy(&v, x, sizeof v);
    const vfloat got = na::avx2::vexpf(v);
    for (int j = 0; j < 8; ++j) {
      const float want = expf(x[j]);
      ++checked;
      if (std::memcmp(&got[j], &want, sizeof want) != 0 && !(want != want && got[j] != got[j])) {
        if (++differ <= 10) std::printf("differs: x=%a expf=%a vexpf=%a\n", x[j], want, got[j]);
      }
    }
  };
  // every float below 88 in magnitude, 8 consecutive bit patterns a pack
  float x[8];
  int n = 0;
  for (uint64_t b = 0; b < (uint64_t(1) << 32); ++b) {
    const uint32_t u = static_cast<uint32_t>(b);
    float f;
    std::memcpy(&f, &u, sizeof f);
    if (!(std::fabs(f) < 88.0f)) continue;
    x[n++] = f;
    if (n == 8) check(x), n = 0;
  }
  while (n > 0 && n < 8) x[n++] = 0.0f;
  if (n == 8) check(x);
  // special cases, each alone in a pack of ordinary values and all together
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float special[] = {nan,
                           -nan,
                           inf,
                           -inf,
                           88.0f,
                           88.72f,
                           0x1.62e42ep6f,
                           0x1.62e430p6f,
                           89.0f,
                           1e30f,
                           -88.0f,
                           -0x1.9d1d9ep6f,
                           -0x1.9fe368p6f,
                           -104.0f,
                           -1e30f,
                           0x1p-149f,
                           -0x1p-149f,
                           0x1p-126f,
                           std::numeric_limits<float>::max(),
                           -std::numeric_limits<float>::max()};
  for (float s : special) {
    float p[8] = {0.5f, -1.0f, 3.0f, s, -7.0f, 0.0f, 2.5f, -0.25f};
    check(p);
  }
  for (size_t i = 0; i + 8 <= sizeof special / sizeof special[0]; i += 4) check(special + i);
  const bool self = na::avx2::vexpf_self_check();
  std::printf("%ld values checked, %ld differ; self check %s\n", checked, differ, self ? "passes" : "FAILS");
  return differ == 0 && self ? 0 : 1;
}
