// Loading a model (GGUF file, Hugging Face directory, or dummy weights at a real shape)
// into a ModelConfig + ModelWeights + Tokenizer.
#pragma once

#include <memory>
#include <string>

#include "format/hf_config.h"
#include "inferd/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

struct LoadOptions {
  // A .gguf file, a HF directory, or with load_format "dummy": a named shape
  // (llama-2-7b, llama-3-8b, smollm2-135m), a config.json, or a directory holding one.
  std::string model;
  std::string load_format = "auto";  // auto | gguf | safetensors | pt | dummy (vLLM's names)
  std::string tokenizer;             // overrides where the tokenizer comes from
  // Weight type for dummy weights: auto (f16) | float32 | float16 | bfloat16 | q4_0 | q4_1 | q8_0
  std::string dtype = "auto";
  uint64_t seed = 0;                 // dummy weights are a pure function of the seed
  // vLLM's --quantization: "" / "none" keeps the weights as stored (an AWQ / GPTQ checkpoint
  // is detected from its quantization config); "awq" / "gptq" name the method of a
  // pre-quantized Hugging Face checkpoint and must match it (model/hf_quant.h); "int8" /
  // "int4" quantize every layer matrix of an fp32/fp16/bf16 model at load (embedding and LM
  // head stay; model/quantize.h), an error on a pre-quantized checkpoint.
  std::string quantization;
  // vLLM's --trust-remote-code. inferd never runs Python from a model directory: the family
  // comes from config.json (architectures, model_type), so the flag only logs that.
  bool trust_remote_code = false;
};

struct LoadedModel {
  ModelConfig config;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;
  GenerationDefaults generation;
  std::string format;  // "gguf" | "safetensors" | "pytorch" | "dummy"
  std::string path;
  std::string weight_type;  // dominant weight type name, for logs
};

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const LoadOptions& options);

// Named dummy shapes, for error messages.
const char* DummyShapeNames();

// Implementation pieces (model/loader_*.cc).
StatusOr<std::unique_ptr<LoadedModel>> LoadGgufModel(const std::string& path);
// weights: "auto" (*.safetensors when present, else pytorch_model.bin), "safetensors" or "pt".
// quantization: LoadOptions::quantization, checked against the checkpoint's quantization
// config (an AWQ / GPTQ directory loads its int4 layers as I4Z128 rows).
StatusOr<std::unique_ptr<LoadedModel>> LoadHfModel(const std::string& dir, const std::string& weights = "auto",
                                                    const std::string& quantization = "");
StatusOr<std::unique_ptr<LoadedModel>> LoadDummyModel(const LoadOptions& options);
// Shape checks shared by the loaders: every matrix has the shape the config implies.
Status CheckWeightShapes(const ModelConfig& config, const ModelWeights& weights);

}  // namespace inferd
