#include "output_path.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>

namespace fsbi {

std::string output_path_problem(const std::string& output, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(output, ec) && !overwrite)
    return fmt::format("{} already exists; choose another --output or pass --overwrite", output);
  const fs::path folder = fs::path(output).parent_path();
  if (folder.empty() || fs::is_directory(folder, ec)) return "";
  if (fs::exists(folder, ec))
    return fmt::format("{}: '{}' is not a folder; choose another --output", output, folder.string());
  return fmt::format("{}: the folder '{}' does not exist; create it or choose another --output", output,
                     folder.string());
}

}  // namespace fsbi
