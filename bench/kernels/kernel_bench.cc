// Kernel micro-benchmarks beside the kernels (src/backend/cpu): matmul per weight type
// and batch size (the packed int8 path and the fp32 path), paged attention, activation
// quantization, and the machine's read bandwidth (the ceiling for batch-1 decode).
//
//   build/release/bench/kernels/inferd_kernel_bench [--benchmark_filter=MatMul/q4_1]
// Counters: bytes_per_second = weight bytes streamed; items_per_second = MACs (matmul)
// or query-key pairs (attention). Shapes are SmolLM2-135M's and Llama-2-7B's.
#include <benchmark/benchmark.h>

#if defined(__AVX512F__)
#include "backend/cpu/avx512_intrin.h"  // first: GCC 12's false -Wmaybe-uninitialized in AVX-512 headers
#endif

#include <cstdlib>
#include <cstring>
#include <string>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu/attention.h"
#include "format/ggml_int.h"
#include "backend/cpu/qgemm.h"
#include "backend/cpu/cpu_ops.h"
#include "util/thread_pool.h"

namespace inferd {
namespace {

std::vector<float> RandomVec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct BenchMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
  std::shared_ptr<const void> packed;
};

BenchMatrix MakeMatrix(GgmlType type, int64_t rows, int64_t cols, bool pack) {
  BenchMatrix b;
  b.m.type = type;
  b.m.rows = rows;
  b.m.cols = cols;
  b.m.row_bytes = GgmlRowSize(type, cols);
  b.bytes.resize(b.m.row_bytes * rows);
  int halves[2];
  if (const int nh = IntBlockHalfFields(type, halves); nh > 0) {
    // No QuantizeRow for this type: random blocks with small finite fp16 scales.
    std::mt19937 rng(1);
    for (auto& byte : b.bytes) byte = static_cast<uint8_t>(rng());
    const size_t bb = GgmlTypeSize(type);
    for (size_t off = 0; off < b.bytes.size(); off += bb) {
      for (int i = 0; i < nh; ++i) {
        const uint16_t h = Fp32ToFp16(static_cast<float>(rng() % 1000) * 1e-5f);
        std::memcpy(&b.bytes[off + halves[i]], &h, 2);
      }
    }
  } else {
    std::vector<float> row = RandomVec(static_cast<size_t>(cols), 1);
    for (int64_t r = 0; r < rows; ++r) {
      row[r % cols] += 0.5f;  // rows differ
      (void)QuantizeRow(type, row.data(), b.bytes.data() + r * b.m.row_bytes, cols);
    }
  }
  b.m.data = b.bytes.data();
  if (pack) {
    b.packed = cpu::PackMatrix(b.m);
    b.m.packed = b.packed.get();
  }
  return b;
}

// args: rows, cols, tokens, packed (1 = int8 activations, 0 = fp32)
template <GgmlType kType>
void BM_MatMul(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1), tokens = state.range(2);
  BenchMatrix w = MakeMatrix(kType, rows, cols, state.range(3) != 0);
  auto x = RandomVec(static_cast<size_t>(tokens * cols), 2);
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  for (auto _ : state) {
    cpu::MatMul(w.m, x.data(), tokens, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(w.m.nbytes()));
  state.SetItemsProcessed(state.iterations() * rows * cols * tokens);
}

void MatMulArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "tokens", "int8"});
  for (int64_t packed : {1, 0}) {
    for (int64_t tokens : {1, 4, 64, 512}) {
      if (!packed && tokens > 64) continue;
      b->Args({1536, 576, tokens, packed});  // SmolLM2 gate/up
      b->Args({576, 1536, tokens, packed});  // SmolLM2 down
    }
    b->Args({11008, 4096, 1, packed});  // Llama-2-7B gate/up, decode
    if (packed) b->Args({11008, 4096, 64, packed});
  }
  b->Args({49152, 576, 1, 1});  // SmolLM2 LM head, decode
  b->UseRealTime();
}

BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ4_0)->Name("MatMul/q4_0")->Apply(MatMulArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ4_1)->Name("MatMul/q4_1")->Apply(MatMulArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ8_0)->Name("MatMul/q8_0")->Apply(MatMulArgs);
// The unit types (qgemm.h): SmolLM2's shapes where the type allows them, a model whose widths
// are multiples of 256 (1024 x 2816), and the 7B gate/up.
void UnitMatMulArgs(benchmark::internal::Benchmark* b, bool k_quant) {
  b->ArgNames({"rows", "cols", "tokens", "int8"});
  for (int64_t tokens : {1, 4, 64, 512}) {
    if (!k_quant) b->Args({1536, 576, tokens, 1});
    b->Args({576, 1536, tokens, 1});
    if (k_quant) b->Args({2816, 1024, tokens, 1});
  }
  b->Args({11008, 4096, 1, 1});
  b->Args({11008, 4096, 64, 1});
  b->UseRealTime();
}
void Unit32Args(benchmark::internal::Benchmark* b) { UnitMatMulArgs(b, false); }
void UnitKArgs(benchmark::internal::Benchmark* b) { UnitMatMulArgs(b, true); }
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ5_0)->Name("MatMul/q5_0")->Apply(Unit32Args);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ5_1)->Name("MatMul/q5_1")->Apply(Unit32Args);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kIQ4_NL)->Name("MatMul/iq4_nl")->Apply(Unit32Args);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ2_K)->Name("MatMul/q2_K")->Apply(UnitKArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ3_K)->Name("MatMul/q3_K")->Apply(UnitKArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ4_K)->Name("MatMul/q4_K")->Apply(UnitKArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ5_K)->Name("MatMul/q5_K")->Apply(UnitKArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kQ6_K)->Name("MatMul/q6_K")->Apply(UnitKArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kIQ4_XS)->Name("MatMul/iq4_xs")->Apply(UnitKArgs);
// AWQ / GPTQ layers as inferd stores them (I4Z128: s, z per 128 inputs).
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kI4Z128)->Name("MatMul/i4z128")->Apply(UnitKArgs);
// Float weights as the engine runs them (k-major panels, packed); SmolLM2's LM head (56 MB
// as f16, past the L3) for decode from DRAM; small-256's gate / up at a 512-token prefill.
void FloatArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "cols", "tokens", "packed"});
  b->Args({4096, 4096, 1, 1})->Args({4096, 4096, 64, 1})->Args({49152, 576, 1, 1})->Args({1536, 576, 512, 1});
  b->Args({2816, 1024, 512, 1})->Args({11008, 4096, 1, 1});  // + Llama-2-7B gate / up decode (DRAM)
  b->UseRealTime();
}
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kF16)->Name("MatMul/f16")->Apply(FloatArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kBF16)->Name("MatMul/bf16")->Apply(FloatArgs);
BENCHMARK_TEMPLATE(BM_MatMul, GgmlType::kF32)->Name("MatMul/f32")->Apply(FloatArgs);

