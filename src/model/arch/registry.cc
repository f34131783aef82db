// The list of families. Adding one: its file in model/arch/ and a line here.
#include <string>

#include "model/arch.h"

namespace inferd {

extern const ArchInfo kLlamaArch, kMistralArch, kQwen2Arch, kQwen3Arch, kGemmaArch, kGemma2Arch, kGemma3Arch,
    kPhi3Arch, kInternLm2Arch, kBaichuanArch;

namespace {

const ArchInfo* const kArchs[] = {&kLlamaArch, &kMistralArch, &kQwen2Arch,  &kQwen3Arch,
                                  &kGemmaArch, &kGemma2Arch,  &kGemma3Arch, &kPhi3Arch,
                                  &kInternLm2Arch, &kBaichuanArch};

std::string Join(const std::vector<std::string> ArchInfo::*names) {
  std::string out;
  for (const ArchInfo* a : kArchs)
    for (const std::string& n : a->*names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

const ArchInfo* FindArchByGguf(const std::string& name) {
  for (const ArchInfo* a : kArchs)
    for (const std::string& n : a->gguf_names)
      if (n == name) return a;
  return nullptr;
}

const ArchInfo* FindArchByHf(const std::string& name) {
  for (const ArchInfo* a : kArchs)
    for (const std::string& n : a->hf_names)
      if (n == name) return a;
  return nullptr;
}

const ArchInfo* FindArch(const std::string& family) {
  for (const ArchInfo* a : kArchs)
    if (family == a->name) return a;
  return nullptr;
}

std::string SupportedArchitectures() { return Join(&ArchInfo::gguf_names); }
std::string SupportedHfArchitectures() { return Join(&ArchInfo::hf_names); }

}  // namespace inferd
