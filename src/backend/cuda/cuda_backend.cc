// The CUDA backend (docs/cuda-backend.md): the Llama-family forward pass on one NVIDIA
// GPU over a paged KV cache in device memory.
//
// Per step: the host plans the batch (backend/batch_plan.h), copies the metadata in one
// transfer, and enqueues on one stream:
//   Embedding -> per layer [AddRmsNorm -> QKV GEMM (+bias) -> RoPE -> WriteKv ->
//   PagedAttention -> O GEMM -> AddRmsNorm -> gate/up GEMM -> SiluMul -> down GEMM] ->
//   AddRmsNorm (last residual) -> GatherRmsNorm (logits rows) -> LM head GEMM (fp32 out)
// and copies the logits back. Decode-only batches up to the largest captured size replay
// a CUDA graph of the same sequence, captured once per batch-size bucket at start-up.
//
// Memory (backend/memory_plan.h): weights, then every per-step buffer at its largest
// size, then a profiling forward at the largest batch; the KV cache gets the rest of
// gpu_memory_utilization x total.
#include "backend/cuda/cuda_backend_impl.h"

namespace inferd {

StatusOr<int> CudaDeviceCount() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status(StatusCode::kUnavailable, fmt::format("no CUDA device: {} ({})", cudaGetErrorString(e),
                                                        cudaGetErrorName(e)));
  }
  if (n == 0) return Status(StatusCode::kUnavailable, "no CUDA device: cudaGetDeviceCount found none");
  return n;
}

namespace {

constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
// At most this many rows go through the weight-only quantized GEMV kernel; larger batches
// dequantize the matrix into a workspace and use cuBLAS.
constexpr int64_t kQuantGemvMaxTokens = 8;

}  // namespace

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [size, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (meta_host_) cudaFreeHost(meta_host_);
  if (stream_) cudaStreamDestroy(stream_);
  // mem_ frees every device allocation.
}

StatusOr<std::unique_ptr<Backend>> CudaBackend::Create(const LoadedModel& model, const BackendOptions& options,
                                                       int device) {
  std::unique_ptr<CudaBackend> b(new CudaBackend(model, options));
  INFERD_RETURN_IF_ERROR(b->Init(device));
  return std::unique_ptr<Backend>(std::move(b));
}

static StatusOr<KvDtype> GpuKvDtype(const std::string& name, DType dt) {
  const KvDtype model_kv = dt == DType::kF32 ? KvDtype::kF32 : dt == DType::kF16 ? KvDtype::kF16 : KvDtype::kBF16;
  if (name == "auto") return model_kv;
  KvDtype want;
  if (name == "float32" || name == "fp32") want = KvDtype::kF32;
  else if (name == "float16" || name == "fp16" || name == "half") want = KvDtype::kF16;
  else if (name == "bfloat16" || name == "bf16") want = KvDtype::kBF16;
  else if (name == "fp8" || name == "fp8_e4m3" || name == "fp8_e5m2" || name == "int8") {
    return Unimplemented("--kv-cache-dtype " + name + " needs the CPU backend (--device cpu) for now: the CUDA "
                         "attention kernels read float16, bfloat16 or float32 caches only");
  } else {
    return InvalidArgument("unknown --kv-cache-dtype '" + name + "': use " + kKvDtypeNames);
  }
  if (want != model_kv) {
    return Unimplemented(fmt::format("the CUDA backend keeps the KV cache in the model dtype ({}); use "
                                     "--kv-cache-dtype auto or set --dtype to match",
                                     cuda::DTypeName(dt)));
  }
  return want;
}

