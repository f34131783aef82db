#include "cli/common.h"

#include <cstdio>
#include <cstdlib>

#include "util/logging.h"
#include "util/thread_pool.h"

namespace inferd::cli {

std::string DefaultModelPath() {
  if (const char* env = std::getenv("INFERD_MODEL"); env && *env) return env;
  std::string cache;
  if (const char* c = std::getenv("INFERD_CACHE_DIR"); c && *c) {
    cache = c;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home ? home : ".") + "/.cache/inferd";
  }
  return cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

void ModelFlags::Add(CLI::App* app, bool engine_flags) {
  load.model = DefaultModelPath();
  app->add_option("--model,-m", load.model, "GGUF file, Hugging Face directory, or dummy shape")
      ->capture_default_str();
  app->add_option("--load-format", load.load_format, "auto | gguf | safetensors | pt (pytorch_model.bin) | dummy")->capture_default_str();
  app->add_option("--tokenizer", load.tokenizer, "tokenizer source (GGUF file or HF directory)");
  app->add_option("--dtype", load.dtype,
                  "GPU compute dtype: auto | float16 | bfloat16 | float32; for dummy weights also their type "
                  "(or q4_0 | q4_1 | q8_0)")
      ->capture_default_str();
  app->add_option("--quantization,-q", load.quantization,
                  "weight-only quantization of fp16/bf16/fp32 weights at load: int8 | int4 | none; or awq | gptq: "
                  "the method of a pre-quantized Hugging Face checkpoint (detected from its quantization config; "
                  "must match it)");
  app->add_option("--threads", threads, "CPU threads (0 = all cores)")->capture_default_str();
  app->add_flag("--trust-remote-code", load.trust_remote_code,
                "accepted as in vLLM; has no effect: inferd runs no code from model directories (logged once)");
  if (engine_flags) {
    app->add_option("--max-model-len", engine.max_model_len, "maximum tokens per sequence (0 = model's)");
    app->add_option("--block-size", engine.block_size, "KV cache block size in tokens")->capture_default_str();
    app->add_option("--kv-cache-memory", kv_cache_memory, "KV cache size, e.g. 512MiB, 2GiB");
    app->add_option("--kv-cache-dtype", engine.kv_cache_dtype,
                    "KV cache element type: auto (fp32 for fp32 weights, else fp16), float16, float32, "
                    "bfloat16 (CUDA), fp8 (= fp8_e4m3), fp8_e4m3, fp8_e5m2, int8 (1-byte codes with a scale "
                    "per token and head; CPU)")
        ->capture_default_str();
    app->add_option("--max-num-batched-tokens", engine.max_num_batched_tokens, "token budget per step")
        ->capture_default_str();
    app->add_option("--max-num-seqs", engine.max_num_seqs, "maximum running sequences")->capture_default_str();
    app->add_option("--seed", engine.seed, "seed for requests without their own")->capture_default_str();
    app->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", engine.enable_prefix_caching,
                  "reuse KV blocks of common prompt prefixes (default on)");
    app->add_option("--scheduling-policy", engine.scheduling_policy, "fcfs | priority")->capture_default_str();
    app->add_option("--device", engine.device, "auto (a CUDA GPU when built with CUDA and present) | cpu | cuda | cuda:N")
        ->capture_default_str();
    app->add_option("--gpu-memory-utilization", engine.gpu_memory_utilization,
                    "fraction of GPU memory for weights, activations and the KV cache")
        ->capture_default_str();
    app->add_flag("--enforce-eager", engine.enforce_eager, "no CUDA graphs: launch every kernel of every step");
    app->add_option("--speculative-config", speculative_config,
                    "speculative decoding, as JSON with vLLM's fields: {\"method\": \"ngram\", "
                    "\"num_speculative_tokens\": 4, \"prompt_lookup_min\": 2, \"prompt_lookup_max\": 5} or "
                    "{\"method\": \"suffix\", ...} (docs/speculative-decoding.md)");
  }
}

StatusOr<std::unique_ptr<LoadedModel>> LoadFromFlags(ModelFlags& flags) {
  InitLogging();
  if (flags.threads != 0) ThreadPool::SetGlobalThreads(flags.threads);
  return LoadModel(flags.load);
}

StatusOr<std::unique_ptr<Engine>> EngineFromFlags(const ModelFlags& flags) {
  InitLogging();
  return Engine::Create(flags);
}

void Fail(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  ExitCode() = 1;
}

int& ExitCode() {
  static int code = 0;
  return code;
}

}  // namespace inferd::cli
