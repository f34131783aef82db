#include "format/torch_checkpoint.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "format/zip.h"
#include "util/file.h"
#include "util/json.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxStack = 1 << 20;
constexpr size_t kMaxMemo = 1 << 20;
constexpr int kMaxDepth = 100;  // a state dict nests 3-4 levels

enum class Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

struct PyObj;
using Obj = std::shared_ptr<PyObj>;

struct PyObj {
  Kind kind = Kind::kNone;
  int depth = 1;  // nesting of containers, bounded so that destruction never recurses deeply
  int64_t i = 0;
  double f = 0;
  std::string s;                            // str, bytes, global "module.name", storage key
  std::vector<Obj> items;                   // tuple, list
  std::vector<std::pair<Obj, Obj>> dict;    // insertion order
  StTensor tensor;                          // kTensor; for kStorage: dtype, data, nbytes
  int64_t numel = 0;                        // kStorage
};

Obj Make(Kind k) {
  auto o = std::make_shared<PyObj>();
  o->kind = k;
  return o;
}

// Storage classes: dtype and element size.
struct StorageType {
  const char* name;
  StDtype dtype;
  const char* dtype_name;
  int elem;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", StDtype::kF32, "F32", 4},   {"torch.HalfStorage", StDtype::kF16, "F16", 2},
    {"torch.BFloat16Storage", StDtype::kBF16, "BF16", 2}, {"torch.DoubleStorage", StDtype::kF64, "F64", 8},
    {"torch.LongStorage", StDtype::kI64, "I64", 8},    {"torch.IntStorage", StDtype::kI32, "I32", 4},
    {"torch.ShortStorage", StDtype::kI16, "I16", 2},   {"torch.CharStorage", StDtype::kI8, "I8", 1},
    {"torch.ByteStorage", StDtype::kU8, "U8", 1},      {"torch.BoolStorage", StDtype::kBool, "BOOL", 1},
};
const StorageType* FindStorageType(const std::string& name) {
  for (const StorageType& t : kStorageTypes)
    if (name == t.name) return &t;
  return nullptr;
}
constexpr const char* kAllowedCallables[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                             "torch._utils._rebuild_parameter"};

class Unpickler {
 public:
  Unpickler(const uint8_t* p, size_t n, const ZipArchive& zip, std::string prefix, std::string label)
      : start_(p), p_(p), end_(p + n), zip_(zip), prefix_(std::move(prefix)), label_(std::move(label)) {}

  StatusOr<Obj> Run();

 private:
  Status Corrupt(const std::string& what) const {
    return DataLoss(fmt::format("pytorch checkpoint '{}': data.pkl at byte {}: {}", label_, pos(), what));
  }
  size_t pos() const { return static_cast<size_t>(p_ - start_); }
  Status Need(size_t n) const { return static_cast<size_t>(end_ - p_) < n ? Corrupt("truncated") : Status::OK(); }
  uint64_t Le(int n) {
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p_[k];
    p_ += n;
    return v;
  }
  Status Push(Obj o) {
    if (stack_.size() >= kMaxStack) return Corrupt("stack too deep");
    stack_.push_back(std::move(o));
    return Status::OK();
  }
  StatusOr<Obj> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) return Corrupt("stack underflow");
    Obj o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  StatusOr<std::vector<Obj>> PopToMark() {
    if (marks_.empty()) return Corrupt("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj> v(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(m)),
                       std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return v;
  }
  Status Container(Obj& c, const std::vector<Obj>& children) {
    for (const Obj& ch : children) c->depth = std::max(c->depth, ch->depth + 1);
    if (c->depth > kMaxDepth) return Corrupt(fmt::format("objects nested deeper than {}", kMaxDepth));
    return Status::OK();
  }
  Status Memo(uint64_t idx) {
    if (stack_.empty()) return Corrupt("PUT on an empty stack");
    if (idx >= kMaxMemo) return Corrupt("memo index out of range");
    if (idx >= memo_.size()) memo_.resize(idx + 1);
    memo_[idx] = stack_.back();
    return Status::OK();
  }
  Status Get(uint64_t idx) {
    if (idx >= memo_.size() || !memo_[idx]) return Corrupt(fmt::format("memo {} is not set", idx));
    return Push(memo_[idx]);
  }
  Status Global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    bool ok = FindStorageType(full) != nullptr;
    for (const char* c : kAllowedCallables) ok = ok || full == c;
    if (!ok) {
      return InvalidArgument(fmt::format("pytorch checkpoint '{}': refuses the pickle global '{}': only the "
                                         "tensors of a state dict are read, and no code is run",
                                         label_, full));
    }
    Obj g = Make(Kind::kGlobal);
    g->s = full;
    return Push(std::move(g));
  }
  Status SetItems(Obj& dict, std::vector<Obj> kv) {
    if (dict->kind != Kind::kDict) return Corrupt("SETITEM(S) on a non-dict");
    if (kv.size() % 2 != 0) return Corrupt("SETITEMS with an odd count");
    INFERD_RETURN_IF_ERROR(Container(dict, kv));
    for (size_t k = 0; k < kv.size(); k += 2) dict->dict.emplace_back(std::move(kv[k]), std::move(kv[k + 1]));
    return Status::OK();
  }
  StatusOr<Obj> PersistentLoad(const Obj& pid);
  StatusOr<Obj> Reduce(const Obj& fn, const Obj& args);
  StatusOr<Obj> RebuildTensor(const std::vector<Obj>& a);

  const uint8_t* start_;
  const uint8_t* p_;
  const uint8_t* end_;
  const ZipArchive& zip_;
  std::string prefix_, label_;
  std::vector<Obj> stack_, memo_;
  std::vector<size_t> marks_;
};