Status CudaBackend::Init(int device) {
  const ModelConfig& c = model_.config;
  device_ = device;
  INFERD_CUDA_TRY(cudaSetDevice(device));
  INFERD_CUDA_TRY(cudaGetDeviceProperties(&prop_, device));
  if (prop_.major < 8) {
    return Unimplemented(fmt::format("GPU {} has compute capability {}.{}: inferd's CUDA kernels are built for "
                                     "sm_80, sm_89, sm_90 and sm_120 (Ampere and newer)",
                                     prop_.name, prop_.major, prop_.minor));
  }
  INFERD_CUDA_TRY(cudaFree(nullptr));  // creates the context, so that free memory below excludes nothing of ours
  size_t free0 = 0, total = 0;
  INFERD_CUDA_TRY(cudaMemGetInfo(&free0, &total));
  if (options_.kv_cache_bytes <= 0) {
    INFERD_RETURN_IF_ERROR(CheckFreeMemoryAtStart(static_cast<int64_t>(total), static_cast<int64_t>(free0),
                                                  options_.gpu_memory_utilization));
  }
  INFERD_ASSIGN_OR_RETURN(dt_, cuda::ResolveDType(options_.dtype, model_.weights));
  INFERD_RETURN_IF_ERROR(CheckCudaFeatures(c));
  kv_shape_ = options_.kv;
  if (kv_shape_.num_groups() > 1 || kv_shape_.layout.has_windows()) {  // windows are refused above; belt and braces
    return Unimplemented("the CUDA backend has one block table per request: KV-cache groups (sliding-window layers) "
                         "need --device cpu");
  }
  INFERD_ASSIGN_OR_RETURN(kv_shape_.dtype, GpuKvDtype(options_.kv_cache_dtype, dt_));
  if (c.head_dim != 64 && c.head_dim != 80 && c.head_dim != 96 && c.head_dim != 128 && c.head_dim != 256) {
    return Unimplemented(fmt::format("head_dim {} is not supported by the CUDA attention kernels (64, 80, 96, 128, 256)",
                                     c.head_dim));
  }
  report_.device = fmt::format("cuda:{} ({}, sm_{}{})", device, prop_.name, prop_.major, prop_.minor);
  report_.total = static_cast<int64_t>(total);
  INFERD_LOG_INFO("device: {}, {} total, {} free; compute dtype {}", report_.device, FormatBytes(report_.total),
                  FormatBytes(static_cast<int64_t>(free0)), cuda::DTypeName(dt_));

  INFERD_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  INFERD_ASSIGN_OR_RETURN(blas_ws_, mem_.Alloc(kCublasWorkspaceBytes, DeviceMemory::kActivations, "cuBLAS workspace"));
  const char* mode = std::getenv("INFERD_CUDA_GEMM");
  const bool invariant = !(mode && std::string(mode) == "heuristic");
  const char* tune = std::getenv("INFERD_CUDA_GEMM_TUNE_ROWS");
  INFERD_RETURN_IF_ERROR(gemm_.Init(blas_ws_, kCublasWorkspaceBytes, invariant, tune ? std::atoll(tune) : 16));
  INFERD_LOG_INFO("GEMMs: cuBLASLt, {}", invariant ? "one algorithm per shape without split-K (batch-invariant)"
                                                   : "heuristic per batch size (INFERD_CUDA_GEMM=heuristic)");

  const auto t0 = std::chrono::steady_clock::now();
  INFERD_ASSIGN_OR_RETURN(w_, cuda::UploadWeights(c, model_.weights, dt_, mem_));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFERD_LOG_INFO("weights on the GPU: {} in {:.1f} s", FormatBytes(mem_.bytes(DeviceMemory::kWeights)), secs);

  if (!options_.enforce_eager) graph_sizes_ = CudaGraphBatchSizes(options_.max_num_seqs);
  INFERD_RETURN_IF_ERROR(AllocateBuffers());

  // Profile the largest batch with a small temporary KV cache: loads every kernel module
  // and lets cuBLAS settle, so that the memory it takes shows up before the plan.
  const int64_t profile_blocks = (std::min(options_.max_num_batched_tokens, options_.max_model_len) +
                                  kv_shape_.block_size - 1) / kv_shape_.block_size + 1;
  INFERD_RETURN_IF_ERROR(AllocateKvCache(profile_blocks, /*profiling=*/true));
  INFERD_RETURN_IF_ERROR(ProfileRun());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    mem_.Free(k_cache_[l]);
    mem_.Free(v_cache_[l]);
  }
  k_cache_.clear();
  v_cache_.clear();
  INFERD_CUDA_TRY(cudaDeviceSynchronize());
  size_t free1 = 0;
  INFERD_CUDA_TRY(cudaMemGetInfo(&free1, &total));
  const int64_t ours = mem_.total();
  const int64_t other = std::max<int64_t>(0, static_cast<int64_t>(free0) - static_cast<int64_t>(free1) - ours);

  GpuMemoryInput in;
  in.total_bytes = static_cast<int64_t>(total);
  in.free_at_start = static_cast<int64_t>(free0);
  in.utilization = options_.gpu_memory_utilization;
  in.weights_bytes = mem_.bytes(DeviceMemory::kWeights);
  in.activation_bytes = mem_.bytes(DeviceMemory::kActivations);
  in.other_bytes = other;
  in.graph_reserve_bytes = graph_sizes_.empty() ? 0 : (int64_t{16} << 20) + static_cast<int64_t>(graph_sizes_.size()) * (int64_t{2} << 20);
  in.kv_bytes_per_block = kv_shape_.block_size * kv_shape_.bytes_per_token();
  in.requested_kv_bytes = options_.kv_cache_bytes;
  INFERD_ASSIGN_OR_RETURN(GpuMemoryPlan plan, PlanGpuMemory(in));
  INFERD_RETURN_IF_ERROR(AllocateKvCache(plan.num_blocks, /*profiling=*/false));
  kv_shape_.num_blocks = plan.num_blocks;
  INFERD_LOG_INFO("available KV cache memory: {} (budget {} = {} x {}; non-KV {})", FormatBytes(plan.kv_bytes),
                  FormatBytes(plan.budget_bytes), options_.gpu_memory_utilization, FormatBytes(in.total_bytes),
                  FormatBytes(plan.non_kv_bytes));

  size_t free2 = 0;
  INFERD_CUDA_TRY(cudaMemGetInfo(&free2, &total));
  if (!graph_sizes_.empty()) {
    const auto g0 = std::chrono::steady_clock::now();
    INFERD_RETURN_IF_ERROR(CaptureGraphs());
    size_t free3 = 0;
    INFERD_CUDA_TRY(cudaMemGetInfo(&free3, &total));
    report_.cuda_graphs = std::max<int64_t>(0, static_cast<int64_t>(free2) - static_cast<int64_t>(free3));
    INFERD_LOG_INFO("captured {} CUDA graphs (decode batches of 1..{}) in {:.1f} s, {}", graphs_.size(),
                    graph_sizes_.back(),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count(),
                    FormatBytes(report_.cuda_graphs));
  }
  report_.budget = plan.budget_bytes;
  report_.weights = mem_.bytes(DeviceMemory::kWeights);
  report_.kv_cache = mem_.bytes(DeviceMemory::kKvCache);
  report_.activations = mem_.bytes(DeviceMemory::kActivations);
  report_.other = other;
  return Status::OK();
}

