#include "output_path.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>

namespace fsbi {

OutputFolder output_folder(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path folder = fs::path(path).parent_path();
  std::error_code ec;
  if (folder.empty() || fs::is_directory(folder, ec)) return OutputFolder::usable;
  return fs::exists(folder, ec) ? OutputFolder::not_a_folder : OutputFolder::missing;
}

std::string output_path_problem(const std::string& output, bool overwrite) {
  std::error_code ec;
  if (std::filesystem::exists(output, ec) && !overwrite)
    return fmt::format("{} already exists; choose another --output or pass --overwrite", output);
  const std::string folder = std::filesystem::path(output).parent_path().string();
  switch (output_folder(output)) {
    case OutputFolder::usable: return "";
    case OutputFolder::not_a_folder:
      return fmt::format("{}: '{}' is not a folder; choose another --output", output, folder);
    case OutputFolder::missing:
      return fmt::format("{}: the folder '{}' does not exist; create it or choose another --output", output, folder);
  }
  return "";
}

}  // namespace fsbi
