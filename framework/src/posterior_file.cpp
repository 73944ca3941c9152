#include "posterior_file.hpp"

#include "file_stamp.hpp"

#include "fsbi/version.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>
#include <span>
#include <stdexcept>
#include <string_view>

namespace fsbi {

namespace {

constexpr const char* posterior_group = "posterior";
constexpr const char* stats_group = "sample_stats";
constexpr const char* observed_group = "observed_data";
constexpr const char* dimid_attribute = "_Netcdf4Dimid";
constexpr const char* format_version_attribute = "fsbi_posterior_format_version";

// Attribute names the three groups use themselves, or that netCDF-4 / HDF5 dimension scales
// reserve; provenance may not use them.
bool reserved_attribute(std::string_view name) {
  static const std::set<std::string_view> reserved{
      "rhat",  "ess", format_version_attribute, "fsbi_format", "fsbi_format_version",
      "CLASS", "NAME", "DIMENSION_LIST",        "REFERENCE_LIST"};
  return name.empty() || name.front() == '_' || reserved.contains(name);
}

// ---- Writing ------------------------------------------------------------------------------------

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("write_posterior: " + message);
}

// A netCDF variable/dimension name that is also a valid HDF5 link name.
void require_name(const std::string& name, const std::string& what) {
  require(!name.empty(), what + " is empty");
  require(name.find('/') == std::string::npos && name != "." && name != "..",
          fmt::format("{} '{}' is not a valid netCDF/HDF5 name (contains '/')", what, name));
}

void require_unique(const std::vector<std::string>& names, const std::string& what) {
  std::set<std::string> seen;
  for (const auto& n : names) {
    require(!n.empty(), what + " contain an empty name");
    require(seen.insert(n).second, fmt::format("{} contain '{}' twice", what, n));
  }
}

void validate(const PosteriorSamples& s) {
  const std::size_t d = s.parameter_names.size();
  require(d > 0, "no parameter names");
  require_unique(s.parameter_names, "parameter names");
  require(s.chains > 0 && s.draws > 0,
          fmt::format("chains and draws must be positive, got {} x {}", s.chains, s.draws));
  const std::size_t per_stat = static_cast<std::size_t>(s.chains) * static_cast<std::size_t>(s.draws);
  require(s.theta.size() == per_stat * d,
          fmt::format("theta has {} values, expected chains x draws x d = {} x {} x {} = {}",
                      s.theta.size(), s.chains, s.draws, d, per_stat * d));
  std::set<std::string> stat_names{"chain", "draw", "diverging"};
  for (const auto& [name, values] : s.stats) {
    require_name(name, "statistic name");
    require(stat_names.insert(name).second,
            fmt::format("statistic name '{}' is used twice or reserved (chain, draw, diverging)",
                        name));
    require(values.size() == per_stat,
            fmt::format("statistic '{}' has {} values, expected chains x draws = {}", name,
                        values.size(), per_stat));
  }
  require(s.diverging.empty() || s.diverging.size() == per_stat,
          fmt::format("diverging has {} values, expected chains x draws = {} (or none)",
                      s.diverging.size(), per_stat));
  const std::size_t k = s.data_names.size();
  require(k > 0, "no data names");
  require_unique(s.data_names, "data names");
  require(s.observations.rows() > 0, "no observations");
  require(static_cast<std::size_t>(s.observations.cols()) == k,
          fmt::format("observations have {} columns, expected {} (one per data name)",
                      s.observations.cols(), k));
  require(s.rhat.empty() || s.rhat.size() == d,
          fmt::format("rhat has {} values, expected {} (one per parameter) or none", s.rhat.size(), d));
  require(s.ess.empty() || s.ess.size() == d,
          fmt::format("ess has {} values, expected {} (one per parameter) or none", s.ess.size(), d));
  std::set<std::string> attribute_names;
  for (const auto& [name, value] : s.attributes) {
    require(!reserved_attribute(name),
            fmt::format("attribute name '{}' is reserved (empty, starts with '_', or used by the "
                        "posterior groups themselves)",
                        name));
    require(attribute_names.insert(name).second,
            fmt::format("attribute '{}' is given twice", name));
  }
}

// Largest _Netcdf4Dimid on any dataset under g (recursively), or -1. Also refuses datasets in the
// root (netCDF-4 readers would see them as variables without dimensions).
void scan(const h5::Group& g, bool is_root, std::int64_t& max_dimid) {
  for (const auto& child : g.children()) {
    if (g.is_group(child)) {
      scan(g.open_group(child), false, max_dimid);
    } else if (g.is_dataset(child)) {
      if (is_root)
        throw std::invalid_argument(
            fmt::format("write_posterior: {}: the root group holds dataset '{}'; posterior files "
                        "keep datasets in groups",
                        g.file_name(), child));
      const h5::Dataset ds = g.open_dataset(child);
      if (ds.has_attribute(dimid_attribute))
        max_dimid = std::max(max_dimid, ds.attribute_int(dimid_attribute));
    }
  }
}

// Creates netCDF-4 dimensions (coordinate variables that are HDF5 dimension scales) with ids
// unique across the file.
class DimensionWriter {
 public:
  explicit DimensionWriter(std::int64_t first_id) : next_id_(first_id) {}