Status CudaBackend::AllocateBuffers() {
  const ModelConfig& c = model_.config;
  const int64_t h = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  const int64_t graph_max = graph_sizes_.empty() ? 0 : graph_sizes_.back();
  max_rows_ = std::max({options_.max_num_batched_tokens, options_.max_num_seqs, graph_max});
  max_seqs_ = std::max(options_.max_num_seqs, int64_t{1});
  max_blocks_per_seq_ = (options_.max_model_len + kv_shape_.block_size - 1) / kv_shape_.block_size;
  logits_cap_ = std::min(max_rows_, std::max(options_.max_num_seqs, graph_max));
  qkv_dim_ = qd + 2 * kvd;
  const size_t eb = cuda::DTypeBytes(dt_);
  const size_t R = static_cast<size_t>(max_rows_);
  auto alloc = [&](void** p, size_t bytes, const char* what) -> Status {
    INFERD_ASSIGN_OR_RETURN(*p, mem_.Alloc(bytes, DeviceMemory::kActivations, what));
    return Status::OK();
  };
  INFERD_RETURN_IF_ERROR(alloc(&x_, R * h * eb, "residual"));
  INFERD_RETURN_IF_ERROR(alloc(&xn_, R * h * eb, "normed activations"));
  INFERD_RETURN_IF_ERROR(alloc(&qkv_, R * qkv_dim_ * eb, "qkv"));
  INFERD_RETURN_IF_ERROR(alloc(&attn_, R * qd * eb, "attention output"));
  INFERD_RETURN_IF_ERROR(alloc(&o_, R * h * eb, "projection output"));
  INFERD_RETURN_IF_ERROR(alloc(&gate_up_, R * 2 * ffn * eb, "gate_up"));
  INFERD_RETURN_IF_ERROR(alloc(&act_, R * ffn * eb, "mlp activations"));
  void* logits = nullptr;
  INFERD_RETURN_IF_ERROR(alloc(&logits, static_cast<size_t>(logits_cap_ * c.vocab_size) * sizeof(float), "logits"));
  logits_dev_ = static_cast<float*>(logits);
  if (w_.max_dequant_elems > 0) {
    INFERD_RETURN_IF_ERROR(alloc(&dequant_ws_, static_cast<size_t>(w_.max_dequant_elems) * eb, "dequantize workspace"));
  }
  attn_ws_bytes_ = cuda::AttentionWorkspaceBytes(max_rows_, c.num_heads, c.head_dim, options_.max_model_len);
  INFERD_RETURN_IF_ERROR(alloc(&attn_ws_, attn_ws_bytes_, "attention workspace"));
  // RoPE table in double on the host, as the CPU computes it (LongRoPE's factor set and
  // attention factor included).
  const std::vector<double> inv_freq =
      ops::RopeInvFreq(c, /*local=*/false, model_.weights.rope_freq_factors, options_.max_model_len);
  const double mscale = c.rope_attn_factor;
  const int64_t half = c.head_dim / 2;
  std::vector<float> cs(static_cast<size_t>(options_.max_model_len * half * 2));
  for (int64_t p = 0; p < options_.max_model_len; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(p) * inv_freq[i];
      cs[(p * half + i) * 2] = static_cast<float>(std::cos(theta) * mscale);
      cs[(p * half + i) * 2 + 1] = static_cast<float>(std::sin(theta) * mscale);
    }
  }
  void* table = nullptr;
  INFERD_RETURN_IF_ERROR(alloc(&table, cs.size() * sizeof(float), "RoPE table"));
  cos_sin_ = static_cast<float*>(table);
  INFERD_CUDA_TRY(cudaMemcpy(cos_sin_, cs.data(), cs.size() * sizeof(float), cudaMemcpyHostToDevice));
  sample_ws_bytes_ = cuda::SampleRowsWorkspaceBytes(logits_cap_, c.vocab_size);
  INFERD_RETURN_IF_ERROR(alloc(&sample_ws_, sample_ws_bytes_, "sampling workspace"));
  INFERD_RETURN_IF_ERROR(alloc(&params_dev_, static_cast<size_t>(logits_cap_) * sizeof(cuda::DeviceSampleParams),
                               "sampling parameters"));
  void* ids = nullptr;
  void* lps = nullptr;
  INFERD_RETURN_IF_ERROR(alloc(&ids, static_cast<size_t>(logits_cap_) * sizeof(int32_t), "sampled tokens"));
  INFERD_RETURN_IF_ERROR(alloc(&lps, static_cast<size_t>(logits_cap_) * sizeof(float), "sampled logprobs"));
  tokens_dev_ = static_cast<int32_t*>(ids);
  logprobs_dev_ = static_cast<float*>(lps);
  meta_.Init(max_rows_, max_seqs_, max_blocks_per_seq_);
  INFERD_RETURN_IF_ERROR(alloc(&meta_dev_, meta_.total, "batch metadata"));
  INFERD_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&meta_host_), meta_.total));
  std::memset(meta_host_, 0, meta_.total);
  INFERD_CUDA_TRY(cudaMemset(meta_dev_, 0, meta_.total));
  return Status::OK();
}

