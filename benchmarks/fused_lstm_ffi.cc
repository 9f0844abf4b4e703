// Fused LSTM time loops for JAX on CPU, called through XLA's FFI.
//
// Forward: for each step, z = projection_t + h_{t-1} U (one sgemm), gates, cell, masked carry; saves
// what the backward needs. Backward: carries (dh, dc), emits the pre-activation gradients dz_t and
// dh_{t-1} = dz_t U^T (one sgemm a step). The weight gradient sum_t h_{t-1}^T dz_t is left to XLA
// as one matmul over all steps. Work is split into parts (directions x row blocks) run on threads,
// each calling a single-threaded sgemm.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" void BISEQ_SGEMM(int order, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc);
extern "C" void BISEQ_SET_THREADS(int);
extern "C" int BISEQ_GET_THREADS();

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

void Activate(float* __restrict__ z, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < 2 * H; ++j) z[j] = 1.0f / (1.0f + std::exp(-z[j]));
#pragma omp simd
  for (int64_t j = 2 * H; j < 3 * H; ++j) z[j] = std::tanh(z[j]);
#pragma omp simd
  for (int64_t j = 3 * H; j < 4 * H; ++j) z[j] = 1.0f / (1.0f + std::exp(-z[j]));
}

void Cell(const float* __restrict__ z, int64_t H, float m, const float* __restrict__ cp, const float* __restrict__ hp,
          float* __restrict__ out, float* __restrict__ tc, float* __restrict__ h, float* __restrict__ c) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const float cn = z[H + j] * cp[j] + z[j] * z[2 * H + j];
    const float tcn = std::tanh(cn);
    const float hn = z[3 * H + j] * tcn;
    tc[j] = tcn;
    out[j] = m * hn;
    h[j] = m * hn + (1 - m) * hp[j];
    c[j] = m * cn + (1 - m) * cp[j];
  }
}

void CellGrad(const float* __restrict__ z, int64_t H, float m, const float* __restrict__ cp,
              const float* __restrict__ tc, const float* __restrict__ dout, const float* __restrict__ dh_next,
              float* __restrict__ dc, float* __restrict__ dz, float* __restrict__ dh_carry) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const float i = z[j], f = z[H + j], g = z[2 * H + j], o = z[3 * H + j];
    const float dh = m * (dh_next[j] + dout[j]);
    const float dcv = m * dc[j] + dh * o * (1 - tc[j] * tc[j]);
    dz[j] = dcv * g * i * (1 - i);
    dz[H + j] = dcv * cp[j] * f * (1 - f);
    dz[2 * H + j] = dcv * i * (1 - g * g);
    dz[3 * H + j] = dh * tc[j] * o * (1 - o);
    dh_carry[j] = (1 - m) * dh_next[j];
    dc[j] = dcv * f + (1 - m) * dc[j];
  }
}

struct Part {
  int64_t d, b0, b1;
};

// Directions x row blocks, about `threads` parts in all.
std::vector<Part> Parts(int64_t D, int64_t B, int threads) {
  const int64_t blocks = std::max<int64_t>(1, (threads + D - 1) / D);
  std::vector<Part> parts;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t b0 = B * k / blocks, b1 = B * (k + 1) / blocks;
      if (b1 > b0) parts.push_back({d, b0, b1});
    }
  return parts;
}

template <class F>
void RunParts(const std::vector<Part>& parts, F&& run) {
  if (parts.size() == 1) {
    run(parts[0]);
    return;
  }
  const int saved = BISEQ_GET_THREADS();
  BISEQ_SET_THREADS(1);
  std::vector<std::thread> others;
  for (size_t p = 1; p < parts.size(); ++p) others.emplace_back([&, p] { run(parts[p]); });
  run(parts[0]);
  for (auto& t : others) t.join();
  BISEQ_SET_THREADS(saved);
}

int Threads() {
  static const int n = [] {
    const char* env = std::getenv("BISEQ_FUSED_THREADS");
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    return env ? std::max(1, std::atoi(env)) : std::max(1, hw);
  }();
  return n;
}

}  // namespace