  // Coordinate values 0..n-1 (int64).
  h5::Dataset index(h5::Group& g, const std::string& name, std::uint64_t n) {
    std::vector<std::int64_t> values(n);
    std::iota(values.begin(), values.end(), std::int64_t{0});
    h5::Dataset ds = g.create_array(name, h5::DType::i64, {n});
    ds.write_all(std::span<const std::int64_t>(values));
    finish(ds, name);
    return ds;
  }

  // Coordinate values: the names (variable-length UTF-8).
  h5::Dataset labels(h5::Group& g, const std::string& name, const std::vector<std::string>& values) {
    h5::Dataset ds = g.create_string_dataset(name, values);
    finish(ds, name);
    return ds;
  }

 private:
  void finish(h5::Dataset& ds, const std::string& name) {
    ds.make_dimension_scale(name);
    if (next_id_ > std::numeric_limits<std::int32_t>::max())
      throw h5::Error(ds.path() + ": no netCDF dimension id left");
    ds.set_attribute(dimid_attribute, static_cast<std::int32_t>(next_id_++));
  }
  std::int64_t next_id_;
};

void attach(h5::Dataset& var, std::initializer_list<const h5::Dataset*> scales) {
  unsigned axis = 0;
  for (const h5::Dataset* s : scales) var.attach_scale(*s, axis++);
}

}  // namespace

void write_posterior(h5::File& file, const PosteriorSamples& s) {
  validate(s);
  for (const char* name : {posterior_group, stats_group, observed_group})
    if (file.exists(name))
      throw std::invalid_argument(
          fmt::format("write_posterior: {} already holds /{}", file.filename(), name));
  std::int64_t max_dimid = -1;
  scan(file, true, max_dimid);
  DimensionWriter dims(max_dimid + 1);

  const auto chains = static_cast<std::uint64_t>(s.chains);
  const auto draws = static_cast<std::uint64_t>(s.draws);
  const std::uint64_t d = s.parameter_names.size();

  // Root: what netCDF-4 readers and fsbi look for, then provenance.
  stamp_fsbi_file(file);
  file.set_fixed_string_attribute(
      "_NCProperties", fmt::format("version=2,fsbi={},hdf5={}", version_string, h5::hdf5_version()));
  for (const auto& [name, value] : s.attributes) file.set_attribute(name, value);

  {
    h5::Group g = file.create_group(posterior_group);
    const h5::Dataset chain = dims.index(g, "chain", chains);
    const h5::Dataset draw = dims.index(g, "draw", draws);
    const h5::Dataset parameter = dims.labels(g, "parameter", s.parameter_names);
    h5::Dataset theta = g.create_array("theta", h5::DType::f64, {chains, draws, d});
    theta.write_all(std::span<const double>(s.theta));
    attach(theta, {&chain, &draw, &parameter});
    g.set_attribute(format_version_attribute, std::int64_t{posterior_format_version});
    for (const auto& [name, value] : s.attributes) g.set_attribute(name, value);
    if (!s.rhat.empty()) g.set_attribute("rhat", std::span<const double>(s.rhat));
    if (!s.ess.empty()) g.set_attribute("ess", std::span<const double>(s.ess));
  }
  {
    h5::Group g = file.create_group(stats_group);
    const h5::Dataset chain = dims.index(g, "chain", chains);
    const h5::Dataset draw = dims.index(g, "draw", draws);
    for (const auto& [name, values] : s.stats) {
      h5::Dataset v = g.create_array(name, h5::DType::f64, {chains, draws});
      v.write_all(std::span<const double>(values));
      attach(v, {&chain, &draw});
    }
    if (!s.diverging.empty()) {
      h5::Dataset v = g.create_array("diverging", h5::DType::i8, {chains, draws});
      v.write_all(std::span<const std::int8_t>(s.diverging));
      attach(v, {&chain, &draw});
    }
  }
  {
    h5::Group g = file.create_group(observed_group);
    const auto n = static_cast<std::uint64_t>(s.observations.rows());
    const h5::Dataset trial = dims.index(g, "trial", n);
    const h5::Dataset data = dims.labels(g, "data", s.data_names);
    h5::Dataset x = g.create_array("x", h5::DType::f64, {n, s.data_names.size()});
    x.write_all(std::span<const double>(s.observations.data(),
                                        static_cast<std::size_t>(s.observations.size())));
    attach(x, {&trial, &data});
  }
}

