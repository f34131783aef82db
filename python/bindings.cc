// inferd._C: the thin pybind11 layer under the `inferd` package (python/inferd/*.py).
//
// It creates an Engine from EngineArgs (inferd/engine.h, as the CLI and the server do), runs
// batches through Engine::Generate with the GIL released, and exposes the tokenizer and the
// chat template. Everything vLLM-shaped (SamplingParams checks, RequestOutput classes,
// tqdm) lives in Python; beam search's bookkeeping is the C++ BeamSearch the server uses
// too (engine/beam_search.h), driven from Python one engine batch per step.
//
// Threads: Generate runs on the calling thread without the GIL; it takes the GIL briefly
// (a) in the per-request callback (progress bar) and (b) every ~100 ms to run
// PyErr_CheckSignals(), so Ctrl-C aborts the batch and raises KeyboardInterrupt. One
// batch runs at a time per engine (a mutex); tokenizer calls are safe from any thread.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/beam_search.h"
#include "engine/chat_prompt.h"
#include "inferd/engine.h"
#include "model/model.h"
#include "util/json.h"
#include "util/logging.h"

namespace py = pybind11;

namespace inferd {
namespace {

// Text from the engine as a Python str; bytes that are not UTF-8 (a token that is half a
// character) become U+FFFD instead of raising.
py::str Str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

[[noreturn]] void Throw(const Status& st) {
  switch (st.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kDataLoss:  // a corrupt or truncated model file
      throw py::value_error(st.message());
    case StatusCode::kNotFound:
      PyErr_SetString(PyExc_FileNotFoundError, st.message().c_str());
      throw py::error_already_set();
    case StatusCode::kUnimplemented:
      PyErr_SetString(PyExc_NotImplementedError, st.message().c_str());
      throw py::error_already_set();
    default:
      throw std::runtime_error(st.message());
  }
}

template <typename T>
T Unwrap(StatusOr<T> v) {
  if (!v.ok()) Throw(v.status());
  return std::move(v).value();
}

// Reads d[key] into `out` when present and not None.
template <typename T>
void Get(const py::dict& d, const char* key, T& out) {
  if (d.contains(key) && !d[key].is_none()) out = d[key].cast<T>();
}
template <typename T>
void GetOptional(const py::dict& d, const char* key, std::optional<T>& out) {
  if (!d.contains(key)) return;
  if (d[key].is_none()) out.reset();
  else out = d[key].cast<T>();
}

// The C++ SamplingParams from the dict that inferd.SamplingParams._to_engine() builds.
SamplingParams ParamsFromDict(const py::dict& d) {
  SamplingParams p;
  Get(d, "n", p.n);
  Get(d, "presence_penalty", p.presence_penalty);
  Get(d, "frequency_penalty", p.frequency_penalty);
  Get(d, "repetition_penalty", p.repetition_penalty);
  Get(d, "temperature", p.temperature);
  Get(d, "top_p", p.top_p);
  Get(d, "top_k", p.top_k);
  Get(d, "min_p", p.min_p);
  GetOptional(d, "seed", p.seed);
  Get(d, "stop", p.stop);
  Get(d, "stop_token_ids", p.stop_token_ids);
  Get(d, "ignore_eos", p.ignore_eos);
  GetOptional(d, "max_tokens", p.max_tokens);
  Get(d, "min_tokens", p.min_tokens);
  GetOptional(d, "logprobs", p.logprobs);
  GetOptional(d, "prompt_logprobs", p.prompt_logprobs);
  Get(d, "include_stop_str_in_output", p.include_stop_str_in_output);
  Get(d, "skip_special_tokens", p.skip_special_tokens);
  Get(d, "spaces_between_special_tokens", p.spaces_between_special_tokens);
  Get(d, "logit_bias", p.logit_bias);
  if (d.contains("structured_outputs") && !d["structured_outputs"].is_none()) {
    const py::dict so = d["structured_outputs"].cast<py::dict>();
    StructuredOutputsParams s;
    GetOptional(so, "json", s.json);
    GetOptional(so, "regex", s.regex);
    GetOptional(so, "choice", s.choice);
    GetOptional(so, "grammar", s.grammar);
    Get(so, "json_object", s.json_object);
    GetOptional(so, "structural_tag", s.structural_tag);
    Get(so, "disable_any_whitespace", s.disable_any_whitespace);
    p.structured_outputs = std::move(s);
  }
  return p;
}

py::dict PositionToPy(const PositionLogprobs& pos, const py::handle& logprob_cls) {
  py::dict d;
  for (const auto& [id, lp] : pos) d[py::int_(id)] = logprob_cls(lp.logprob, lp.rank, Str(lp.decoded_token));
  return d;
}

// One RequestOutput as a dict of vLLM's field names (the Python layer builds the classes).
py::dict OutputToPy(const RequestOutput& r, const py::handle& logprob_cls) {
  py::dict d;
  d["request_id"] = Str(r.request_id);
  d["prompt"] = Str(r.prompt);
  d["prompt_token_ids"] = r.prompt_token_ids;
  if (r.prompt_logprobs) {
    py::list pl;
    for (const auto& pos : *r.prompt_logprobs) {
      if (pos) pl.append(PositionToPy(*pos, logprob_cls));
      else pl.append(py::none());
    }
    d["prompt_logprobs"] = pl;
  } else {
    d["prompt_logprobs"] = py::none();
  }
  py::list outs;
  for (const CompletionOutput& o : r.outputs) {
    py::dict c;
    c["index"] = o.index;
    c["text"] = Str(o.text);
    c["token_ids"] = o.token_ids;
    c["cumulative_logprob"] = o.cumulative_logprob;
    if (o.logprobs) {
      py::list lps;
      for (const auto& pos : *o.logprobs) lps.append(PositionToPy(pos, logprob_cls));
      c["logprobs"] = lps;
    } else {
      c["logprobs"] = py::none();
    }
    c["finish_reason"] = o.finish_reason ? py::object(py::str(*o.finish_reason)) : py::object(py::none());
    if (std::holds_alternative<int32_t>(o.stop_reason)) c["stop_reason"] = std::get<int32_t>(o.stop_reason);
    else if (std::holds_alternative<std::string>(o.stop_reason)) c["stop_reason"] = Str(std::get<std::string>(o.stop_reason));
    else c["stop_reason"] = py::none();
    outs.append(c);
  }
  d["outputs"] = outs;
  d["finished"] = r.finished;
  d["num_cached_tokens"] = r.num_cached_tokens;
  py::dict m;
  m["arrival_time"] = r.metrics.arrival_time;
  m["first_scheduled_time"] = r.metrics.first_scheduled_time;
  m["first_token_time"] = r.metrics.first_token_time;
  m["last_token_time"] = r.metrics.last_token_time;
  m["finished_time"] = r.metrics.finished_time;
  d["metrics"] = m;
  return d;
}

nlohmann::ordered_json JsonArg(const std::string& text, const char* what) {
  if (text.empty()) return nullptr;
  nlohmann::ordered_json j;
  JsonError err;
  if (!ParseJson(text, &j, &err)) {
    throw py::value_error(std::string(what) + " is not valid JSON: " + FormatJsonError(err));
  }
  return j;
}

class PyEngine {
 public:
  PyEngine(const std::string& model, const std::string& tokenizer, const std::string& load_format,
           const std::string& dtype, uint64_t seed, int64_t max_model_len, int64_t block_size,
           const std::string& kv_cache_memory, int64_t max_num_batched_tokens, int64_t max_num_seqs,
           bool enable_prefix_caching, const std::string& scheduling_policy, int threads,
           const std::string& kv_cache_dtype, const std::string& quantization, const std::string& device,
           double gpu_memory_utilization, bool enforce_eager, const std::string& speculative_config) {
    EngineArgs args;
    args.load.model = model;
    args.load.tokenizer = tokenizer;
    args.load.load_format = load_format;
    args.load.dtype = dtype;
    args.load.quantization = quantization;
    args.engine.seed = seed;
    args.engine.max_model_len = max_model_len;
    args.engine.block_size = block_size;
    args.kv_cache_memory = kv_cache_memory;
    args.engine.max_num_batched_tokens = max_num_batched_tokens;
    args.engine.max_num_seqs = max_num_seqs;
    args.engine.enable_prefix_caching = enable_prefix_caching;
    args.engine.scheduling_policy = scheduling_policy;
    args.engine.kv_cache_dtype = kv_cache_dtype;
    args.engine.device = device;
    args.engine.gpu_memory_utilization = gpu_memory_utilization;
    args.engine.enforce_eager = enforce_eager;
    args.speculative_config = speculative_config;
    args.threads = threads;
    if (Status st = ResolveEngineArgs(args); !st.ok()) Throw(st);  // argument errors before the (long) load
    StatusOr<std::unique_ptr<Engine>> engine = Status(StatusCode::kInternal, "not loaded");
    {
      py::gil_scoped_release release;
      engine = Engine::Create(args);
    }
    engine_ = Unwrap(std::move(engine));
  }