StatusOr<Obj> Unpickler::PersistentLoad(const Obj& pid) {
  // ('storage', storage_type, key, location, numel)
  if (pid->kind != Kind::kTuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::kStr ||
      pid->items[0]->s != "storage" || pid->items[1]->kind != Kind::kGlobal || pid->items[2]->kind != Kind::kStr ||
      pid->items[4]->kind != Kind::kInt) {
    return Corrupt("persistent id is not ('storage', type, key, location, numel)");
  }
  const StorageType* t = FindStorageType(pid->items[1]->s);
  if (t == nullptr) return Corrupt("persistent id names " + pid->items[1]->s + ", not a storage type");
  const std::string key = pid->items[2]->s;
  const ZipEntry* e = zip_.Find(prefix_ + "data/" + key);
  if (e == nullptr) return Corrupt("storage '" + key + "' has no data/" + key + " entry");
  const int64_t numel = pid->items[4]->i;
  if (numel < 0 || static_cast<uint64_t>(numel) > e->size / static_cast<uint64_t>(t->elem)) {
    return Corrupt(fmt::format("storage '{}' claims {} elements but holds {} bytes", key, numel, e->size));
  }
  Obj s = Make(Kind::kStorage);
  s->s = key;
  s->tensor.dtype = t->dtype;
  s->tensor.dtype_name = t->dtype_name;
  s->tensor.data = e->data;
  s->tensor.nbytes = static_cast<size_t>(t->elem);  // element size
  s->numel = numel;
  return s;
}

StatusOr<Obj> Unpickler::RebuildTensor(const std::vector<Obj>& a) {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (a.size() < 4 || a[0]->kind != Kind::kStorage || a[1]->kind != Kind::kInt || a[2]->kind != Kind::kTuple ||
      a[3]->kind != Kind::kTuple || a[2]->items.size() != a[3]->items.size()) {
    return Corrupt("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)");
  }
  const PyObj& st = *a[0];
  const int64_t elem = static_cast<int64_t>(st.tensor.nbytes);
  Obj t = Make(Kind::kTensor);
  t->tensor.dtype = st.tensor.dtype;
  t->tensor.dtype_name = st.tensor.dtype_name;
  int64_t numel = 1, expect = 1;
  for (size_t d = a[2]->items.size(); d-- > 0;) {
    const Obj& n = a[2]->items[d];
    const Obj& s = a[3]->items[d];
    if (n->kind != Kind::kInt || s->kind != Kind::kInt || n->i < 0 || n->i > (int64_t{1} << 40)) {
      return Corrupt("tensor size or stride is not a small non-negative integer");
    }
    if (n->i != 1 && s->i != expect) {
      return Unimplemented(fmt::format("pytorch checkpoint '{}': a tensor is not contiguous (stride {} where {} "
                                       "was expected); save it with .contiguous()",
                                       label_, s->i, expect));
    }
    expect *= n->i;
    numel = expect;
  }
  for (const Obj& n : a[2]->items) t->tensor.shape.push_back(n->i);
  const int64_t offset = a[1]->i;
  if (offset < 0 || offset > st.numel || numel > st.numel - offset) {
    return Corrupt(fmt::format("tensor of {} elements at offset {} overruns its storage of {}", numel, offset,
                               st.numel));
  }
  t->tensor.data = st.tensor.data + offset * elem;
  t->tensor.nbytes = static_cast<size_t>(numel * elem);
  return t;
}

