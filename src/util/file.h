// Whole-file reads.
#pragma once

#include <string>

#include "inferd/status.h"

namespace inferd {

// Reads a whole file into a string (NotFound / InvalidArgument on failure).
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace inferd
