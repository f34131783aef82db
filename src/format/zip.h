// A read-only view of a ZIP archive's stored (uncompressed) entries, with ZIP64 — the
// container of PyTorch's torch.save format, which stores every entry uncompressed.
//
// Contract: every offset and size from the archive is checked against the buffer before
// use; a corrupt archive is a DataLoss naming what is wrong; a compressed or encrypted
// entry is an Unimplemented naming it (callers that only read stored entries say so).
// Ownership: entries point into the caller's buffer, which must outlive the ZipArchive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "inferd/status.h"

namespace inferd {

struct ZipEntry {
  std::string name;
  const uint8_t* data = nullptr;  // the stored bytes
  size_t size = 0;
};

class ZipArchive {
 public:
  // Parses the central directory of `data`; `label` names the archive in errors.
  static StatusOr<ZipArchive> Parse(const uint8_t* data, size_t size, const std::string& label);
  const ZipEntry* Find(const std::string& name) const;
  const std::map<std::string, ZipEntry>& entries() const { return entries_; }

 private:
  std::map<std::string, ZipEntry> entries_;
};

}  // namespace inferd