Status CudaBackend::AllocateKvCache(int64_t num_blocks, bool profiling) {
  const ModelConfig& c = model_.config;
  const size_t bytes = static_cast<size_t>(num_blocks * kv_shape_.block_size * c.num_kv_heads * c.head_dim *
                                           kv_shape_.elem_bytes());
  const char* what = profiling ? "profiling KV cache" : "KV cache";
  for (int64_t l = 0; l < c.num_layers; ++l) {
    INFERD_ASSIGN_OR_RETURN(void* k, mem_.Alloc(bytes, DeviceMemory::kKvCache, what));
    INFERD_ASSIGN_OR_RETURN(void* v, mem_.Alloc(bytes, DeviceMemory::kKvCache, what));
    k_cache_.push_back(k);
    v_cache_.push_back(v);
  }
  return Status::OK();
}

Status CudaBackend::ProfileRun() {
  const ModelConfig& c = model_.config;
  const int64_t bs = kv_shape_.block_size;
  // One prefill of the whole token budget...
  const int64_t n = std::min(options_.max_num_batched_tokens, options_.max_model_len);
  std::vector<int32_t> table(static_cast<size_t>((n + bs - 1) / bs));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
  ForwardBatch prefill;
  prefill.seqs.push_back(ops::AttnSeq{0, n, n, table.data()});
  for (int64_t i = 0; i < n; ++i) {
    prefill.token_ids.push_back(static_cast<int32_t>(i % c.vocab_size));
    prefill.positions.push_back(static_cast<int32_t>(i));
  }
  prefill.logits_rows.push_back(n - 1);
  std::vector<float> logits(static_cast<size_t>(std::max(options_.max_num_seqs, int64_t{1}) * c.vocab_size));
  INFERD_RETURN_IF_ERROR(Forward(prefill, logits.data()));
  // ... and a decode step of max_num_seqs sequences (all in block 0: values do not matter).
  ForwardBatch decode;
  for (int64_t s = 0; s < options_.max_num_seqs; ++s) {
    decode.seqs.push_back(ops::AttnSeq{s, 1, 1, table.data()});
    decode.token_ids.push_back(static_cast<int32_t>(s % c.vocab_size));
    decode.positions.push_back(0);
    decode.logits_rows.push_back(s);
  }
  return Forward(decode, logits.data());
}