StatusOr<Obj> Unpickler::Reduce(const Obj& fn, const Obj& args) {
  if (fn->kind != Kind::kGlobal || args->kind != Kind::kTuple) return Corrupt("REDUCE of a non-callable");
  if (fn->s == "collections.OrderedDict") {
    if (!args->items.empty()) return Corrupt("OrderedDict with arguments");
    return Make(Kind::kDict);
  }
  if (fn->s == "torch._utils._rebuild_tensor_v2") return RebuildTensor(args->items);
  if (fn->s == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
    if (args->items.empty() || args->items[0]->kind != Kind::kTensor) return Corrupt("_rebuild_parameter of a non-tensor");
    return args->items[0];
  }
  return InvalidArgument(fmt::format("pytorch checkpoint '{}': refuses to call '{}'", label_, fn->s));
}

StatusOr<Obj> Unpickler::Run() {
  while (true) {
    INFERD_RETURN_IF_ERROR(Need(1));
    const uint8_t op = *p_++;
    switch (op) {
      case 0x80: INFERD_RETURN_IF_ERROR(Need(1)); ++p_; break;  // PROTO
      case 0x95: INFERD_RETURN_IF_ERROR(Need(8)); p_ += 8; break;  // FRAME
      case '.': {  // STOP
        if (stack_.size() != 1 || !marks_.empty()) return Corrupt("STOP with a stack of " + std::to_string(stack_.size()));
        return stack_.back();
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '}': INFERD_RETURN_IF_ERROR(Push(Make(Kind::kDict))); break;
      case ']': INFERD_RETURN_IF_ERROR(Push(Make(Kind::kList))); break;
      case ')': INFERD_RETURN_IF_ERROR(Push(Make(Kind::kTuple))); break;
      case 'N': INFERD_RETURN_IF_ERROR(Push(Make(Kind::kNone))); break;
      case 0x88: case 0x89: {
        Obj b = Make(Kind::kBool);
        b->i = op == 0x88;
        INFERD_RETURN_IF_ERROR(Push(std::move(b)));
        break;
      }
      case 'J': case 'K': case 'M': {  // BININT (signed 4), BININT1, BININT2
        const int n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        INFERD_RETURN_IF_ERROR(Need(n));
        Obj v = Make(Kind::kInt);
        const uint64_t raw = Le(n);
        v->i = op == 'J' ? static_cast<int32_t>(raw) : static_cast<int64_t>(raw);
        INFERD_RETURN_IF_ERROR(Push(std::move(v)));
        break;
      }
      case 0x8a: {  // LONG1
        INFERD_RETURN_IF_ERROR(Need(1));
        const int n = *p_++;
        if (n > 8) return Corrupt("integer wider than 64 bits");
        INFERD_RETURN_IF_ERROR(Need(static_cast<size_t>(n)));
        uint64_t raw = n ? Le(n) : 0;
        if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);  // sign-extend
        Obj v = Make(Kind::kInt);
        v->i = static_cast<int64_t>(raw);
        INFERD_RETURN_IF_ERROR(Push(std::move(v)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        INFERD_RETURN_IF_ERROR(Need(8));
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p_[k];
        p_ += 8;
        Obj v = Make(Kind::kFloat);
        std::memcpy(&v->f, &bits, 8);
        INFERD_RETURN_IF_ERROR(Push(std::move(v)));
        break;
      }
      case 'X': case 0x8c: case 0x8d: case 'B': case 'C': case 0x8e: {  // str / bytes with a length
        const int n = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        INFERD_RETURN_IF_ERROR(Need(static_cast<size_t>(n)));
        const uint64_t len = Le(n);
        if (len > static_cast<uint64_t>(end_ - p_)) return Corrupt("string longer than the pickle");
        Obj v = Make(op == 'X' || op == 0x8c || op == 0x8d ? Kind::kStr : Kind::kBytes);
        v->s.assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
        p_ += len;
        INFERD_RETURN_IF_ERROR(Push(std::move(v)));
        break;
      }
      case 'q': INFERD_RETURN_IF_ERROR(Need(1)); INFERD_RETURN_IF_ERROR(Memo(Le(1))); break;
      case 'r': INFERD_RETURN_IF_ERROR(Need(4)); INFERD_RETURN_IF_ERROR(Memo(Le(4))); break;
      case 0x94: INFERD_RETURN_IF_ERROR(Memo(memo_.size())); break;  // MEMOIZE
      case 'h': INFERD_RETURN_IF_ERROR(Need(1)); INFERD_RETURN_IF_ERROR(Get(Le(1))); break;
      case 'j': INFERD_RETURN_IF_ERROR(Need(4)); INFERD_RETURN_IF_ERROR(Get(Le(4))); break;
      case 'c': {  // GLOBAL "module\nname\n"
        std::string parts[2];
        for (std::string& part : parts) {
          const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
          if (nl == nullptr || nl - p_ > 256) return Corrupt("GLOBAL without a short newline-ended name");
          part.assign(reinterpret_cast<const char*>(p_), static_cast<size_t>(nl - p_));
          p_ = nl + 1;
        }
        INFERD_RETURN_IF_ERROR(Global(parts[0], parts[1]));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        INFERD_ASSIGN_OR_RETURN(Obj name, Pop());
        INFERD_ASSIGN_OR_RETURN(Obj module, Pop());
        if (name->kind != Kind::kStr || module->kind != Kind::kStr) return Corrupt("STACK_GLOBAL of non-strings");
        INFERD_RETURN_IF_ERROR(Global(module->s, name->s));
        break;
      }
      case 't': case 0x85: case 0x86: case 0x87: {  // TUPLE, TUPLE1..3
        std::vector<Obj> items;
        if (op == 't') {
          INFERD_ASSIGN_OR_RETURN(items, PopToMark());
        } else {
          items.resize(op - 0x84);
          for (size_t k = items.size(); k-- > 0;) {
            INFERD_ASSIGN_OR_RETURN(items[k], Pop());
          }
        }
        Obj t = Make(Kind::kTuple);
        INFERD_RETURN_IF_ERROR(Container(t, items));
        t->items = std::move(items);
        INFERD_RETURN_IF_ERROR(Push(std::move(t)));
        break;
      }
      case 'a': {  // APPEND
        INFERD_ASSIGN_OR_RETURN(Obj v, Pop());
        if (stack_.empty() || stack_.back()->kind != Kind::kList) return Corrupt("APPEND to a non-list");
        INFERD_RETURN_IF_ERROR(Container(stack_.back(), {v}));
        stack_.back()->items.push_back(std::move(v));
        break;
      }
      case 'e': {  // APPENDS
        INFERD_ASSIGN_OR_RETURN(std::vector<Obj> items, PopToMark());
        if (stack_.empty() || stack_.back()->kind != Kind::kList) return Corrupt("APPENDS to a non-list");
        INFERD_RETURN_IF_ERROR(Container(stack_.back(), items));
        for (Obj& v : items) stack_.back()->items.push_back(std::move(v));
        break;
      }
      case 's': {  // SETITEM
        INFERD_ASSIGN_OR_RETURN(Obj v, Pop());
        INFERD_ASSIGN_OR_RETURN(Obj k, Pop());
        if (stack_.empty()) return Corrupt("SETITEM without a dict");
        INFERD_RETURN_IF_ERROR(SetItems(stack_.back(), {std::move(k), std::move(v)}));
        break;
      }
      case 'u': {  // SETITEMS
        INFERD_ASSIGN_OR_RETURN(std::vector<Obj> kv, PopToMark());
        if (stack_.empty()) return Corrupt("SETITEMS without a dict");
        INFERD_RETURN_IF_ERROR(SetItems(stack_.back(), std::move(kv)));
        break;
      }
      case 'Q': {  // BINPERSID
        INFERD_ASSIGN_OR_RETURN(Obj pid, Pop());
        INFERD_ASSIGN_OR_RETURN(Obj s, PersistentLoad(pid));
        INFERD_RETURN_IF_ERROR(Push(std::move(s)));
        break;
      }
      case 'R': {  // REDUCE
        INFERD_ASSIGN_OR_RETURN(Obj args, Pop());
        INFERD_ASSIGN_OR_RETURN(Obj fn, Pop());
        INFERD_ASSIGN_OR_RETURN(Obj r, Reduce(fn, args));
        INFERD_RETURN_IF_ERROR(Push(std::move(r)));
        break;
      }
      case 'b': {  // BUILD: a state dict's OrderedDict gets its _metadata attribute; ignored
        INFERD_ASSIGN_OR_RETURN(Obj state, Pop());
        if (stack_.empty() || (stack_.back()->kind != Kind::kDict && stack_.back()->kind != Kind::kTensor)) {
          return Corrupt("BUILD of an object that is not a dict or tensor");
        }
        break;
      }
      default:
        return Unimplemented(fmt::format("pytorch checkpoint '{}': pickle opcode 0x{:02x} at byte {} is not part of "
                                         "a state dict",
                                         label_, op, pos() - 1));
    }
  }
}

}  // namespace

Status TorchCheckpoint::AddFile(const uint8_t* data, size_t size, const std::string& label) {
  if (size >= 2 && data[0] == 0x80 && data[1] == 0x02) {
    return Unimplemented("pytorch checkpoint '" + label + "' is in the pre-1.6 (non-zip) format; re-save it with "
                         "torch.save (or convert it to safetensors)");
  }
  INFERD_ASSIGN_OR_RETURN(ZipArchive zip, ZipArchive::Parse(data, size, label));
  const ZipEntry* pkl = nullptr;
  for (const auto& [name, e] : zip.entries()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
      if (pkl != nullptr) return DataLoss("pytorch checkpoint '" + label + "' has two data.pkl entries");
      pkl = &e;
    }
  }
  if (pkl == nullptr) return DataLoss("pytorch checkpoint '" + label + "' has no <archive>/data.pkl entry");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string("data.pkl").size());
  if (const ZipEntry* bo = zip.Find(prefix + "byteorder"); bo && std::string(reinterpret_cast<const char*>(bo->data),
                                                                            bo->size) != "little") {
    return Unimplemented("pytorch checkpoint '" + label + "' was saved big-endian");
  }
  Unpickler u(pkl->data, pkl->size, zip, prefix, label);
  INFERD_ASSIGN_OR_RETURN(Obj root, u.Run());
  if (root->kind != Kind::kDict) {
    return InvalidArgument("pytorch checkpoint '" + label + "' is not a state dict (a dict of tensors)");
  }
  for (const auto& [k, v] : root->dict) {
    if (k->kind != Kind::kStr) return InvalidArgument("pytorch checkpoint '" + label + "': a key is not a string");
    if (v->kind != Kind::kTensor) {
      return InvalidArgument("pytorch checkpoint '" + label + "': '" + k->s + "' is not a tensor");
    }
    StTensor t = v->tensor;
    t.name = k->s;
    if (!tensors_.emplace(k->s, std::move(t)).second) {
      return InvalidArgument("pytorch checkpoint: tensor '" + k->s + "' appears twice (in '" + label + "')");
    }
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<TorchCheckpoint>> TorchCheckpoint::Parse(const uint8_t* data, size_t size,
                                                                  const std::string& label) {
  std::unique_ptr<TorchCheckpoint> c(new TorchCheckpoint());
  INFERD_RETURN_IF_ERROR(c->AddFile(data, size, label));
  return c;
}

bool HasTorchCheckpoint(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / "pytorch_model.bin", ec) ||
         fs::exists(fs::path(dir) / "pytorch_model.bin.index.json", ec);
}

