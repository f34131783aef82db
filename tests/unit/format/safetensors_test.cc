#include "format/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace inferd {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary);
  out << s;
}

// A safetensors file from a raw header string and data bytes.
std::vector<uint8_t> RawFile(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> f(8 + header.size() + data_bytes, 0xAB);
  const uint64_t n = header.size();
  std::memcpy(f.data(), &n, 8);
  std::memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

bool Contains(const std::string& h, const std::string& n) { return h.find(n) != std::string::npos; }

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("inferd_st_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SafetensorsTest, WriteReadRoundTrip) {
  const std::vector<StWriteTensor> tensors = {
      {"model.embed_tokens.weight", StDtype::kBF16, {5, 3}, Bytes(30, 1)},
      {"model.norm.weight", StDtype::kF32, {3}, Bytes(12, 2)},
      {"lm_head.weight", StDtype::kF16, {1, 5, 3}, Bytes(30, 3)},
      {"empty", StDtype::kF32, {0, 4}, {}},
  };
  const std::string path = (dir_ / "x.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());

  auto m = SafetensorsModel::Open(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->tensors().size(), 4u);
  EXPECT_EQ((*m)->metadata().at("format"), "pt");
  const std::vector<uint8_t> file = ReadAll(path);
  uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  for (const StWriteTensor& w : tensors) {
    SCOPED_TRACE(w.name);
    const StTensor* t = (*m)->Find(w.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, w.dtype);
    EXPECT_EQ(t->shape, w.shape);
    ASSERT_EQ(t->nbytes, w.bytes.size());
    if (t->nbytes > 0) {
      EXPECT_EQ(0, std::memcmp(t->data, w.bytes.data(), t->nbytes));
      EXPECT_EQ(static_cast<size_t>(t->data - (*m)->Find(tensors[0].name)->data) % 8, 0u);
    }
  }
  EXPECT_EQ((*m)->Find("model.norm.weight")->dtype_name, "F32");
  EXPECT_EQ((*m)->Find("nope"), nullptr);

  // A directory with model.safetensors opens the same way.
  fs::create_directories(dir_ / "single");
  fs::copy_file(path, dir_ / "single" / "model.safetensors");
  auto d = SafetensorsModel::Open((dir_ / "single").string());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->tensors().size(), 4u);
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  EXPECT_FALSE(WriteSafetensors((dir_ / "a").string(), {{"t", StDtype::kF32, {3}, Bytes(8, 0)}}).ok());
  EXPECT_FALSE(WriteSafetensors((dir_ / "b").string(), {{"t", StDtype::kI8, {3}, Bytes(3, 0)}}).ok());
  EXPECT_FALSE(WriteSafetensors((dir_ / "c").string(), {{"t", StDtype::kF32, {1}, Bytes(4, 0)},
                                                        {"t", StDtype::kF32, {1}, Bytes(4, 0)}})
                   .ok());
}

TEST_F(SafetensorsTest, ShardedIndex) {
  ASSERT_TRUE(WriteSafetensors((dir_ / "model-00001-of-00002.safetensors").string(),
                               {{"a", StDtype::kF32, {2}, Bytes(8, 1)}, {"b", StDtype::kF16, {2}, Bytes(4, 2)}})
                  .ok());
  ASSERT_TRUE(WriteSafetensors((dir_ / "model-00002-of-00002.safetensors").string(),
                               {{"c", StDtype::kBF16, {4}, Bytes(8, 3)}})
                  .ok());
  WriteAll((dir_ / "model.safetensors.index.json").string(),
           R"({"metadata": {"total_size": 20}, "weight_map": {
                "a": "model-00001-of-00002.safetensors",
                "b": "model-00001-of-00002.safetensors",
                "c": "model-00002-of-00002.safetensors"}})");
  auto m = SafetensorsModel::Open(dir_.string());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->tensors().size(), 3u);
  EXPECT_EQ((*m)->Find("c")->dtype, StDtype::kBF16);
  EXPECT_EQ(0, std::memcmp((*m)->Find("c")->data, Bytes(8, 3).data(), 8));
  EXPECT_EQ((*m)->metadata().at("total_size"), "20");

  // Index naming a tensor that its shard lacks.
  WriteAll((dir_ / "model.safetensors.index.json").string(),
           R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                              "b": "model-00001-of-00002.safetensors",
                              "c": "model-00002-of-00002.safetensors",
                              "d": "model-00002-of-00002.safetensors"}})");
  m = SafetensorsModel::Open(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "tensor 'd'")) << m.status().message();

  // Tensor present in a shard but not in the index.
  WriteAll((dir_ / "model.safetensors.index.json").string(),
           R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                              "c": "model-00002-of-00002.safetensors"}})");
  m = SafetensorsModel::Open(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "tensor 'b'")) << m.status().message();

  // Missing shard file, path traversal, bad JSON, no weight_map.
  WriteAll((dir_ / "model.safetensors.index.json").string(), R"({"weight_map": {"a": "gone.safetensors"}})");
  m = SafetensorsModel::Open(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  WriteAll((dir_ / "model.safetensors.index.json").string(), R"({"weight_map": {"a": "../x"}})");
  EXPECT_FALSE(SafetensorsModel::Open(dir_.string()).ok());
  WriteAll((dir_ / "model.safetensors.index.json").string(), R"({"weight_map": )");
  EXPECT_FALSE(SafetensorsModel::Open(dir_.string()).ok());
  WriteAll((dir_ / "model.safetensors.index.json").string(), R"({"metadata": {}})");
  m = SafetensorsModel::Open(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "weight_map")) << m.status().message();
}

