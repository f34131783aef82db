// What to load and how to size the engine: vLLM's EngineArgs, as plain data. The CLI flags,
// the Python LLM(...) arguments and in-process users fill one EngineArgs and hand it to
// Engine::Create (inferd/engine.h). Every field is used or rejected with an error that names it.
#pragma once

#include <cstdint>
#include <string>

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

namespace spec {

// vLLM's speculative-config fields for the ngram method.
struct NgramConfig {
  int prompt_lookup_min = 1;       // shortest suffix to look up
  int prompt_lookup_max = 4;       // longest suffix to look up (tried first)
  int num_speculative_tokens = 4;  // at most this many proposed tokens
};

// vLLM's speculative-config fields for the suffix method (their suffix_decoding_ names).
struct SuffixConfig {
  int max_tree_depth = 24;           // suffix_decoding_max_tree_depth: match + proposal length
  int max_cached_requests = 10000;   // suffix_decoding_max_cached_requests: 0 = no global tree
  float max_spec_factor = 1.0f;      // suffix_decoding_max_spec_factor
  float max_spec_offset = 0.0f;      // Arctic's speculate(max_spec_offset); vLLM leaves it 0
  float min_token_prob = 0.1f;       // suffix_decoding_min_token_prob
  int num_speculative_tokens = 24;   // cap per step; vLLM defaults it to max_tree_depth
};

// `--speculative-config` parsed (spec/spec_config.h parses and checks the JSON).
struct SpeculativeConfig {
  std::string method;  // "" (speculation off) | "ngram" | "suffix" | "draft_model"
  int num_speculative_tokens = 0;  // most tokens proposed per step
  NgramConfig ngram;               // method ngram
  SuffixConfig suffix;             // method suffix
  std::string draft_model;         // method draft_model: the draft's path (same tokenizer)
  // vLLM's disable_by_batch_size: no speculation in a step while more than this many requests
  // are running (0: no limit).
  int disable_by_batch_size = 0;
  // inferd's own field "adaptive" (default true): speculation turns itself off while it
  // measures slower than decoding without it (engine/spec_controller.h); false speculates
  // on every step (timing-independent, as tests need).
  bool adaptive = true;
  bool enabled() const { return !method.empty(); }
};

}  // namespace spec

struct EngineOptions {
  int64_t block_size = 16;
  int64_t kv_cache_bytes = 0;            // 0: default (1 GiB, at least one max-length sequence)
  int64_t max_model_len = 0;             // 0: the model's context length
  int64_t max_num_batched_tokens = 512;  // token budget per step
  int64_t max_num_seqs = 64;
  bool enable_prefix_caching = true;
  std::string scheduling_policy = "fcfs";  // fcfs | priority
  uint64_t seed = 0;                     // seeds requests that have no seed of their own
  std::string kv_cache_dtype = "auto";   // auto | float32 | float16 | int8 | fp8 ... (kv/kv_cache.h ParseKvDtype)
  std::string device = "auto";           // auto | cpu | cuda | cuda:N (backend/backend.h)
  std::string dtype = "auto";            // GPU compute dtype: auto | float16 | bfloat16 | float32
  double gpu_memory_utilization = 0.9;   // fraction of GPU memory for weights, activations and KV
  bool enforce_eager = false;            // no CUDA graphs
  spec::SpeculativeConfig speculative;   // parsed from EngineArgs::speculative_config
};

// Everything Engine::Create needs. The text fields are parsed by ResolveEngineArgs, which
// Create calls (callers that want flag errors before loading call it first themselves).
struct EngineArgs {
  LoadOptions load;
  EngineOptions engine;
  std::string kv_cache_memory;     // "512MiB", "2GiB", bytes; "" keeps engine.kv_cache_bytes
  std::string speculative_config;  // vLLM's --speculative-config JSON; "" keeps engine.speculative
  int threads = 0;                 // CPU worker threads for the whole process; 0: one per core
};

}  // namespace inferd