  // requests: [(request_id, prompt, prompt_token_ids, params dict, priority)].
  // Returns one dict (RequestOutput fields) or one str (the request's error) per request.
  py::list Generate(const py::list& requests, const py::object& logprob_cls, const py::object& on_finished) {
    std::vector<GenerateRequest> batch;
    batch.reserve(requests.size());
    for (const py::handle& h : requests) {
      auto t = h.cast<py::tuple>();
      GenerateRequest r;
      r.request_id = t[0].cast<std::string>();
      r.prompt = t[1].cast<std::string>();
      r.prompt_token_ids = t[2].cast<std::vector<int32_t>>();
      r.params = ParamsFromDict(t[3].cast<py::dict>());
      r.priority = t[4].cast<int>();
      batch.push_back(std::move(r));
    }
    std::optional<py::error_already_set> error;  // KeyboardInterrupt or a callback's exception
    const bool report = !on_finished.is_none();
    auto last_check = std::chrono::steady_clock::now();
    auto should_continue = [&]() -> bool {
      if (error) return false;
      const auto now = std::chrono::steady_clock::now();
      if (now - last_check < std::chrono::milliseconds(100)) return true;
      last_check = now;
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) {
        error.emplace();  // fetches the pending exception (KeyboardInterrupt)
        return false;
      }
      return true;
    };
    auto finished = [&](size_t i, const StatusOr<RequestOutput>& r) {
      if (!report || error) return;
      size_t in = 0, out = 0;
      if (r.ok()) {
        in = r->prompt_token_ids.size() * r->outputs.size();
        for (const CompletionOutput& o : r->outputs) out += o.token_ids.size();
      }
      py::gil_scoped_acquire gil;
      try {
        on_finished(i, in, out);
      } catch (py::error_already_set& e) {
        error.emplace(std::move(e));
      }
    };
    std::vector<StatusOr<RequestOutput>> results;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      results = engine_->Generate(std::move(batch), finished, should_continue);
    }
    if (error) throw *error;
    py::list out;
    for (const auto& r : results) {
      if (r.ok()) out.append(OutputToPy(*r, logprob_cls));
      else out.append(Str(r.status().message()));
    }
    return out;
  }

