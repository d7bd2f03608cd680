// exp() for float written so the compiler vectorizes the loops that call it (libm's expf is an
// opaque call per element). Cephes' expf: n = round(x·log2 e), r = x − n·ln2 in two parts, a
// degree-6 polynomial for e^r on [−ln2/2, ln2/2], then scale by 2^n through the exponent bits.
// Accurate to about 1 ulp over the clamped range; inputs below −87 give ~0 as expf would.
#pragma once
#include <cstdint>

namespace smolstage::cpu {

inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // Round to nearest by adding and subtracting 1.5·2^23 (std::floor does not vectorize here).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return y * __builtin_bit_cast(float, bits);  // memcpy here blocks GCC's vectorizer
}

}  // namespace smolstage::cpu
