#include "fsbi/table_io.hpp"

#include "h5/h5.hpp"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fsbi {
namespace fs = std::filesystem;

namespace {

bool is_csv(const std::string& path) {
  const auto ext = fs::path(path).extension().string();
  return ext == ".csv" || ext == ".CSV" || ext == ".txt";
}

// "file.h5:/a/b" → {"file.h5", "/a/b"}; no ":/" → {path, ""}.
std::pair<std::string, std::string> split_source(const std::string& s) {
  const auto pos = s.find(":/");
  if (pos == std::string::npos) return {s, ""};
  return {s.substr(0, pos), s.substr(pos + 1)};
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::stringstream ss(line);
  while (std::getline(ss, field, ',')) {
    const auto b = field.find_first_not_of(" \t\r");
    const auto e = field.find_last_not_of(" \t\r");
    out.push_back(b == std::string::npos ? "" : field.substr(b, e - b + 1));
  }
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

bool parse_double(const std::string& s, double& v) {
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, v);
  return ec == std::errc() && ptr == e;
}

Table read_csv(const std::string& path, Eigen::Index columns, const std::string& what,
               const std::string& expected) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw TableError(fmt::format("{}: no such file", path));
  if (fs::is_directory(path, ec)) throw TableError(fmt::format("{}: is a directory, expected a CSV file", path));
  std::ifstream in(path);
  if (!in) throw TableError(fmt::format("{}: cannot be opened for reading", path));
  std::vector<double> values;
  std::string line;
  Eigen::Index rows = 0;
  int line_no = 0;
  bool first_content = true;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[line.find_first_not_of(" \t")] == '#')
      continue;
    const auto fields = split_fields(line);
    std::vector<double> row;
    bool numeric = true;
    for (const auto& f : fields) {
      double v = 0;
      if (!parse_double(f, v)) {
        numeric = false;
        break;
      }
      row.push_back(v);
    }
    if (!numeric) {
      if (first_content) {  // a header row
        first_content = false;
        if (static_cast<Eigen::Index>(fields.size()) != columns)
          throw TableError(fmt::format("{}: the header has {} columns, {}", path, fields.size(), expected));
        continue;
      }
      throw TableError(fmt::format("{}: line {} is not a row of numbers: '{}'", path, line_no, line));
    }
    first_content = false;
    if (static_cast<Eigen::Index>(row.size()) != columns)
      throw TableError(fmt::format("{}: line {} has {} values, {}", path, line_no, row.size(), expected));
    for (double v : row)
      if (!std::isfinite(v)) throw TableError(fmt::format("{}: line {} has a non-finite value", path, line_no));
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) throw TableError(fmt::format("{}: no {} rows (the file is empty or has only a header)", path, what));
  return Eigen::Map<Table>(values.data(), rows, columns);
}

Table read_h5(const std::string& path, std::string dataset, Eigen::Index columns, const std::string& what,
              const std::string& expected) {
  if (dataset.empty())
    throw TableError(fmt::format("{}: name the dataset holding the {} as {}:/path/to/dataset", path, what, path));
  try {
    h5::File f = h5::File::open(path);
    h5::Dataset ds = f.open_dataset(dataset);
    const auto shape = ds.shape();
    if (shape.empty() || shape.size() > 2)
      throw TableError(fmt::format("{}:{}: a {}-dimensional dataset; {} must be 1-D (one row) or 2-D", path, dataset,
                                   shape.size(), what));
    const Eigen::Index cols = shape.size() == 2 ? static_cast<Eigen::Index>(shape[1]) : static_cast<Eigen::Index>(shape[0]);
    const Eigen::Index rows = shape.size() == 2 ? static_cast<Eigen::Index>(shape[0]) : 1;
    if (cols != columns)
      throw TableError(fmt::format("{}:{}: rows have {} values, {}", path, dataset, cols, expected));
    if (rows == 0) throw TableError(fmt::format("{}:{}: no {} rows", path, dataset, what));
    auto v = ds.read_all_double();
    return Eigen::Map<Table>(v.data(), rows, cols);
  } catch (const h5::Error& e) {
    throw TableError(e.what());
  }
}

}  // namespace

Table read_table(const std::string& source, Eigen::Index columns, const std::string& what,
                 const std::string& expected, const std::string& default_dataset) {
  auto [path, dataset] = split_source(source);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw TableError(fmt::format("{}: is a folder; give the {} as a CSV file (FILE.csv) or an HDF5 dataset "
                                 "(FILE.h5:/dataset)", path, what));
  if (is_csv(path)) return read_csv(path, columns, what, expected);
  return read_h5(path, dataset.empty() ? default_dataset : dataset, columns, what, expected);
}

void write_table(const std::string& destination, const Table& table,
                 const std::vector<std::string>& column_names, const std::string& default_dataset) {
  auto [path, dataset] = split_source(destination);
  const std::string tmp = path + ".partial";
  if (is_csv(path)) {
    {
      std::ofstream out(tmp);
      if (!out) throw TableError(fmt::format("{}: cannot be written", path));
      out << fmt::format("{}\n", fmt::join(column_names, ","));
      for (Eigen::Index i = 0; i < table.rows(); ++i) {
        for (Eigen::Index j = 0; j < table.cols(); ++j) out << (j ? "," : "") << fmt::format("{}", table(i, j));
        out << '\n';
      }
      if (!out) throw TableError(fmt::format("{}: write failed", path));
    }
  } else {
    if (dataset.empty()) dataset = default_dataset;
    h5::File f = h5::File::create(tmp);
    f.set_attribute("fsbi_format", "fsbi");
    const auto slash = dataset.find_last_of('/');
    std::string name = dataset;
    h5::Group g;
    if (slash != std::string::npos && slash > 0) {
      g = f.create_group(dataset.substr(1, slash - 1));
      name = dataset.substr(slash + 1);
    } else if (!name.empty() && name[0] == '/') {
      name = name.substr(1);
    }
    h5::Group& parent = g.id() >= 0 ? g : static_cast<h5::Group&>(f);
    h5::Dataset ds = parent.create_dataset(name, h5::DType::f64,
                                      {static_cast<std::uint64_t>(table.rows()), static_cast<std::uint64_t>(table.cols())});
    ds.write_rows(0, static_cast<std::uint64_t>(table.rows()), std::span<const double>(table.data(), table.size()));
    ds.set_attribute("column_names", column_names);
    ds = h5::Dataset();
    g = h5::Group();
    f.close();
  }
  fs::rename(tmp, path);
}

}  // namespace fsbi