  std::vector<int32_t> Encode(const std::string& text, bool add_special, bool parse_special) const {
    return tok().Encode(text, add_special, parse_special);
  }
  py::str Decode(const std::vector<int32_t>& ids, bool skip_special) const {
    CheckIds(ids);
    return Str(tok().Decode(ids, skip_special));
  }
  py::str TokenText(int32_t id) const {
    CheckIds({id});
    return Str(tok().TokenText(id));
  }
  py::bytes TokenBytes(int32_t id) const {
    CheckIds({id});
    return py::bytes(tok().TokenToPiece(id, /*skip_special=*/false));
  }

  // messages etc. as JSON text; returns (prompt text, token ids).
  py::tuple ApplyChatTemplate(const std::string& messages, const std::string& chat_template, bool add_generation_prompt,
                              bool continue_final_message, const std::string& tools, const std::string& kwargs) {
    const ChatPrompter* prompter = nullptr;
    {
      std::lock_guard<std::mutex> lock(prompters_mu_);
      auto it = prompters_.find(chat_template);
      if (it == prompters_.end()) {
        it = prompters_.emplace(chat_template, Unwrap(ChatPrompter::Create(tok(), chat_template))).first;
      }
      prompter = it->second.get();
    }
    ChatPrompter::Prompt p = Unwrap(prompter->Apply(JsonArg(messages, "messages"), add_generation_prompt,
                                                    continue_final_message, JsonArg(tools, "tools"),
                                                    JsonArg(kwargs, "chat_template_kwargs")));
    return py::make_tuple(Str(p.text), p.token_ids);
  }