Status CudaBackend::Upload(const DeviceBatchPlan& p) {
  auto put = [&](size_t offset, const void* src, size_t bytes) {
    if (bytes) std::memcpy(meta_host_ + offset, src, bytes);
  };
  put(meta_.token_ids, p.token_ids.data(), p.token_ids.size() * 4);
  put(meta_.positions, p.positions.data(), p.positions.size() * 4);
  put(meta_.row_seq, p.row_seq.data(), p.row_seq.size() * 4);
  put(meta_.decode_rows, p.decode_rows.data(), p.decode_rows.size() * 4);
  put(meta_.prefill_tiles, p.prefill_tiles.data(), p.prefill_tiles.size() * 4);
  put(meta_.logits_rows, p.logits_rows.data(), p.logits_rows.size() * 4);
  put(meta_.block_tables, p.block_tables.data(), p.block_tables.size() * 4);
  put(meta_.slot_mapping, p.slot_mapping.data(), p.slot_mapping.size() * 8);
  INFERD_CUDA_TRY(cudaMemcpyAsync(meta_dev_, meta_host_, meta_.total, cudaMemcpyHostToDevice, stream_));
  return Status::OK();
}

Status CudaBackend::Gemm(const DeviceMatrix& w, const void* x, int64_t num_tokens, void* y, int64_t ldy,
                         bool out_fp32) {
  const void* a = w.data;
  if (w.quantized) {
    if (num_tokens <= kQuantGemvMaxTokens && !out_fp32) {
      INFERD_CUDA_TRY(cuda::QuantMatMul(dt_, w.qtype, w.data, w.rows, w.cols, w.row_bytes, x, num_tokens, y, ldy,
                                        stream_));
      return Status::OK();
    }
    INFERD_CUDA_TRY(cuda::Dequantize(w.qtype, w.data, w.rows, w.cols, w.row_bytes, dt_, dequant_ws_, stream_));
    a = dequant_ws_;
  }
  return gemm_.Run(dt_, a, w.rows, w.cols, x, num_tokens, y, ldy, out_fp32, stream_);
}

Status CudaBackend::RunLayers(int64_t rows, int64_t num_decode_rows, int64_t num_prefill_tiles, int64_t max_context) {
  const ModelConfig& c = model_.config;
  const int64_t d = c.head_dim;
  cuda::AttentionParams& ap = step_attn_;
  ap = cuda::AttentionParams{};
  ap.dt = dt_;
  ap.q = qkv_;
  ap.q_row_stride = qkv_dim_;
  ap.out = attn_;
  ap.block_tables = Meta<int32_t>(meta_.block_tables);
  ap.max_blocks_per_seq = max_blocks_per_seq_;
  ap.row_seq = Meta<int32_t>(meta_.row_seq);
  ap.positions = Meta<int32_t>(meta_.positions);
  ap.decode_rows = Meta<int32_t>(meta_.decode_rows);
  ap.num_decode_rows = num_decode_rows;
  ap.prefill_tiles = Meta<int32_t>(meta_.prefill_tiles);
  ap.num_prefill_tiles = num_prefill_tiles;
  ap.num_tokens = rows;
  ap.num_heads = c.num_heads;
  ap.num_kv_heads = c.num_kv_heads;
  ap.head_dim = d;
  ap.block_size = kv_shape_.block_size;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(d));
  ap.max_context_len = max_context;
  ap.workspace = attn_ws_;
  ap.workspace_bytes = attn_ws_bytes_;
  step_rows_ = rows;
  return ops::RunLayers(c, *this);
}