StatusOr<std::unique_ptr<TorchCheckpoint>> TorchCheckpoint::Open(const std::string& path) {
  std::unique_ptr<TorchCheckpoint> c(new TorchCheckpoint());
  auto add = [&](const std::string& file) -> Status {
    INFERD_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(file));
    INFERD_RETURN_IF_ERROR(c->AddFile(f->data(), f->size(), file));
    c->files_.push_back(std::move(f));
    return Status::OK();
  };
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    INFERD_RETURN_IF_ERROR(add(path));
    return c;
  }
  const fs::path index = fs::path(path) / "pytorch_model.bin.index.json";
  if (!fs::exists(index, ec)) {
    INFERD_RETURN_IF_ERROR(add((fs::path(path) / "pytorch_model.bin").string()));
    return c;
  }
  INFERD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index.string()));
  INFERD_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(text, index.string()));
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (!j.is_object() || wm == j.end() || !wm->is_object()) {
    return InvalidArgument("'" + index.string() + "' has no weight_map object");
  }
  std::set<std::string> shards;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos ||
        shard.get<std::string>().empty() || shard.get<std::string>()[0] == '.') {
      return InvalidArgument("'" + index.string() + "': the shard of '" + name + "' is not a file name");
    }
    shards.insert(shard.get<std::string>());
  }
  for (const std::string& s : shards) INFERD_RETURN_IF_ERROR(add((fs::path(path) / s).string()));
  for (const auto& [name, shard] : wm->items()) {
    if (c->Find(name) == nullptr) {
      return DataLoss("'" + index.string() + "' maps '" + name + "' to " + shard.get<std::string>() +
                      ", which does not hold it");
    }
  }
  return c;
}

const StTensor* TorchCheckpoint::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace inferd