// Activation quantization of `tokens` rows of 1536 in blocks of `block` (32, or 256 for the
// K-quants).
void BM_QuantizeActs(benchmark::State& state) {
  const int64_t tokens = state.range(0), block = state.range(1), k = 1536;
  auto x = RandomVec(static_cast<size_t>(tokens * k), 3);
  std::vector<int8_t> q(tokens * k);
  std::vector<float> d(tokens * k / block);
  std::vector<int32_t> s(tokens * k / 32), e(tokens * k / 32);
  const auto& kern = cpu::QuantKernels();
  for (auto _ : state) {
    kern.quantize(x.data(), k, tokens, k, block, q.data(), d.data(), s.data(), block == 32 ? nullptr : e.data());
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(state.iterations() * tokens * k);
}
BENCHMARK(BM_QuantizeActs)->ArgNames({"tokens", "block"})->Args({1, 32})->Args({512, 32})->Args({512, 256});

// Paged attention: `seqs` sequences of `tokens` new rows each at context `ctx`
// (SmolLM2 heads: 9 query, 3 KV, head_dim 64; block size 16).
// elem: the KV cache format (cpu::KvElem: 0 fp32, 1 fp16, 2 int8, 3 fp8_e4m3, 4 fp8_e5m2).
void BM_Attention(benchmark::State& state) {
  const int64_t seqs = state.range(0), tokens = state.range(1), ctx = state.range(2);
  const auto elem = static_cast<cpu::KvElem>(state.range(3));
  const int64_t heads = 9, kvh = 3, d = 64, bs = 16;
  const int64_t blocks_per_seq = (ctx + bs - 1) / bs;
  std::vector<float> kc(seqs * blocks_per_seq * bs * kvh * d), vc(kc.size());  // fp32-sized; others use a prefix
  std::vector<uint16_t> ks(seqs * blocks_per_seq * bs * kvh), vs(ks.size());
  std::vector<int32_t> tables(seqs * blocks_per_seq);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
  cpu::KvLayerView view{kc.data(), vc.data(), bs, kvh, d, elem, ks.data(), vs.data()};
  {  // every sequence's context, written as the engine writes it
    std::vector<ops::AttnSeq> all(seqs);
    std::vector<int32_t> all_pos(seqs * ctx);
    for (int64_t s = 0; s < seqs; ++s) {
      all[s] = {s * ctx, ctx, ctx, &tables[s * blocks_per_seq]};
      for (int64_t i = 0; i < ctx; ++i) all_pos[s * ctx + i] = static_cast<int32_t>(i);
    }
    const auto k = RandomVec(static_cast<size_t>(seqs * ctx * kvh * d), 4);
    cpu::WriteKv(view, all, all_pos.data(), k.data(), k.data());
  }
  std::vector<ops::AttnSeq> as(seqs);
  std::vector<int32_t> pos(seqs * tokens);
  for (int64_t s = 0; s < seqs; ++s) {
    as[s] = {s * tokens, tokens, ctx, &tables[s * blocks_per_seq]};
    for (int64_t i = 0; i < tokens; ++i) pos[s * tokens + i] = static_cast<int32_t>(ctx - tokens + i);
  }
  auto q = RandomVec(static_cast<size_t>(seqs * tokens * heads * d), 5);
  std::vector<float> out(q.size());
  for (auto _ : state) {
    cpu::PagedAttention(view, as, pos.data(), q.data(), heads, cpu::AttnOptions{0.125f}, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  int64_t pairs = 0;
  for (int64_t i = 0; i < tokens; ++i) pairs += ctx - tokens + i + 1;
  state.SetItemsProcessed(state.iterations() * seqs * heads * pairs);
}
void AttentionArgs(benchmark::internal::Benchmark* b) {
  for (int64_t elem : {0, 1, 2, 3, 4}) {
    b->Args({1, 1, 512, elem})->Args({1, 1, 4096, elem})->Args({64, 1, 256, elem})->Args({1, 512, 512, elem});
  }
}
BENCHMARK(BM_Attention)->ArgNames({"seqs", "tokens", "ctx", "elem"})->Apply(AttentionArgs)->UseRealTime();

// Writing K and V of `tokens` rows of SmolLM2's shape (3 KV heads of 64) into one layer's
// cache, per format (elem as above): a scalar loop on the calling thread, once per layer.
void BM_WriteKv(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const auto elem = static_cast<cpu::KvElem>(state.range(1));
  const int64_t kvh = 3, d = 64, bs = 16, blocks = (tokens + bs - 1) / bs;
  std::vector<float> kc(blocks * bs * kvh * d), vc(kc.size());
  std::vector<uint16_t> ks(blocks * bs * kvh), vs(ks.size());
  std::vector<int32_t> table(blocks), pos(tokens);
  for (int64_t i = 0; i < blocks; ++i) table[i] = static_cast<int32_t>(i);
  for (int64_t i = 0; i < tokens; ++i) pos[i] = static_cast<int32_t>(i);
  const auto k = RandomVec(static_cast<size_t>(tokens * kvh * d), 6), v = RandomVec(k.size(), 7);
  const cpu::KvLayerView view{kc.data(), vc.data(), bs, kvh, d, elem, ks.data(), vs.data()};
  const ops::AttnSeq seq{0, tokens, tokens, table.data()};
  for (auto _ : state) {
    cpu::WriteKv(view, {&seq, 1}, pos.data(), k.data(), v.data());
    benchmark::DoNotOptimize(kc.data());
  }
  state.SetItemsProcessed(state.iterations() * tokens);
}
BENCHMARK(BM_WriteKv)->ArgNames({"tokens", "elem"})->ArgsProduct({{1, 512}, {0, 1, 2, 3, 4}});

// One decode step's matmuls of SmolLM2-135M (30 layers of distinct Q4_1 matrices and the
// Q8_0 LM head, 96 MB): weights stream from memory as in a real decode, unlike the
// cache-hot single-matrix runs above. bytes_per_second against BM_ReadBandwidth/92 is the
// fraction of the bandwidth ceiling the matmuls reach.
void BM_DecodeMatMuls(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  struct Layer {
    BenchMatrix q, k, v, o, gate, up, down;
  };
  std::vector<Layer> layers;
  for (int i = 0; i < 30; ++i) {
    layers.push_back({MakeMatrix(GgmlType::kQ4_1, 576, 576, true), MakeMatrix(GgmlType::kQ4_1, 192, 576, true),
                      MakeMatrix(GgmlType::kQ4_1, 192, 576, true), MakeMatrix(GgmlType::kQ4_1, 576, 576, true),
                      MakeMatrix(GgmlType::kQ4_1, 1536, 576, true), MakeMatrix(GgmlType::kQ4_1, 1536, 576, true),
                      MakeMatrix(GgmlType::kQ4_1, 576, 1536, true)});
  }
  BenchMatrix head = MakeMatrix(GgmlType::kQ8_0, 49152, 576, true);
  auto x = RandomVec(static_cast<size_t>(tokens * 1536), 6);
  std::vector<float> y(static_cast<size_t>(tokens * 49152));
  int64_t bytes = static_cast<int64_t>(head.m.nbytes());
  for (auto& l : layers)
    for (BenchMatrix* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) bytes += static_cast<int64_t>(m->m.nbytes());
  for (auto _ : state) {
    for (auto& l : layers)
      for (BenchMatrix* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) cpu::MatMul(m->m, x.data(), tokens, y.data());
    cpu::MatMul(head.m, x.data(), tokens, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_DecodeMatMuls)->ArgName("tokens")->Arg(1)->Arg(4)->UseRealTime();

// The cost of one ParallelFor round trip on the global pool (an empty job).
void BM_ParallelForOverhead(benchmark::State& state) {
  std::vector<int64_t> sink(64 * 16);
  for (auto _ : state) {
    ThreadPool::Global().ParallelFor(64, 1, [&](int64_t b, int64_t e) { sink[b * 16] += e; });
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_ParallelForOverhead)->UseRealTime();

// The same empty job as an OpenMP parallel for (libgomp, its default spin-then-sleep
// waiting), for comparison with the pool above.
void BM_OpenMPOverhead(benchmark::State& state) {
  std::vector<int64_t> sink(64 * 16);
  const int threads = ThreadPool::Global().num_threads();
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < 64; ++i) sink[i * 16] += i;
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_OpenMPOverhead)->UseRealTime();

// Read bandwidth over `mib` MiB with the global pool's threads (the decode ceiling).
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0)) << 20;
  std::vector<float> buf(n / 4, 1.0f);
  std::vector<float> sums(64 * 16);
  for (auto _ : state) {
    ThreadPool::Global().ParallelFor(static_cast<int64_t>(buf.size()), 1 << 16, [&](int64_t b, int64_t e) {
      float s[16] = {};
      for (int64_t i = b; i + 16 <= e; i += 16)
        for (int j = 0; j < 16; ++j) s[j] += buf[i + j];  // vectorized by the compiler
      for (int j = 0; j < 16; ++j) sums[(b >> 16) % 64 * 16 + j] += s[j];
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_ReadBandwidth)->ArgName("MiB")->Arg(92)->Arg(1024)->UseRealTime();

#if defined(__AVX512F__)
// The compute ceilings of prefill on this CPU, all pool threads together: twelve independent
// chains of 512-bit fp32 FMAs (the float panels' and attention's instruction) or of VNNI
// vpdpbusd (the integer kernels'). items_per_second is multiply-adds per second: 16 per FMA,
// 64 per vpdpbusd. A matmul's MACs per second over this is the fraction of peak it reaches.
constexpr int64_t kPeakIters = 1 << 22;
#define INFERD_R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// The instruction of each ceiling: twelve accumulators of type V start at Init(i), each step
// is acc = Step(acc, b, c) (b, c opaque to the compiler every iteration, so nothing folds),
// and Sum makes the result depend on all twelve.
struct FmaZmm {
  using V = __m512;
  static constexpr int64_t kMacs = 16;
  static V Init(int i) { return _mm512_set1_ps(static_cast<float>(i)); }
  static V B() { return _mm512_set1_ps(1.0001f); }
  static V C() { return _mm512_set1_ps(0.999f); }
  static V Step(V acc, V b, V c) { return _mm512_fmadd_ps(acc, b, c); }
  static float Sum(V v) { return _mm512_reduce_add_ps(v); }
};
#if defined(__AVX512VNNI__)
struct VnniZmm {
  using V = __m512i;
  static constexpr int64_t kMacs = 64;
  static V Init(int i) { return _mm512_set1_epi32(i); }
  static V B() { return _mm512_set1_epi8(3); }
  static V C() { return _mm512_set1_epi8(5); }
  static V Step(V acc, V b, V c) { return _mm512_dpbusd_epi32(acc, b, c); }
  static float Sum(V v) { return static_cast<float>(_mm512_reduce_add_epi32(v)); }
};
#endif
#if defined(__AVX512BF16__)
struct Bf16Zmm {  // vdpbf16ps: the BF16 panels' instruction
  using V = __m512;
  static constexpr int64_t kMacs = 32;
  static V Init(int i) { return _mm512_set1_ps(static_cast<float>(i)); }
  static V B() { return _mm512_castsi512_ps(_mm512_set1_epi32(0x3F803F80)); }
  static V C() { return _mm512_castsi512_ps(_mm512_set1_epi32(0x3F803F80)); }
  static V Step(V acc, V b, V c) { return _mm512_dpbf16_ps(acc, (__m512bh)b, (__m512bh)c); }
  static float Sum(V v) { return _mm512_reduce_add_ps(v); }
};
#endif

// kPeakIters steps of 12 independent instructions (named variables: an array spills).
template <class Op>
float PeakChains() {
  typename Op::V b = Op::B(), c = Op::C();
#define INFERD_PEAK_INIT(i) typename Op::V a##i = Op::Init(i);
  INFERD_R12(INFERD_PEAK_INIT)
  for (int64_t n = 0; n < kPeakIters; ++n) {
#define INFERD_PEAK_STEP(i) a##i = Op::Step(a##i, b, c);
    INFERD_R12(INFERD_PEAK_STEP)
    asm volatile("" : "+v"(b), "+v"(c));
  }
  float s = 0.0f;
#define INFERD_PEAK_SUM(i) s += Op::Sum(a##i);
  INFERD_R12(INFERD_PEAK_SUM)
  return s;
}

// PeakChains<Op> once on every pool thread per iteration.
template <class Op>
void BM_Peak(benchmark::State& state) {
  const int threads = ThreadPool::Global().num_threads();
  std::vector<float> sink(static_cast<size_t>(threads) * 16);
  for (auto _ : state) {
    ThreadPool::Global().ParallelFor(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t th = b; th < e; ++th) sink[static_cast<size_t>(th) * 16] = PeakChains<Op>();
    });
    benchmark::DoNotOptimize(sink.data());
  }
  state.SetItemsProcessed(state.iterations() * threads * kPeakIters * 12 * Op::kMacs);
}
BENCHMARK(BM_Peak<FmaZmm>)->Name("BM_PeakFmaZmm")->UseRealTime();
#if defined(__AVX512VNNI__)
BENCHMARK(BM_Peak<VnniZmm>)->Name("BM_PeakVnniZmm")->UseRealTime();
#endif
#if defined(__AVX512BF16__)
BENCHMARK(BM_Peak<Bf16Zmm>)->Name("BM_PeakBf16Zmm")->UseRealTime();
#endif
#endif

}  // namespace
}  // namespace inferd

// INFERD_BENCH_BW_MIB=N adds BM_ReadBandwidth/MiB:N (bench/vs-llamacpp.sh: a model's size).
int main(int argc, char** argv) {
  if (const char* mib = std::getenv("INFERD_BENCH_BW_MIB")) {
    const int64_t n = std::atoll(mib);
    if (n > 0 && n != 92 && n != 1024) {
      benchmark::RegisterBenchmark("BM_ReadBandwidth", inferd::BM_ReadBandwidth)
          ->ArgName("MiB")
          ->Arg(n)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
