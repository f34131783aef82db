#include "format/gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>

namespace inferd {
namespace {

std::string ModelPath() {
  if (const char* env = std::getenv("INFERD_MODEL"); env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/inferd/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Offset of the first occurrence of `needle` in `bytes` (test files are small and unique).
size_t Find(const std::vector<uint8_t>& bytes, const std::string& needle) {
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << needle;
  return static_cast<size_t>(it - bytes.begin());
}

template <typename T>
void Poke(std::vector<uint8_t>& bytes, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), bytes.size());
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

// A small file with metadata of several types and two tensors.
GgufWriter SmallWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 2);
  w.AddStringArray("tokenizer.ggml.tokens", {"<s>", "</s>", "hello", "world"});
  w.AddFloat32Array("tokenizer.ggml.scores", {0.0f, -1.0f, -2.5f, 3.0f});
  std::vector<uint8_t> f32(4 * 8 * 2);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<uint8_t>(i);
  w.AddTensor("a.weight", GgmlType::kF32, {8, 2}, f32);
  std::vector<uint8_t> q8(34 * 2, 1);
  w.AddTensor("b.weight", GgmlType::kQ8_0, {64}, q8);
  return w;
}

// ---------------------------------------------------------------- real files

TEST(GgufRealModel, ParsesSmolLm2) {
  const std::string path = ModelPath();
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << "model not found at " << path << " (run scripts/fetch-model.sh or set INFERD_MODEL)";
  }
  // Parse from a buffer we own so that data pointers can be checked against its bounds.
  const std::vector<uint8_t> bytes = ReadAll(path);
  auto f = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.GetString("general.architecture"), "llama");
  EXPECT_EQ(g.GetInt("llama.block_count"), 30);
  EXPECT_EQ(g.GetInt("llama.embedding_length"), 576);
  EXPECT_EQ(g.GetBool("tokenizer.ggml.add_bos_token"), false);
  const GgufArray* tokens = g.GetArray("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->elem_type, GgufType::kString);
  EXPECT_EQ(tokens->size(), 49152u);
  ASSERT_EQ(g.tensors().size(), 272u);
  std::map<std::string, int> types;
  for (const GgufTensorInfo& t : g.tensors()) {
    ++types[GgmlTypeName(static_cast<uint32_t>(t.type))];
    ASSERT_GE(t.data, bytes.data()) << t.name;
    ASSERT_LE(t.data + t.nbytes, bytes.data() + bytes.size()) << t.name;
    EXPECT_EQ(t.nbytes, GgmlRowSize(t.type, t.shape[0]) * (t.num_elements() / t.shape[0])) << t.name;
    EXPECT_EQ(t.offset % g.alignment(), 0u);
  }
  EXPECT_EQ(types, (std::map<std::string, int>{{"f32", 61}, {"q4_1", 210}, {"q8_0", 1}}));
  const GgufTensorInfo* emb = g.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{576, 49152}));

  // Open() (mmap) agrees with Parse().
  auto mapped = GgufFile::Open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  EXPECT_EQ((*mapped)->tensors().size(), 272u);
  EXPECT_EQ((*mapped)->metadata().size(), g.metadata().size());
}

TEST(GgufRealModel, ParsesEveryTokenizerTestFile) {
  const std::filesystem::path dir = std::filesystem::path(INFERD_TESTDATA_DIR) / "tokenizer";
  int n = 0;
  if (std::filesystem::is_directory(dir)) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".gguf") continue;
      ++n;
      auto f = GgufFile::Open(e.path().string());
      ASSERT_TRUE(f.ok()) << e.path() << ": " << f.status().ToString();
      const GgufArray* tokens = (*f)->GetArray("tokenizer.ggml.tokens");
      ASSERT_NE(tokens, nullptr) << e.path();
      EXPECT_GT(tokens->size(), 0u);
      EXPECT_TRUE((*f)->GetString("tokenizer.ggml.model").has_value()) << e.path();
    }
  }
  if (n == 0) GTEST_SKIP() << "no *.gguf under " << dir;
}