TEST_F(SafetensorsTest, EmptyDirectoryIsNotFound) {
  auto m = SafetensorsModel::Open(dir_.string());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
}

struct BadHeader {
  std::string header;
  size_t data_bytes;
  std::string message_part;
};

TEST(SafetensorsCorrupt, HeaderValidation) {
  const std::vector<BadHeader> cases = {
      {"not json", 0, "header is not a JSON object"},
      {"{\"a\": ", 0, "not valid JSON"},
      {"[1, 2]", 0, "not a JSON object"},
      {R"({"w": 5})", 0, "tensor 'w' entry is not a JSON object"},
      {R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, "'dtype' is missing"},
      {R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}})", 4, "unknown dtype 'Q4'"},
      {R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, "'shape' is missing"},
      {R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4, "not a non-negative"},
      {R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4, "not a non-negative"},
      {R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}})",
       4, "overflows"},
      {R"({"w": {"dtype": "F32", "shape": [1]}})", 4, "'data_offsets' must be"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4, "'data_offsets' must be"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4, "outside the data"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", 4, "outside the data"},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4,
       "data_offsets span 4 bytes but dtype F32 and shape of 2 elements need 8"},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})", 8,
       "tensor 'b' data overlaps tensor 'a'"},
      {R"({"__metadata__": {"a": 1}})", 0, "__metadata__ value for 'a' is not a string"},
      {R"({"__metadata__": []})", 0, "__metadata__ is not an object"},
  };
  for (const BadHeader& c : cases) {
    SCOPED_TRACE(c.header);
    const std::vector<uint8_t> f = RawFile(c.header, c.data_bytes);
    auto m = SafetensorsModel::Parse(f.data(), f.size());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m.status().message(), c.message_part)) << m.status().message();
  }
  // Header length larger than the file, and a file shorter than the length field.
  std::vector<uint8_t> f = RawFile(R"({})", 0);
  const uint64_t huge = 1ull << 40;
  std::memcpy(f.data(), &huge, 8);
  auto m = SafetensorsModel::Parse(f.data(), f.size());
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "header length 1099511627776")) << m.status().message();
  m = SafetensorsModel::Parse(f.data(), 5);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(Contains(m.status().message(), "too short")) << m.status().message();
}

TEST(SafetensorsCorrupt, EveryTruncationAndBitFlip) {
  const std::string path = ::testing::TempDir() + "/inferd_st_trunc.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"a", StDtype::kF32, {2, 2}, Bytes(16, 1)},
                                      {"b", StDtype::kBF16, {3}, Bytes(6, 2)}})
                  .ok());
  const std::vector<uint8_t> full = ReadAll(path);
  fs::remove(path);
  ASSERT_TRUE(SafetensorsModel::Parse(full.data(), full.size()).ok());
  // The last tensor's bytes end the file, so every shorter prefix must fail.
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
    auto m = SafetensorsModel::Parse(cut.data(), cut.size());
    ASSERT_FALSE(m.ok()) << len;
    EXPECT_EQ(m.status().code(), StatusCode::kDataLoss);
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> b = full;
    b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    auto m = SafetensorsModel::Parse(b.data(), b.size());
    if (!m.ok()) continue;
    for (const auto& [name, t] : (*m)->tensors()) {
      ASSERT_GE(t.data, b.data());
      ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
    }
  }
}

}  // namespace
}  // namespace inferd