// projections [T, D, B, 4H], mask [T, Dm, B, 1] (Dm 1 or D), h0/c0 [D, B, H], kernel [D, H, 4H]
// -> outputs [T, D, B, H], h, c [D, B, H], h_prevs, c_prevs [T, D, B, H], gates [T, D, B, 4H], tanh_cs.
static ffi::Error LstmForwardImpl(ffi::Buffer<ffi::F32> proj, ffi::Buffer<ffi::F32> mask, ffi::Buffer<ffi::F32> h0,
                                  ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> kernel,
                                  ffi::ResultBuffer<ffi::F32> outputs, ffi::ResultBuffer<ffi::F32> h_out,
                                  ffi::ResultBuffer<ffi::F32> c_out, ffi::ResultBuffer<ffi::F32> h_prevs,
                                  ffi::ResultBuffer<ffi::F32> c_prevs, ffi::ResultBuffer<ffi::F32> gates,
                                  ffi::ResultBuffer<ffi::F32> tanh_cs) {
  const auto pd = proj.dimensions();
  if (pd.size() != 4 || pd[3] % 4 != 0) return ffi::Error::InvalidArgument("projections must be [T, D, B, 4H]");
  const int64_t T = pd[0], D = pd[1], B = pd[2], G = pd[3], H = G / 4;
  const int64_t Dm = mask.dimensions()[1];
  const float* P = proj.typed_data();
  const float* M = mask.typed_data();
  const float* U = kernel.typed_data();
  float* O = outputs->typed_data();
  float* HP = h_prevs->typed_data();
  float* CP = c_prevs->typed_data();
  float* Z = gates->typed_data();
  float* TC = tanh_cs->typed_data();
  float* HS = h_out->typed_data();
  float* CS = c_out->typed_data();
  std::memcpy(HS, h0.typed_data(), sizeof(float) * D * B * H);
  std::memcpy(CS, c0.typed_data(), sizeof(float) * D * B * H);
  RunParts(Parts(D, B, Threads()), [&](const Part& part) {
    const int64_t d = part.d, rows = part.b1 - part.b0;
    float* h = HS + (d * B + part.b0) * H;
    float* c = CS + (d * B + part.b0) * H;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = (t * D + d) * B + part.b0;
      float* z = Z + row * G;
      float* hp = HP + row * H;
      float* cp = CP + row * H;
      std::memcpy(hp, h, sizeof(float) * rows * H);
      std::memcpy(cp, c, sizeof(float) * rows * H);
      std::memcpy(z, P + row * G, sizeof(float) * rows * G);
      BISEQ_SGEMM(kRowMajor, kNoTrans, kNoTrans, rows, G, H, 1.0f, hp, H, U + d * H * G, G, 1.0f, z, G);
      const float* m = M + (t * Dm + (Dm == 1 ? 0 : d)) * B + part.b0;
      for (int64_t b = 0; b < rows; ++b) {
        Activate(z + b * G, H);
        Cell(z + b * G, H, m[b], cp + b * H, hp + b * H, O + (row + b) * H, TC + (row + b) * H, h + b * H,
             c + b * H);
      }
    }
  });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BiseqLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

// d_outputs [T, D, B, H], mask, c_prevs, gates (activated), tanh_cs, d_h/d_c [D, B, H], kernel [D, H, 4H]
// -> dz [T, D, B, 4H], dh0, dc0 [D, B, H].
static ffi::Error LstmBackwardImpl(ffi::Buffer<ffi::F32> d_outputs, ffi::Buffer<ffi::F32> mask,
                                   ffi::Buffer<ffi::F32> c_prevs, ffi::Buffer<ffi::F32> gates,
                                   ffi::Buffer<ffi::F32> tanh_cs, ffi::Buffer<ffi::F32> d_h, ffi::Buffer<ffi::F32> d_c,
                                   ffi::Buffer<ffi::F32> kernel, ffi::ResultBuffer<ffi::F32> dz_out,
                                   ffi::ResultBuffer<ffi::F32> dh_out, ffi::ResultBuffer<ffi::F32> dc_out) {
  const auto gd = gates.dimensions();
  const int64_t T = gd[0], D = gd[1], B = gd[2], G = gd[3], H = G / 4;
  const int64_t Dm = mask.dimensions()[1];
  const float* DO = d_outputs.typed_data();
  const float* M = mask.typed_data();
  const float* CP = c_prevs.typed_data();
  const float* Z = gates.typed_data();
  const float* TC = tanh_cs.typed_data();
  const float* U = kernel.typed_data();
  float* DZ = dz_out->typed_data();
  float* DH = dh_out->typed_data();
  float* DC = dc_out->typed_data();
  std::memcpy(DH, d_h.typed_data(), sizeof(float) * D * B * H);
  std::memcpy(DC, d_c.typed_data(), sizeof(float) * D * B * H);
  RunParts(Parts(D, B, Threads()), [&](const Part& part) {
    const int64_t d = part.d, rows = part.b1 - part.b0;
    float* dh = DH + (d * B + part.b0) * H;
    float* dc = DC + (d * B + part.b0) * H;
    std::vector<float> carry(rows * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = (t * D + d) * B + part.b0;
      const float* m = M + (t * Dm + (Dm == 1 ? 0 : d)) * B + part.b0;
      float* dz = DZ + row * G;
      for (int64_t b = 0; b < rows; ++b)
        CellGrad(Z + (row + b) * G, H, m[b], CP + (row + b) * H, TC + (row + b) * H, DO + (row + b) * H, dh + b * H,
                 dc + b * H, dz + b * G, carry.data() + b * H);
      BISEQ_SGEMM(kRowMajor, kNoTrans, kTrans, rows, H, G, 1.0f, dz, G, U + d * H * G, G, 1.0f, carry.data(), H);
      std::memcpy(dh, carry.data(), sizeof(float) * rows * H);
    }
  });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BiseqLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