  // Engine state between batches (waits for a running batch): what tests check after an
  // abort, i.e. no request left unfinished and no KV block still referenced.
  py::dict Stats() {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    const bool unfinished = engine_->HasUnfinishedRequests();
    const EngineSnapshot stats = engine_->Stats();
    const EngineCounters& c = stats.counters;
    py::gil_scoped_acquire gil;
    py::dict d;
    d["has_unfinished"] = unfinished;
    d["num_running"] = stats.num_running;
    d["num_waiting"] = stats.num_waiting;
    d["kv_usage"] = stats.kv_usage;
    d["prompt_tokens"] = c.prompt_tokens;
    d["generation_tokens"] = c.generation_tokens;
    d["num_preemptions"] = c.num_preemptions;
    d["prefix_cache_queries"] = c.prefix_queries;
    d["prefix_cache_hits"] = c.prefix_hits;
    d["requests_finished"] = c.requests_finished;
    return d;
  }

  py::dict Info() const {
    const LoadedModel& m = engine_->model();
    const Tokenizer& t = tok();
    py::dict d;
    d["path"] = m.path;
    d["format"] = m.format;
    d["weight_type"] = m.weight_type;
    d["architecture"] = m.config.arch;
    d["name"] = Str(m.config.name);
    d["num_layers"] = m.config.num_layers;
    d["hidden_size"] = m.config.hidden_size;
    d["max_model_len"] = engine_->max_model_len();
    d["vocab_size"] = engine_->vocab_size();
    d["kv_capacity_tokens"] = engine_->kv_capacity_tokens();
    d["block_size"] = engine_->block_size();
    d["tokenizer_vocab_size"] = t.vocab_size();
    d["bos_token_id"] = t.bos_id() >= 0 ? py::object(py::int_(t.bos_id())) : py::object(py::none());
    d["eos_token_id"] = t.eos_id() >= 0 ? py::object(py::int_(t.eos_id())) : py::object(py::none());
    d["eog_token_ids"] = t.eog_ids();
    d["add_bos"] = t.add_bos();
    d["chat_template"] = t.chat_template().empty() ? py::object(py::none()) : py::object(Str(t.chat_template()));
    const GenerationDefaults& g = m.generation;
    py::dict gen;
    if (g.temperature) gen["temperature"] = *g.temperature;
    if (g.top_p) gen["top_p"] = *g.top_p;
    if (g.top_k) gen["top_k"] = *g.top_k;
    if (g.min_p) gen["min_p"] = *g.min_p;
    if (g.repetition_penalty) gen["repetition_penalty"] = *g.repetition_penalty;
    if (g.max_new_tokens) gen["max_tokens"] = *g.max_new_tokens;
    d["generation_config"] = gen;
    return d;
  }

 private:
  const Tokenizer& tok() const { return engine_->tokenizer(); }
  void CheckIds(const std::vector<int32_t>& ids) const {
    for (int32_t id : ids) {
      if (id < 0 || id >= tok().vocab_size()) {
        throw py::value_error("token id " + std::to_string(id) + " is out of vocabulary (size " +
                              std::to_string(tok().vocab_size()) + ")");
      }
    }
  }

  std::unique_ptr<Engine> engine_;
  std::mutex mu_;  // one Generate at a time
  std::mutex prompters_mu_;
  std::map<std::string, std::unique_ptr<ChatPrompter>> prompters_;  // by template source ("" = the model's)
};

// BeamSearch for Python: positions arrive as {token id: Logprob} dicts (the Python
// Logprob class) and beams leave as dicts of vLLM's BeamSearchSequence fields.
class PyBeamSearch {
 public:
  PyBeamSearch(std::vector<std::vector<int32_t>> prompts, int beam_width, int max_tokens, bool ignore_eos,
               float temperature, float length_penalty, int32_t eos_token_id, int64_t max_model_len)
      : search_(std::move(prompts), BeamSearchParams{beam_width, max_tokens, ignore_eos, temperature, length_penalty},
                eos_token_id, max_model_len) {}

  std::vector<std::vector<int32_t>> NextStep() { return search_.NextStep(); }