Status CudaBackend::RunLmHead(int64_t first, int64_t count) { return ops::RunHead(model_.config, *this, first, count); }

Status CudaBackend::CaptureGraphs() {
  // Capture reads only buffer addresses and sizes, not the metadata contents; give it a
  // valid all-padding plan anyway so that a replay before any Forward is harmless.
  for (int64_t size : graph_sizes_) {
    ForwardBatch empty;
    DeviceBatchPlan p;
    INFERD_RETURN_IF_ERROR(PlanDeviceBatch(empty, kv_shape_.block_size, max_blocks_per_seq_, size,
                                           cuda::kPrefillTileRows, &p));
    p.logits_rows.resize(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i) p.logits_rows[i] = static_cast<int32_t>(i);
    INFERD_RETURN_IF_ERROR(Upload(p));
    INFERD_CUDA_TRY(cudaStreamSynchronize(stream_));
    cudaGraph_t graph = nullptr;
    INFERD_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    Status st = RunLayers(size, size, 0, options_.max_model_len);
    if (st.ok()) st = RunLmHead(0, size);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    INFERD_RETURN_IF_ERROR(st);
    INFERD_CUDA_TRY(end);
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    INFERD_CUDA_TRY(inst);
    graphs_[size] = exec;
  }
  return Status::OK();
}

StatusOr<bool> CudaBackend::RunBatch(const ForwardBatch& batch, const std::vector<int32_t>* logits_order) {
  const ModelConfig& c = model_.config;
  const int64_t T = static_cast<int64_t>(batch.token_ids.size());
  if (T > max_rows_ || static_cast<int64_t>(batch.seqs.size()) > max_seqs_) {
    return Internal(fmt::format("forward: batch of {} rows / {} sequences exceeds the {} / {} the CUDA backend "
                                "allocated for",
                                T, batch.seqs.size(), max_rows_, max_seqs_));
  }
  for (int32_t id : batch.token_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return InvalidArgument(fmt::format("token id {} is out of range for vocabulary size {}", id, c.vocab_size));
    }
  }
  // A decode-only batch whose logits rows are its rows in order replays a CUDA graph.
  int64_t bucket = -1;
  if (!graphs_.empty() && static_cast<int64_t>(batch.logits_rows.size()) == T &&
      static_cast<int64_t>(batch.seqs.size()) == T) {
    bool decode = true;
    for (int64_t i = 0; i < T && decode; ++i) decode = batch.logits_rows[i] == i && batch.seqs[i].num_tokens == 1;
    if (decode) bucket = CudaGraphBucket(graph_sizes_, T);
  }
  INFERD_RETURN_IF_ERROR(PlanDeviceBatch(batch, kv_shape_.block_size, max_blocks_per_seq_, bucket > 0 ? bucket : 0,
                                         cuda::kPrefillTileRows, &plan_));
  if (bucket > 0) {  // the graph gathers `bucket` rows: padding rows gather themselves
    plan_.logits_rows.resize(static_cast<size_t>(bucket));
    for (int64_t i = T; i < bucket; ++i) plan_.logits_rows[i] = static_cast<int32_t>(i);
  } else if (logits_order) {
    // Device logits row j is batch logits row (*logits_order)[j].
    for (size_t j = 0; j < logits_order->size(); ++j) plan_.logits_rows[j] = batch.logits_rows[(*logits_order)[j]];
  }
  INFERD_RETURN_IF_ERROR(Upload(plan_));
  if (bucket > 0) {
    INFERD_CUDA_TRY(cudaGraphLaunch(graphs_.at(bucket), stream_));
    return true;
  }
  INFERD_RETURN_IF_ERROR(RunLayers(plan_.num_rows, static_cast<int64_t>(plan_.decode_rows.size()),
                                   static_cast<int64_t>(plan_.prefill_tiles.size() / 2), plan_.max_decode_context));
  return false;
}

