// Loading a model (GGUF file, Hugging Face directory, or dummy weights at a real shape)
// into a ModelConfig + ModelWeights + Tokenizer.
#pragma once

#include <memory>
#include <string>

#include "format/hf_config.h"
#include "inferd/engine_args.h"
#include "inferd/status.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace inferd {

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