void write_posterior_predictive(h5::File& file, const Eigen::MatrixXd& replicates,
                                const std::vector<std::string>& data_names) {
  if (file.exists("posterior_predictive"))
    throw std::invalid_argument(
        fmt::format("write_posterior_predictive: {} already holds /posterior_predictive", file.filename()));
  if (static_cast<std::size_t>(replicates.rows()) != data_names.size())
    throw std::invalid_argument(fmt::format("write_posterior_predictive: {} data names for {} data values",
                                            data_names.size(), replicates.rows()));
  require_unique(data_names, "data names");
  std::int64_t max_dimid = -1;
  scan(file, true, max_dimid);
  DimensionWriter dims(max_dimid + 1);
  h5::Group g = file.create_group("posterior_predictive");
  const h5::Dataset chain = dims.index(g, "chain", 1);
  const h5::Dataset draw = dims.index(g, "draw", static_cast<std::uint64_t>(replicates.cols()));
  const h5::Dataset data = dims.labels(g, "data", data_names);
  // Column-major k × m is C order [draw][data]: one chain of m draws.
  h5::Dataset x = g.create_array("x", h5::DType::f64, {1, static_cast<std::uint64_t>(replicates.cols()),
                                                         static_cast<std::uint64_t>(replicates.rows())});
  x.write_all(std::span<const double>(replicates.data(), static_cast<std::size_t>(replicates.size())));
  attach(x, {&chain, &draw, &data});
}

// ---- Reading ------------------------------------------------------------------------------------

namespace {

class Reader {
 public:
  explicit Reader(const std::string& filename) : filename_(filename) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw std::runtime_error(fmt::format("{}: malformed posterior samples: {}", filename_, message));
  }

  // A 1-D dimension scale `name` in group `gname`; returns its length.
  std::uint64_t dimension(const h5::Group& g, const std::string& gname, const std::string& name) const {
    if (!g.is_dataset(name)) fail(fmt::format("/{} has no dimension '{}'", gname, name));
    const h5::Dataset ds = g.open_dataset(name);
    const auto shape = ds.shape();
    if (shape.size() != 1)
      fail(fmt::format("/{}/{} has {} dimensions, expected a 1-D coordinate", gname, name, shape.size()));
    if (!ds.is_dimension_scale())
      fail(fmt::format("/{}/{} is not a dimension scale", gname, name));
    return shape[0];
  }

  // Variable `name` in group `gname` with dimensions `dims` (their lengths in `lengths`), every
  // axis attached to the scale of that dimension in the same group.
  h5::Dataset variable(const h5::Group& g, const std::string& gname, const std::string& name,
                       const std::vector<std::string>& dims,
                       const std::vector<std::uint64_t>& lengths) const {
    if (!g.is_dataset(name)) fail(fmt::format("/{} has no variable '{}'", gname, name));
    h5::Dataset ds = g.open_dataset(name);
    const auto shape = ds.shape();
    if (shape != lengths)
      fail(fmt::format("/{}/{} has shape ({}), expected ({}) for dimensions ({})", gname, name,
                       fmt::join(shape, ", "), fmt::join(lengths, ", "), fmt::join(dims, ", ")));
    for (unsigned axis = 0; axis < dims.size(); ++axis) {
      const auto scales = ds.attached_scales(axis);
      const std::string expected = "/" + gname + "/" + dims[axis];
      if (scales.size() != 1 || scales.front() != expected)
        fail(fmt::format("axis {} of /{}/{} is attached to [{}], expected dimension {}", axis, gname,
                         name, fmt::join(scales, ", "), expected));
    }
    return ds;
  }