Status CudaBackend::Forward(const ForwardBatch& batch, float* logits) {
  const ModelConfig& c = model_.config;
  if (batch.token_ids.empty()) return Status::OK();
  INFERD_ASSIGN_OR_RETURN(const bool graph, RunBatch(batch, nullptr));
  const int64_t n = static_cast<int64_t>(batch.logits_rows.size());
  const size_t row_bytes = static_cast<size_t>(c.vocab_size) * sizeof(float);
  if (graph) {
    INFERD_CUDA_TRY(cudaMemcpyAsync(logits, logits_dev_, static_cast<size_t>(n) * row_bytes, cudaMemcpyDeviceToHost,
                                    stream_));
  } else {
    for (int64_t first = 0; first < n; first += logits_cap_) {
      const int64_t count = std::min(logits_cap_, n - first);
      INFERD_RETURN_IF_ERROR(RunLmHead(first, count));
      INFERD_CUDA_TRY(cudaMemcpyAsync(logits + first * c.vocab_size, logits_dev_, static_cast<size_t>(count) * row_bytes,
                                      cudaMemcpyDeviceToHost, stream_));
    }
  }
  INFERD_CUDA_TRY(cudaStreamSynchronize(stream_));
  return Status::OK();
}

Status CudaBackend::UploadGrowing(const void* host, size_t bytes, GrowingBuffer& buf, const char* what) {
  if (bytes > buf.cap) {  // grows rarely: long histories with penalties, many constrained rows
    if (buf.dev) {
      INFERD_CUDA_TRY(cudaStreamSynchronize(stream_));
      mem_.Free(buf.dev);
    }
    buf.cap = std::max(bytes, 2 * buf.cap);
    INFERD_ASSIGN_OR_RETURN(buf.dev, mem_.Alloc(buf.cap, DeviceMemory::kActivations, what));
  }
  INFERD_CUDA_TRY(cudaMemcpyAsync(buf.dev, host, bytes, cudaMemcpyHostToDevice, stream_));
  return Status::OK();
}

Status CudaBackend::SampleDeviceRows(int64_t n, const std::vector<int64_t>& targets, std::span<SampleResult> results) {
  const ModelConfig& c = model_.config;
  INFERD_CUDA_TRY(cudaMemcpyAsync(params_dev_, params_host_.data(), static_cast<size_t>(n) * sizeof(params_host_[0]),
                                  cudaMemcpyHostToDevice, stream_));
  if (!edits_host_.empty()) {
    INFERD_RETURN_IF_ERROR(
        UploadGrowing(edits_host_.data(), edits_host_.size() * sizeof(cuda::LogitEdit), edits_dev_, "sampling edits"));
  }
  if (!masks_host_.empty()) {
    INFERD_RETURN_IF_ERROR(
        UploadGrowing(masks_host_.data(), masks_host_.size() * sizeof(uint32_t), masks_dev_, "allowed-token masks"));
  }
  INFERD_CUDA_TRY(cuda::SampleRows(logits_dev_, n, c.vocab_size,
                                   static_cast<const cuda::DeviceSampleParams*>(params_dev_),
                                   edits_host_.empty() ? nullptr : static_cast<const cuda::LogitEdit*>(edits_dev_.dev),
                                   masks_host_.empty() ? nullptr : static_cast<const uint32_t*>(masks_dev_.dev),
                                   MaskWords(), tokens_dev_, logprobs_dev_, sample_ws_, sample_ws_bytes_, stream_));
  tokens_host_.resize(static_cast<size_t>(n));
  logprobs_host_.resize(static_cast<size_t>(n));
  INFERD_CUDA_TRY(cudaMemcpyAsync(tokens_host_.data(), tokens_dev_, static_cast<size_t>(n) * sizeof(int32_t),
                                  cudaMemcpyDeviceToHost, stream_));
  INFERD_CUDA_TRY(cudaMemcpyAsync(logprobs_host_.data(), logprobs_dev_, static_cast<size_t>(n) * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream_));
  INFERD_CUDA_TRY(cudaStreamSynchronize(stream_));
  for (int64_t j = 0; j < n; ++j) {
    if (targets[j] < 0) continue;
    SampleResult& r = results[targets[j]];
    r.token = tokens_host_[j];
    r.logprob = logprobs_host_[j];
    r.rank = 0;
    r.top_logprobs.clear();
  }
  return Status::OK();
}

