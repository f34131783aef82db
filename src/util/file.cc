#include "util/file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace inferd {

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("file '" + path + "' does not exist");
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument("'" + path + "' is a directory, expected a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot open '" + path + "' for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InvalidArgument("reading '" + path + "' failed");
  return ss.str();
}

}  // namespace inferd