  int count(std::uint64_t n, const std::string& what) const {
    if (n == 0 || n > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
      fail(fmt::format("{} has length {}", what, n));
    return static_cast<int>(n);
  }

 private:
  std::string filename_;
};

PosteriorSamples read_groups(h5::File& file) {
  const Reader r(file.filename());
  PosteriorSamples s;

  // /posterior
  const h5::Group post = file.open_group(posterior_group);
  if (post.has_attribute(format_version_attribute)) {
    const std::int64_t v = post.attribute_int(format_version_attribute);
    if (v > posterior_format_version)
      throw std::runtime_error(fmt::format(
          "{}: posterior format version {} is not supported by this fsbi (reads {}); update fsbi",
          file.filename(), v, posterior_format_version));
  }
  const std::uint64_t chains = r.dimension(post, posterior_group, "chain");
  const std::uint64_t draws = r.dimension(post, posterior_group, "draw");
  const std::uint64_t d = r.dimension(post, posterior_group, "parameter");
  s.chains = r.count(chains, "/posterior/chain");
  s.draws = r.count(draws, "/posterior/draw");
  s.parameter_names = post.open_dataset("parameter").read_all_strings();
  s.theta = r.variable(post, posterior_group, "theta", {"chain", "draw", "parameter"},
                       {chains, draws, d})
                .read_all_double();
  for (const auto& name : post.attribute_names()) {
    if (name == "rhat" || name == "ess") {
      auto values = post.attribute_doubles(name);
      if (values.size() != d)
        r.fail(fmt::format("/posterior attribute '{}' has {} values, expected {} (one per parameter)",
                           name, values.size(), d));
      (name == "rhat" ? s.rhat : s.ess) = std::move(values);
      continue;
    }
    if (reserved_attribute(name)) continue;
    try {
      s.attributes.emplace_back(name, post.attribute_string(name));
    } catch (const h5::Error&) {
      // not a single string: not provenance written by write_posterior
    }
  }

  // /sample_stats
  const h5::Group stats = file.open_group(stats_group);
  const std::uint64_t stat_chains = r.dimension(stats, stats_group, "chain");
  const std::uint64_t stat_draws = r.dimension(stats, stats_group, "draw");
  if (stat_chains != chains || stat_draws != draws)
    r.fail(fmt::format("/sample_stats has {} x {} chains x draws, /posterior has {} x {}",
                       stat_chains, stat_draws, chains, draws));
  for (const auto& name : stats.children()) {
    if (name == "chain" || name == "draw") continue;
    if (!stats.is_dataset(name)) r.fail(fmt::format("/sample_stats/{} is not a variable", name));
    const h5::Dataset v = r.variable(stats, stats_group, name, {"chain", "draw"}, {chains, draws});
    if (name == "diverging") {
      const auto values = v.read_all_int();
      s.diverging.reserve(values.size());
      for (const std::int64_t b : values) {
        if (b < std::numeric_limits<std::int8_t>::min() || b > std::numeric_limits<std::int8_t>::max())
          r.fail(fmt::format("/sample_stats/diverging holds {}, expected int8 flags", b));
        s.diverging.push_back(static_cast<std::int8_t>(b));
      }
    } else {
      s.stats.emplace_back(name, v.read_all_double());
    }
  }

  // /observed_data
  const h5::Group obs = file.open_group(observed_group);
  const std::uint64_t trials = r.dimension(obs, observed_group, "trial");
  const std::uint64_t k = r.dimension(obs, observed_group, "data");
  r.count(trials, "/observed_data/trial");
  r.count(k, "/observed_data/data");
  s.data_names = obs.open_dataset("data").read_all_strings();
  const auto x = r.variable(obs, observed_group, "x", {"trial", "data"}, {trials, k}).read_all_double();
  s.observations.resize(static_cast<Eigen::Index>(trials), static_cast<Eigen::Index>(k));
  std::copy(x.begin(), x.end(), s.observations.data());
  return s;
}

}  // namespace

PosteriorSamples read_posterior(h5::File& file) {
  for (const char* name : {posterior_group, stats_group, observed_group})
    if (!file.is_group(name))
      throw std::runtime_error(fmt::format(
          "{}: no /{} group: not a file of posterior samples (expected /posterior, /sample_stats "
          "and /observed_data)",
          file.filename(), name));
  try {
    return read_groups(file);
  } catch (const h5::Error& e) {
    throw std::runtime_error(
        fmt::format("{}: malformed posterior samples: {}", file.filename(), e.what()));
  }
}

}  // namespace fsbi