TEST(GgufOpen, MissingFileIsNotFound) {
  auto f = GgufFile::Open("/nonexistent/x.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------- round trip

GgufArray IntArray(GgufType t, std::vector<int64_t> v) {
  GgufArray a;
  a.elem_type = t;
  a.ints = std::move(v);
  return a;
}

TEST(GgufWriter, RoundTripsEveryMetadataType) {
  GgufWriter w;
  w.Add("u8", {GgufType::kUint8, int64_t{250}});
  w.Add("i8", {GgufType::kInt8, int64_t{-100}});
  w.Add("u16", {GgufType::kUint16, int64_t{65000}});
  w.Add("i16", {GgufType::kInt16, int64_t{-32000}});
  w.AddUint32("u32", 4000000000u);
  w.AddInt32("i32", -2000000000);
  w.AddFloat32("f32", 1.5f);
  w.AddBool("bool", true);
  w.AddString("str", std::string("h\xc3\xa9llo\0x", 8));
  w.Add("u64", {GgufType::kUint64, uint64_t{18000000000000000000ull}});
  w.Add("i64", {GgufType::kInt64, int64_t{-9000000000000000000ll}});
  w.Add("f64", {GgufType::kFloat64, 3.141592653589793});
  w.AddStringArray("strs", {"", "a", std::string(300, 'z')});
  w.AddFloat32Array("f32s", {1.0f, -0.5f});
  w.AddInt32Array("i32s", {1, -2, 3});
  w.Add("u8s", {GgufType::kArray, IntArray(GgufType::kUint8, {0, 255})});
  w.Add("bools", {GgufType::kArray, IntArray(GgufType::kBool, {1, 0, 1})});
  w.Add("i64s", {GgufType::kArray, IntArray(GgufType::kInt64, {-1, 1ll << 40})});
  GgufArray u64s;
  u64s.elem_type = GgufType::kUint64;
  u64s.uints = {~0ull, 7};
  w.Add("u64s", {GgufType::kArray, u64s});
  GgufArray f64s;
  f64s.elem_type = GgufType::kFloat64;
  f64s.floats = {1e300, -2.0};
  w.Add("f64s", {GgufType::kArray, f64s});
  GgufArray nested;  // [[1, 2], [], [[ "x" ]]] -- arrays of arrays of mixed element types
  nested.elem_type = GgufType::kArray;
  nested.arrays.push_back(IntArray(GgufType::kInt16, {1, 2}));
  nested.arrays.push_back(IntArray(GgufType::kUint32, {}));
  GgufArray inner;
  inner.elem_type = GgufType::kArray;
  GgufArray leaf;
  leaf.elem_type = GgufType::kString;
  leaf.strings = {"x"};
  inner.arrays.push_back(leaf);
  nested.arrays.push_back(inner);
  w.Add("nested", {GgufType::kArray, nested});

  const std::vector<uint8_t> bytes = w.Serialize();
  auto f = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  ASSERT_EQ(g.metadata().size(), 21u);
  EXPECT_EQ(g.metadata()[0].first, "u8");  // file order kept
  EXPECT_EQ(g.Find("u8")->type, GgufType::kUint8);
  EXPECT_EQ(g.GetInt("u8"), 250);
  EXPECT_EQ(g.GetInt("i8"), -100);
  EXPECT_EQ(g.GetInt("u16"), 65000);
  EXPECT_EQ(g.GetInt("i16"), -32000);
  EXPECT_EQ(g.GetInt("u32"), 4000000000ll);
  EXPECT_EQ(g.GetInt("i32"), -2000000000);
  EXPECT_EQ(g.GetFloat("f32"), 1.5);
  EXPECT_EQ(g.GetBool("bool"), true);
  EXPECT_EQ(g.GetInt("bool"), 1);
  EXPECT_EQ(g.GetString("str"), std::string("h\xc3\xa9llo\0x", 8));
  EXPECT_EQ(std::get<uint64_t>(g.Find("u64")->v), 18000000000000000000ull);
  EXPECT_EQ(g.GetInt("u64"), std::nullopt);  // does not fit int64
  EXPECT_EQ(g.GetInt("i64"), -9000000000000000000ll);
  EXPECT_EQ(g.GetFloat("f64"), 3.141592653589793);
  EXPECT_EQ(g.GetFloat("i32"), -2000000000.0);  // integers convert to float
  EXPECT_EQ(g.GetString("u8"), std::nullopt);    // wrong type
  EXPECT_EQ(g.GetBool("u8"), std::nullopt);
  EXPECT_EQ(g.GetInt("missing"), std::nullopt);
  EXPECT_EQ(g.GetArray("u8"), nullptr);

  EXPECT_EQ(g.GetArray("strs")->strings, (std::vector<std::string>{"", "a", std::string(300, 'z')}));
  EXPECT_EQ(g.GetArray("f32s")->floats, (std::vector<double>{1.0, -0.5}));
  EXPECT_EQ(g.GetArray("i32s")->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(g.GetArray("u8s")->ints, (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(g.GetArray("bools")->elem_type, GgufType::kBool);
  EXPECT_EQ(g.GetArray("bools")->ints, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(g.GetArray("i64s")->ints, (std::vector<int64_t>{-1, 1ll << 40}));
  EXPECT_EQ(g.GetArray("u64s")->uints, (std::vector<uint64_t>{~0ull, 7}));
  EXPECT_EQ(g.GetArray("f64s")->floats, (std::vector<double>{1e300, -2.0}));
  const GgufArray* n = g.GetArray("nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->size(), 3u);
  EXPECT_EQ(n->arrays[0].elem_type, GgufType::kInt16);
  EXPECT_EQ(n->arrays[0].ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(n->arrays[1].elem_type, GgufType::kUint32);
  EXPECT_EQ(n->arrays[1].size(), 0u);
  ASSERT_EQ(n->arrays[2].arrays.size(), 1u);
  EXPECT_EQ(n->arrays[2].arrays[0].strings, (std::vector<std::string>{"x"}));
}

TEST(GgufWriter, RoundTripsTensorsOfEverySupportedType) {
  const GgmlType types[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ4_0,
                            GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
                            GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};
  for (uint64_t alignment : {32u, 64u, 1u}) {
    GgufWriter w;
    std::mt19937 rng(7);
    std::vector<std::vector<uint8_t>> payloads;
    for (GgmlType t : types) {
      const int64_t row = GgmlBlockSize(t) * 2;
      const std::vector<int64_t> shape = {row, 3};
      std::vector<uint8_t> bytes(GgmlRowSize(t, row) * 3);
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
      payloads.push_back(bytes);
      w.AddTensor("t." + GgmlTypeName(static_cast<uint32_t>(t)), t, shape, bytes);
    }
    const std::vector<uint8_t> file = w.Serialize(alignment);
    auto f = GgufFile::Parse(file.data(), file.size());
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ((*f)->alignment(), alignment);
    ASSERT_EQ((*f)->tensors().size(), std::size(types));
    for (size_t i = 0; i < std::size(types); ++i) {
      const GgufTensorInfo& t = (*f)->tensors()[i];
      SCOPED_TRACE(t.name);
      EXPECT_EQ(t.type, types[i]);
      EXPECT_EQ(t.shape, (std::vector<int64_t>{GgmlBlockSize(types[i]) * 2, 3}));
      EXPECT_EQ(t.num_elements(), GgmlBlockSize(types[i]) * 6);
      ASSERT_EQ(t.nbytes, payloads[i].size());
      EXPECT_EQ(0, std::memcmp(t.data, payloads[i].data(), t.nbytes));
      EXPECT_EQ(static_cast<size_t>(t.data - file.data()) % alignment, 0u);
    }
  }
}

TEST(GgufWriter, WritesAndOpensFile) {
  const std::string path = ::testing::TempDir() + "/inferd_gguf_writer_test.gguf";
  ASSERT_TRUE(SmallWriter().WriteFile(path).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->path(), path);
  EXPECT_EQ((*f)->tensors().size(), 2u);
  std::filesystem::remove(path);
}

TEST(GgufWriter, RefusesInternalTypes) {
  const std::string path = ::testing::TempDir() + "/inferd_gguf_i4z128.gguf";
  GgufWriter w = SmallWriter();
  w.AddTensor("blk.0.attn_q.weight", GgmlType::kI4Z128, {128, 1}, std::vector<uint8_t>(67));
  const Status st = w.WriteFile(path);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(Contains(st.message(), "has type i4z128, which is not a GGML type")) << st.message();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(GgufParse, Version2IsAccepted) {
  std::vector<uint8_t> bytes = SmallWriter().Serialize();
  Poke<uint32_t>(bytes, 4, 2);  // v2 and v3 share the little-endian layout
  auto f = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->version(), 2u);
  EXPECT_EQ((*f)->tensors().size(), 2u);
}

TEST(GgufParse, OpenErrorNamesThePath) {
  const std::string path = ::testing::TempDir() + "/inferd_gguf_bad.gguf";
  std::ofstream(path, std::ios::binary) << "GGUF\x03";
  auto f = GgufFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(Contains(f.status().message(), path)) << f.status().message();
  EXPECT_TRUE(Contains(f.status().message(), "truncated file reading version")) << f.status().message();
  std::filesystem::remove(path);
}

TEST(GgufParse, VocabOnlyFileWithoutTensors) {
  GgufWriter w;
  w.AddStringArray("tokenizer.ggml.tokens", {"a"});
  const std::vector<uint8_t> bytes = w.Serialize();
  auto f = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE((*f)->tensors().empty());
}

// ---------------------------------------------------------------- corruption

TEST(GgufCorrupt, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = SmallWriter().Serialize();
  ASSERT_TRUE(GgufFile::Parse(full.data(), full.size()).ok());
  // The file ends with the last tensor's padding; truncating inside trailing padding of the
  // last tensor still leaves its bytes in bounds, so find where its data ends.
  auto f = GgufFile::Parse(full.data(), full.size());
  const GgufTensorInfo* last = (*f)->FindTensor("b.weight");
  const size_t needed = static_cast<size_t>(last->data - full.data()) + last->nbytes;
  for (size_t len = 0; len < needed; ++len) {
    // A fresh heap copy of exactly `len` bytes so ASan catches any read past the end.
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
    auto r = GgufFile::Parse(cut.data(), cut.size());
    ASSERT_FALSE(r.ok()) << "truncated at " << len;
    EXPECT_TRUE(r.status().code() == StatusCode::kDataLoss) << len << ": " << r.status().ToString();
    EXPECT_TRUE(Contains(r.status().message(), "gguf: ")) << r.status().message();
  }
}

TEST(GgufCorrupt, TruncationMessageNamesKeyAndElement) {
  std::vector<uint8_t> bytes = SmallWriter().Serialize();
  const size_t at = Find(bytes, "world");  // tokens[3]
  bytes.resize(at + 2);
  auto r = GgufFile::Parse(bytes.data(), bytes.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(r.status().message(), "key #2 ('tokenizer.ggml.tokens') array element 3"))
      << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), "file size " + std::to_string(at + 2)))
      << r.status().message();
}

TEST(GgufCorrupt, RandomBitFlipsNeverCrash) {
  const std::vector<uint8_t> full = SmallWriter().Serialize();
  std::mt19937 rng(123);
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    auto r = GgufFile::Parse(b.data(), b.size());
    if (r.ok()) {
      for (const GgufTensorInfo& t : (*r)->tensors()) {
        ASSERT_GE(t.data, b.data());
        ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
      }
    } else {
      ASSERT_FALSE(r.status().message().empty());
    }
  }
}

struct Corruption {
  std::string name;
  std::function<void(std::vector<uint8_t>&)> mutate;
  StatusCode code;
  std::string message_part;
};

TEST(GgufCorrupt, CorruptFieldsAreNamed) {
  const std::vector<uint8_t> base = SmallWriter().Serialize();
  // Offsets of fields in the SmallWriter file.
  const size_t tokens_key = Find(base, "tokenizer.ggml.tokens");
  const size_t tokens_count = tokens_key + 21 + 4 + 4;  // key bytes, value type, elem type
  const size_t first_token_len = tokens_count + 8;
  const size_t a_name = Find(base, "a.weight");
  const size_t a_ndims = a_name + 8;
  const size_t a_dim0 = a_ndims + 4;
  const size_t a_type = a_dim0 + 16;
  const size_t a_offset = a_type + 4;
  const size_t b_name = Find(base, "b.weight");
  const size_t b_offset = b_name + 8 + 4 + 8 + 4;

  const std::vector<Corruption> cases = {
      {"bad magic", [](auto& b) { b[0] = 'X'; }, StatusCode::kInvalidArgument, "not a GGUF file"},
      {"version 1", [](auto& b) { Poke<uint32_t>(b, 4, 1); }, StatusCode::kUnimplemented,
       "version 1 is not supported"},
      {"version 7", [](auto& b) { Poke<uint32_t>(b, 4, 7); }, StatusCode::kUnimplemented,
       "unsupported GGUF version 7"},
      {"big endian", [](auto& b) { Poke<uint32_t>(b, 4, 0x03000000u); }, StatusCode::kUnimplemented,
       "big-endian"},
      {"huge tensor count", [](auto& b) { Poke<uint64_t>(b, 8, 1ull << 60); }, StatusCode::kDataLoss,
       "tensor_count 1152921504606846976"},
      {"huge kv count", [](auto& b) { Poke<uint64_t>(b, 16, ~0ull); }, StatusCode::kDataLoss,
       "metadata_kv_count"},
      {"huge key length", [](auto& b) { Poke<uint64_t>(b, 24, 1ull << 62); }, StatusCode::kDataLoss,
       "key #0 name: string length 4611686018427387904 exceeds"},
      {"huge array length", [=](auto& b) { Poke<uint64_t>(b, tokens_count, ~0ull >> 1); },
       StatusCode::kDataLoss, "key #2 ('tokenizer.ggml.tokens'): array length 9223372036854775807"},
      {"huge string in array", [=](auto& b) { Poke<uint64_t>(b, first_token_len, 1ull << 40); },
       StatusCode::kDataLoss, "key #2 ('tokenizer.ggml.tokens') array element 0: string length"},
      {"bad value type", [=](auto& b) { Poke<uint32_t>(b, tokens_key + 21, 13); },
       StatusCode::kDataLoss, "key #2 ('tokenizer.ggml.tokens'): invalid value type 13"},
      {"bad array elem type", [=](auto& b) { Poke<uint32_t>(b, tokens_key + 25, 99); },
       StatusCode::kDataLoss, "invalid array element type 99"},
      {"n_dims 99", [=](auto& b) { Poke<uint32_t>(b, a_ndims, 99); }, StatusCode::kDataLoss,
       "tensor #0 ('a.weight'): n_dims 99 exceeds the maximum 4"},
      {"negative dim", [=](auto& b) { Poke<uint64_t>(b, a_dim0, ~0ull); }, StatusCode::kDataLoss,
       "tensor #0 ('a.weight'): dim 0"},
      {"shape overflow", [=](auto& b) {
         Poke<uint64_t>(b, a_dim0, 1ull << 40);
         Poke<uint64_t>(b, a_dim0 + 8, 1ull << 40);
       }, StatusCode::kDataLoss, "tensor #0 ('a.weight'): shape overflows"},
      {"unknown type id", [=](auto& b) { Poke<uint32_t>(b, a_type, 77); }, StatusCode::kDataLoss,
       "tensor #0 ('a.weight'): unknown GGML type id 77"},
      {"unsupported type", [=](auto& b) { Poke<uint32_t>(b, a_type, 15); },
       StatusCode::kUnimplemented, "tensor 'a.weight' has type q8_K"},
      {"misaligned offset", [=](auto& b) { Poke<uint64_t>(b, a_offset, 3); }, StatusCode::kDataLoss,
       "tensor #0 ('a.weight'): data offset 3 is not a multiple of the alignment 32"},
      {"offset past end", [=](auto& b) { Poke<uint64_t>(b, b_offset, 1ull << 20); },
       StatusCode::kDataLoss, "tensor 'b.weight' data [offset"},
      {"offset overflow", [=](auto& b) { Poke<uint64_t>(b, b_offset, ~0ull - 31); },
       StatusCode::kDataLoss, "extends past end of file"},
      {"overlapping tensors", [=](auto& b) { Poke<uint64_t>(b, b_offset, 32); },
       StatusCode::kDataLoss, "tensor 'b.weight' data at offset 32 overlaps tensor 'a.weight'"},
      {"row not multiple of block", [=](auto& b) { Poke<uint64_t>(b, b_name + 12, 48); },
       StatusCode::kDataLoss, "tensor #1 ('b.weight'): shape [48] row length 48 is not a multiple"},
  };
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> b = base;
    c.mutate(b);
    auto r = GgufFile::Parse(b.data(), b.size());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status().message(), c.message_part)) << r.status().message();
  }
  EXPECT_TRUE(Contains(SupportedGgmlTypeNames(), "q4_K"));
}

TEST(GgufCorrupt, UnsupportedTypeMessageListsSupported) {
  GgufWriter w;
  w.AddTensor("x", GgmlType::kQ8_K, {256}, std::vector<uint8_t>(292));
  const std::vector<uint8_t> b = w.Serialize();
  auto r = GgufFile::Parse(b.data(), b.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(r.status().message(), "'x' has type q8_K")) << r.status().message();
  EXPECT_TRUE(Contains(r.status().message(), SupportedGgmlTypeNames())) << r.status().message();
}

TEST(GgufCorrupt, DuplicateNamesAreErrors) {
  {
    GgufWriter w;
    w.AddUint32("k", 1);
    w.AddUint32("k", 2);
    const std::vector<uint8_t> b = w.Serialize();
    auto r = GgufFile::Parse(b.data(), b.size());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(Contains(r.status().message(), "duplicate metadata key #1 ('k')")) << r.status().message();
  }
  {
    GgufWriter w;
    w.AddTensor("t", GgmlType::kF32, {1}, std::vector<uint8_t>(4));
    w.AddTensor("t", GgmlType::kF32, {1}, std::vector<uint8_t>(4));
    const std::vector<uint8_t> b = w.Serialize();
    auto r = GgufFile::Parse(b.data(), b.size());
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(Contains(r.status().message(), "duplicate tensor name in tensor #1 ('t')"))
        << r.status().message();
  }
}

TEST(GgufCorrupt, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufWriter w;
    w.AddUint32("general.alignment", a);
    const std::vector<uint8_t> b = w.Serialize();
    auto r = GgufFile::Parse(b.data(), b.size());
    ASSERT_FALSE(r.ok()) << a;
    EXPECT_TRUE(Contains(r.status().message(), "general.alignment")) << r.status().message();
  }
  {
    GgufWriter ok;  // a uint64 alignment is read too
    ok.Add("general.alignment", {GgufType::kUint64, uint64_t{64}});
    ok.AddTensor("t", GgmlType::kF32, {3}, std::vector<uint8_t>(12));
    const std::vector<uint8_t> b = ok.Serialize(64);
    auto r = GgufFile::Parse(b.data(), b.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->alignment(), 64u);
  }
  GgufWriter w;
  w.AddString("general.alignment", "32");
  const std::vector<uint8_t> b = w.Serialize();
  auto r = GgufFile::Parse(b.data(), b.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(GgufCorrupt, DeeplyNestedArrayIsRejected) {
  GgufArray a;
  a.elem_type = GgufType::kUint8;
  for (int i = 0; i < 20; ++i) {
    GgufArray outer;
    outer.elem_type = GgufType::kArray;
    outer.arrays.push_back(std::move(a));
    a = std::move(outer);
  }
  GgufWriter w;
  w.Add("deep", {GgufType::kArray, a});
  const std::vector<uint8_t> b = w.Serialize();
  auto r = GgufFile::Parse(b.data(), b.size());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "nested deeper")) << r.status().message();
}

}  // namespace
}  // namespace inferd
