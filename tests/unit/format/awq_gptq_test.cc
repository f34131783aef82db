// AWQ / GPTQ layers -> I4Z128 rows (format/awq_gptq.h): tensors packed here as AutoAWQ's
// and AutoGPTQ's pack loops do, read back through DequantizeRow; errors by name.
#include "format/awq_gptq.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "format/ggml_types.h"

namespace inferd {
namespace {

bool Contains(const std::string& h, const std::string& n) { return h.find(n) != std::string::npos; }

// A quantized layer: codes q [out][in], zeros z [groups][out], fp16 scales [groups][out].
struct Layer {
  int64_t in, out, g;  // g: the effective group size
  std::vector<int> q, z;
  std::vector<uint16_t> s;
  double W(int64_t o, int64_t k) const {
    const int64_t grp = k / g;
    return static_cast<double>(Fp16ToFp32(s[grp * out + o])) * (q[o * in + k] - z[grp * out + o]);
  }
};

Layer RandomLayer(int64_t in, int64_t out, int64_t g, uint32_t seed) {
  std::mt19937 rng(seed);
  Layer l{in, out, g, {}, {}, {}};
  for (int64_t i = 0; i < in * out; ++i) l.q.push_back(static_cast<int>(rng() % 16));
  for (int64_t i = 0; i < in / g * out; ++i) {
    l.z.push_back(1 + static_cast<int>(rng() % 15));  // 1..15: GPTQ v1 stores z - 1 >= 0
    l.s.push_back(Fp32ToFp16(static_cast<float>(1 + rng() % 100) * 1e-3f));
  }
  return l;
}

struct Owned {
  std::vector<std::vector<uint8_t>> bufs;
  StTensor Make(const char* name, StDtype dt, const char* dt_name, std::vector<int64_t> shape, const void* data,
                size_t bytes) {
    bufs.emplace_back(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + bytes);
    StTensor t;
    t.name = name;
    t.dtype = dt;
    t.dtype_name = dt_name;
    t.shape = std::move(shape);
    t.data = bufs.back().data();
    t.nbytes = bytes;
    return t;
  }
};

// AutoAWQ WQLinear_GEMM.from_linear: intweight [in, out], word c of row k holds columns
// 8c + order_map[i] at bits 4i.
std::vector<uint32_t> PackAwq(const std::vector<int>& v, int64_t rows, int64_t cols) {  // v[row][col]
  static const int order_map[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  std::vector<uint32_t> p(static_cast<size_t>(rows * cols / 8), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols / 8; ++c) {
      for (int i = 0; i < 8; ++i) p[r * (cols / 8) + c] |= static_cast<uint32_t>(v[r * cols + 8 * c + order_map[i]]) << (4 * i);
    }
  }
  return p;
}

struct Tensors {
  Owned own;
  StTensor qweight, qzeros, scales, g_idx;
  Int4LayerTensors view(bool with_g_idx) { return {&qweight, &qzeros, &scales, with_g_idx ? &g_idx : nullptr}; }
};

void MakeAwq(const Layer& l, Tensors* t) {
  std::vector<int> qt(static_cast<size_t>(l.in * l.out));  // [in, out]
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t k = 0; k < l.in; ++k) qt[k * l.out + o] = l.q[o * l.in + k];
  const auto qw = PackAwq(qt, l.in, l.out);
  const auto qz = PackAwq(l.z, l.in / l.g, l.out);
  t->qweight = t->own.Make("qweight", StDtype::kI32, "I32", {l.in, l.out / 8}, qw.data(), qw.size() * 4);
  t->qzeros = t->own.Make("qzeros", StDtype::kI32, "I32", {l.in / l.g, l.out / 8}, qz.data(), qz.size() * 4);
  t->scales = t->own.Make("scales", StDtype::kF16, "F16", {l.in / l.g, l.out}, l.s.data(), l.s.size() * 2);
}

// AutoGPTQ QuantLinear.pack: qweight row i holds inputs 8i + j at bits 4j; qzeros word c of
// group g holds outputs 8c + j at bits 4j, storing z - 1 (v1) or z (v2).
void MakeGptq(const Layer& l, bool v2, Tensors* t) {
  std::vector<uint32_t> qw(static_cast<size_t>(l.in / 8 * l.out), 0), qz(static_cast<size_t>(l.in / l.g * l.out / 8), 0);
  for (int64_t i = 0; i < l.in / 8; ++i)
    for (int64_t o = 0; o < l.out; ++o)
      for (int j = 0; j < 8; ++j) qw[i * l.out + o] |= static_cast<uint32_t>(l.q[o * l.in + 8 * i + j]) << (4 * j);
  for (int64_t grp = 0; grp < l.in / l.g; ++grp)
    for (int64_t c = 0; c < l.out / 8; ++c)
      for (int j = 0; j < 8; ++j)
        qz[grp * (l.out / 8) + c] |= static_cast<uint32_t>(l.z[grp * l.out + 8 * c + j] - (v2 ? 0 : 1)) << (4 * j);
  std::vector<int32_t> gi(static_cast<size_t>(l.in));
  for (int64_t k = 0; k < l.in; ++k) gi[k] = static_cast<int32_t>(k / l.g);
  t->qweight = t->own.Make("qweight", StDtype::kI32, "I32", {l.in / 8, l.out}, qw.data(), qw.size() * 4);
  t->qzeros = t->own.Make("qzeros", StDtype::kI32, "I32", {l.in / l.g, l.out / 8}, qz.data(), qz.size() * 4);
  t->scales = t->own.Make("scales", StDtype::kF16, "F16", {l.in / l.g, l.out}, l.s.data(), l.s.size() * 2);
  t->g_idx = t->own.Make("g_idx", StDtype::kI32, "I32", {l.in}, gi.data(), gi.size() * 4);
}

void ExpectRows(const Layer& l, const Matrix& m) {
  ASSERT_EQ(m.type, GgmlType::kI4Z128);
  ASSERT_EQ(m.rows, l.out);
  ASSERT_EQ(m.cols, l.in);
  std::vector<float> row(static_cast<size_t>(l.in));
  for (int64_t o = 0; o < l.out; ++o) {
    DequantizeRow(m.type, m.row(o), row.data(), l.in);
    for (int64_t k = 0; k < l.in; ++k) ASSERT_EQ(row[k], l.W(o, k)) << "row " << o << " input " << k;
  }
}

TEST(AwqGptq, AwqGroup128) {
  const Layer l = RandomLayer(384, 24, 128, 1);
  Tensors t;
  MakeAwq(l, &t);
  std::vector<std::shared_ptr<const void>> keep;
  auto m = Int4LayerToI4Z128(Int4Packing::kAwq, "l", t.view(false), 128, &keep);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ExpectRows(l, *m);
  EXPECT_EQ(keep.size(), 1u);
}

TEST(AwqGptq, AwqOneGroupPerRowAndGroup256) {
  for (int64_t g : {-1, 256}) {
    const Layer l = RandomLayer(512, 16, g == -1 ? 512 : g, 2);
    Tensors t;
    MakeAwq(l, &t);
    std::vector<std::shared_ptr<const void>> keep;
    auto m = Int4LayerToI4Z128(Int4Packing::kAwq, "l", t.view(false), g, &keep);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ExpectRows(l, *m);
  }
}

TEST(AwqGptq, GptqV1AndV2) {
  for (bool v2 : {false, true}) {
    for (int64_t g : {int64_t{128}, int64_t{-1}}) {
      const Layer l = RandomLayer(256, 32, g == -1 ? 256 : g, 3);
      Tensors t;
      MakeGptq(l, v2, &t);
      std::vector<std::shared_ptr<const void>> keep;
      auto m = Int4LayerToI4Z128(v2 ? Int4Packing::kGptqV2 : Int4Packing::kGptq, "l", t.view(g == 128), g, &keep);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      ExpectRows(l, *m);
    }
  }
}

TEST(AwqGptq, Errors) {
  const Layer l = RandomLayer(256, 16, 128, 4);
  std::vector<std::shared_ptr<const void>> keep;
  auto err = [&](Int4Packing p, Tensors& t, bool gi, int64_t g) {
    auto m = Int4LayerToI4Z128(p, "model.layers.0.mlp.up_proj", t.view(gi), g, &keep);
    EXPECT_FALSE(m.ok());
    return m.ok() ? std::string() : m.status().message();
  };
  {  // act-order: g_idx is not k / G
    Tensors t;
    MakeGptq(l, false, &t);
    int32_t swap[2] = {1, 0};
    std::memcpy(t.own.bufs.back().data(), swap, 8);
    EXPECT_TRUE(Contains(err(Int4Packing::kGptq, t, true, 128), "'model.layers.0.mlp.up_proj.g_idx'[0] = 1, expected 0"));
    EXPECT_TRUE(Contains(err(Int4Packing::kGptq, t, true, 128), "act-order"));
  }
  {  // scales of another group count; qweight of another dtype
    Tensors t;
    MakeAwq(l, &t);
    t.scales.shape = {1, 16};
    EXPECT_TRUE(Contains(err(Int4Packing::kAwq, t, false, 128),
                         "'model.layers.0.mlp.up_proj.scales' has shape [1, 16], expected [2, 16]"));
    t.scales.shape = {2, 16};
    t.scales.dtype = StDtype::kBF16;
    t.scales.dtype_name = "BF16";
    EXPECT_TRUE(Contains(err(Int4Packing::kAwq, t, false, 128), "scales' has dtype BF16, expected F16"));
    t.qweight.dtype = StDtype::kF16;
    t.qweight.dtype_name = "F16";
    EXPECT_TRUE(Contains(err(Int4Packing::kAwq, t, false, 128), "should be a 2-D I32 tensor (packed int4), is F16"));
  }
  {  // group sizes the int4 kernels cannot take
    Tensors t;
    MakeAwq(l, &t);
    EXPECT_TRUE(Contains(err(Int4Packing::kAwq, t, false, 64), "group size 64 over 256 inputs"));
    t.qzeros = {};
    EXPECT_TRUE(Contains(err(Int4Packing::kAwq, t, false, 128), "'model.layers.0.mlp.up_proj.qzeros' has dtype"));
  }
}

}  // namespace
}  // namespace inferd