  void Update(const py::list& positions) {
    std::vector<PositionLogprobs> results;
    results.reserve(positions.size());
    for (const py::handle& pos : positions) {
      PositionLogprobs p;
      for (const auto& [k, v] : py::cast<py::dict>(pos)) {
        Logprob lp;
        lp.logprob = py::cast<float>(v.attr("logprob"));
        lp.rank = py::cast<int>(v.attr("rank"));
        lp.decoded_token = py::cast<std::string>(v.attr("decoded_token"));
        p[py::cast<int32_t>(k)] = std::move(lp);
      }
      results.push_back(std::move(p));
    }
    search_.Update(results);
  }

  py::list Finish(const py::handle& logprob_cls) {
    py::list out;
    for (const std::vector<Beam>& beams : search_.Finish()) {
      py::list seqs;
      for (const Beam& b : beams) {
        py::dict d;
        d["tokens"] = b.tokens;
        py::list lps;
        for (const PositionLogprobs& pos : b.logprobs) lps.append(PositionToPy(pos, logprob_cls));
        d["logprobs"] = lps;
        d["cum_logprob"] = b.cum_logprob;
        d["finish_reason"] = *b.finish_reason;
        seqs.append(d);
      }
      out.append(seqs);
    }
    return out;
  }

 private:
  BeamSearch search_;
};

}  // namespace
}  // namespace inferd

PYBIND11_MODULE(_C, m) {
  using inferd::PyEngine;
  m.doc() = "inferd C++ engine (thin binding; use the `inferd` package)";
  inferd::InitLogging();
  py::class_<PyEngine>(m, "Engine")
      .def(py::init<const std::string&, const std::string&, const std::string&, const std::string&, uint64_t, int64_t,
                    int64_t, const std::string&, int64_t, int64_t, bool, const std::string&, int,
                    const std::string&, const std::string&, const std::string&, double, bool, const std::string&>(),
           py::arg("model"), py::arg("tokenizer") = "", py::arg("load_format") = "auto", py::arg("dtype") = "auto",
           py::arg("seed") = 0, py::arg("max_model_len") = 0, py::arg("block_size") = 16,
           py::arg("kv_cache_memory") = "", py::arg("max_num_batched_tokens") = 512, py::arg("max_num_seqs") = 64,
           py::arg("enable_prefix_caching") = true, py::arg("scheduling_policy") = "fcfs", py::arg("threads") = 0,
           py::arg("kv_cache_dtype") = "auto", py::arg("quantization") = "", py::arg("device") = "auto",
           py::arg("gpu_memory_utilization") = 0.9, py::arg("enforce_eager") = false,
           py::arg("speculative_config") = "")
      .def("generate", &PyEngine::Generate, py::arg("requests"), py::arg("logprob_cls"),
           py::arg("on_finished") = py::none())
      .def("encode", &PyEngine::Encode, py::arg("text"), py::arg("add_special_tokens") = true,
           py::arg("parse_special") = false)
      .def("decode", &PyEngine::Decode, py::arg("ids"), py::arg("skip_special_tokens") = true)
      .def("token_text", &PyEngine::TokenText, py::arg("id"))
      .def("token_bytes", &PyEngine::TokenBytes, py::arg("id"))
      .def("apply_chat_template", &PyEngine::ApplyChatTemplate, py::arg("messages"), py::arg("chat_template") = "",
           py::arg("add_generation_prompt") = true, py::arg("continue_final_message") = false,
           py::arg("tools") = "", py::arg("chat_template_kwargs") = "")
      .def("info", &PyEngine::Info)
      .def("stats", &PyEngine::Stats);
  m.def("beam_score", &inferd::BeamScore, py::arg("tokens"), py::arg("cum_logprob"), py::arg("eos_token_id"),
        py::arg("length_penalty"));
  py::class_<inferd::PyBeamSearch>(m, "BeamSearch")
      .def(py::init<std::vector<std::vector<int32_t>>, int, int, bool, float, float, int32_t, int64_t>(),
           py::arg("prompts"), py::arg("beam_width"), py::arg("max_tokens"), py::arg("ignore_eos"),
           py::arg("temperature"), py::arg("length_penalty"), py::arg("eos_token_id"), py::arg("max_model_len"))
      .def("next_step", &inferd::PyBeamSearch::NextStep)
      .def("update", &inferd::PyBeamSearch::Update, py::arg("positions"))
      .def("finish", &inferd::PyBeamSearch::Finish, py::arg("logprob_cls"));
}