Status CudaBackend::ForwardSample(const ForwardBatch& batch, std::span<const DeviceSample> rows, float* logits,
                                  std::span<SampleResult> results, const std::function<void()>& inputs_ready) {
  const ModelConfig& c = model_.config;
  const int64_t n = static_cast<int64_t>(batch.logits_rows.size());
  if (batch.token_ids.empty() || n == 0) return Status::OK();
  std::vector<const DeviceSample*> by_index(static_cast<size_t>(n), nullptr);  // null: the engine samples it
  for (const DeviceSample& r : rows) {
    if (r.logits_index < 0 || r.logits_index >= n) return Internal("ForwardSample: logits index out of range");
    by_index[r.logits_index] = &r;
  }
  // Device logits order for eager steps: the sampled rows first (one LM-head chunk: at most
  // one row per sequence), then the others.
  std::vector<int32_t> order;
  order.reserve(static_cast<size_t>(n));
  for (const DeviceSample& r : rows) order.push_back(static_cast<int32_t>(r.logits_index));
  for (int64_t i = 0; i < n; ++i) {
    if (!by_index[i]) order.push_back(static_cast<int32_t>(i));
  }
  if (static_cast<int64_t>(rows.size()) > logits_cap_) return Internal("ForwardSample: more sampled rows than logits buffer rows");
  INFERD_ASSIGN_OR_RETURN(const bool graph, RunBatch(batch, &order));
  // The graph's LM head wrote every logits row in batch order; an eager step's first chunk
  // holds the sampled rows in `order`.
  const int64_t on_device = graph ? n : static_cast<int64_t>(rows.size());
  if (!graph) INFERD_RETURN_IF_ERROR(RunLmHead(0, on_device));
  // Parameters per device row (rows not sampled get greedy parameters; results dropped).
  params_host_.assign(static_cast<size_t>(on_device), cuda::DeviceSampleParams{});
  edits_host_.clear();
  masks_host_.clear();
  std::vector<int64_t> targets(static_cast<size_t>(on_device), -1);
  // The engine may still be computing the rows' grammar masks: wait for them here, with the
  // forward already enqueued.
  if (inputs_ready) inputs_ready();
  for (int64_t j = 0; j < on_device; ++j) {
    const DeviceSample* r = by_index[graph ? j : order[j]];
    if (!r) {
      params_host_[j].temperature = 0.0f;
      continue;
    }
    const int32_t begin = static_cast<int32_t>(edits_host_.size());
    BuildLogitEdits(r->input, c.vocab_size, &edits_host_);
    int32_t mask_row = -1;
    if (!r->input.allowed_tokens.empty()) {  // one row of MaskWords() words, zero-padded
      const size_t words = static_cast<size_t>(MaskWords());
      mask_row = static_cast<int32_t>(masks_host_.size() / words);
      masks_host_.resize(masks_host_.size() + words, 0u);
      std::copy_n(r->input.allowed_tokens.begin(), std::min(words, r->input.allowed_tokens.size()),
                  masks_host_.end() - static_cast<std::ptrdiff_t>(words));
    }
    params_host_[j] =
        cuda::MakeDeviceSampleParams(r->input, begin, static_cast<int32_t>(edits_host_.size()), mask_row);
    targets[j] = r->logits_index;
  }
  // Logits of the rows the engine samples itself (logprobs, prompt_logprobs).
  const size_t row_bytes = static_cast<size_t>(c.vocab_size) * sizeof(float);
  if (graph) {
    for (int64_t i = 0; i < n; ++i) {
      if (!by_index[i]) {
        INFERD_CUDA_TRY(cudaMemcpyAsync(logits + i * c.vocab_size, logits_dev_ + i * c.vocab_size, row_bytes,
                                        cudaMemcpyDeviceToHost, stream_));
      }
    }
  }
  INFERD_RETURN_IF_ERROR(SampleDeviceRows(on_device, targets, results));
  if (!graph) {
    for (int64_t first = on_device; first < n; first += logits_cap_) {
      const int64_t count = std::min(logits_cap_, n - first);
      INFERD_RETURN_IF_ERROR(RunLmHead(first, count));
      for (int64_t j = 0; j < count; ++j) {
        INFERD_CUDA_TRY(cudaMemcpyAsync(logits + static_cast<int64_t>(order[first + j]) * c.vocab_size,
                                        logits_dev_ + j * c.vocab_size, row_bytes, cudaMemcpyDeviceToHost, stream_));
      }
    }
    INFERD_CUDA_TRY(cudaStreamSynchronize(stream_));
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const LoadedModel& model, const BackendOptions& options,
                                                     int device_index) {
  return CudaBackend::Create(model, options, device_index);
}

}  // namespace inferd
