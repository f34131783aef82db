// AWQ / GPTQ quantization configs and --quantization against them (model/hf_quant.h).
#include "model/hf_quant.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "util/json.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

bool Contains(const std::string& h, const std::string& n) { return h.find(n) != std::string::npos; }

StatusOr<HfQuantConfig> Parse(const char* text, const std::string& hint = "") {
  auto j = ParseJson(text, "test");
  EXPECT_TRUE(j.ok());
  return ParseHfQuantConfig(*j, "config.json 'quantization_config'", hint);
}

std::string Error(const char* text, const std::string& hint = "") {
  auto q = Parse(text, hint);
  EXPECT_FALSE(q.ok()) << text;
  return q.ok() ? std::string() : q.status().message();
}

TEST(HfQuant, TransformersAwqAndGptq) {
  auto awq = Parse(R"({"bits": 4, "group_size": 128, "modules_to_not_convert": ["visual"], "quant_method": "awq",
                       "version": "gemm", "zero_point": true})");
  ASSERT_TRUE(awq.ok()) << awq.status().ToString();
  EXPECT_EQ(awq->method, "awq");
  EXPECT_EQ(awq->group_size, 128);
  EXPECT_EQ(awq->modules_to_not_convert, std::vector<std::string>{"visual"});
  EXPECT_EQ(awq->Describe(), "awq 4-bit, group 128");
  auto gptq = Parse(R"({"bits": 4, "group_size": -1, "desc_act": false, "sym": true, "quant_method": "gptq",
                        "checkpoint_format": "gptq_v2", "damp_percent": 0.01, "dynamic": {}})");
  ASSERT_TRUE(gptq.ok()) << gptq.status().ToString();
  EXPECT_TRUE(gptq->gptq_v2);
  EXPECT_EQ(gptq->Describe(), "gptq 4-bit, one group per row, gptq_v2");
}

TEST(HfQuant, FilesWithoutQuantMethod) {
  // AutoAWQ's quant_config.json; AutoGPTQ's quantize_config.json.
  auto awq = Parse(R"({"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})");
  ASSERT_TRUE(awq.ok()) << awq.status().ToString();
  EXPECT_EQ(awq->method, "awq");
  auto gptq = Parse(R"({"bits": 4, "group_size": 128, "desc_act": false, "sym": false, "true_sequential": true})");
  ASSERT_TRUE(gptq.ok()) << gptq.status().ToString();
  EXPECT_EQ(gptq->method, "gptq");
  EXPECT_FALSE(gptq->gptq_v2);
  // Neither tool's keys: --quantization decides, else an error.
  EXPECT_EQ(Parse(R"({"bits": 4, "group_size": 128})", "gptq")->method, "gptq");
  EXPECT_TRUE(Contains(Error(R"({"bits": 4, "group_size": 128})"), "pass --quantization awq or --quantization gptq"));
}

TEST(HfQuant, RefusedByName) {
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": false})"),
                       "GPTQ with 8-bit weights ('bits': 8) is not supported"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 3, "group_size": 128})"), "3-bit"));
  EXPECT_TRUE(Contains(Error(R"({"zero_point": true, "q_group_size": 128, "w_bit": 2, "version": "GEMM"})"),
                       "AWQ with 2-bit weights ('w_bit': 2)"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": true})"),
                       "'desc_act': true (act-order"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"})"),
                       "AWQ 'version': 'gemv' is not supported"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": false})"),
                       "'zero_point': false"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 4, "group_size": 64})"), "'group_size': 64"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 4, "group_size": 128, "is_marlin_format": true})"),
                       "Marlin"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "gptq", "bits": 4, "group_size": 128,
                                 "dynamic": {"-:.*down": {}}})"), "'dynamic'"));
  EXPECT_TRUE(Contains(Error(R"({"quant_method": "fp8"})"), "quant_method 'fp8' is not supported"));
}

TEST(HfQuant, QuantizationArgument) {
  HfQuantConfig awq;
  awq.method = "awq";
  awq.source = "config.json 'quantization_config'";
  EXPECT_TRUE(CheckQuantizationArgument("", &awq, "'d'").ok());
  EXPECT_TRUE(CheckQuantizationArgument("none", &awq, "'d'").ok());
  EXPECT_TRUE(CheckQuantizationArgument("awq", &awq, "'d'").ok());
  EXPECT_TRUE(CheckQuantizationArgument("int8", nullptr, "'d'").ok());
  const Status mismatch = CheckQuantizationArgument("gptq", &awq, "'d'");
  EXPECT_TRUE(Contains(mismatch.message(), "quantization method specified in the model config (awq, config.json "
                                           "'quantization_config') does not match the one specified with "
                                           "--quantization (gptq)"))
      << mismatch.message();
  const Status int4 = CheckQuantizationArgument("int4", &awq, "'d'");
  EXPECT_TRUE(Contains(int4.message(), "--quantization int4 quantizes fp16/bf16/fp32 weights at load, but 'd' is "
                                       "already quantized (awq 4-bit, group 128"))
      << int4.message();
  EXPECT_TRUE(Contains(CheckQuantizationArgument("awq", nullptr, "'d'").message(),
                       "--quantization awq: 'd' is not a pre-quantized checkpoint"));
}

TEST(HfQuant, ConfigLocations) {
  const fs::path dir = fs::path(::testing::TempDir()) / "inferd_hf_quant_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
  write("config.json", R"({"architectures": ["LlamaForCausalLM"]})");
  auto none = LoadHfQuantConfig(dir.string(), "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  write("quantize_config.json", R"({"bits": 4, "group_size": 128, "desc_act": false, "sym": true})");
  auto file = LoadHfQuantConfig(dir.string(), "");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->method, "gptq");
  EXPECT_EQ((*file)->source, "quantize_config.json");
  write("quant_config.json", R"({"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})");
  EXPECT_TRUE(Contains(LoadHfQuantConfig(dir.string(), "").status().message(), "has both quant_config.json and "
                                                                               "quantize_config.json"));
  // config.json's quantization_config comes first.
  write("config.json", R"({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}})");
  auto cfg = LoadHfQuantConfig(dir.string(), "");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ((*cfg)->method, "awq");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace inferd
