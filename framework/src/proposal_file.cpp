#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "proposal_file.hpp"

#include "file_stamp.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

namespace fsbi {
namespace {

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  if (shape.empty()) return "a scalar";
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? " × " : "", shape[i]);
  return s;
}

// The components of a '/'-separated in-file path, without empty ones.
std::vector<std::string> path_parts(const std::string& group_path) {
  std::vector<std::string> parts;
  std::string cur;
  for (const char c : group_path) {
    if (c == '/') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  return parts;
}

}  // namespace

void write_gaussian_mixture(h5::Group& group, const GaussianMixture& g) {
  if (!g.finalized()) {
    throw ProposalError(fmt::format("{}: cannot write a mixture that is not finalized (call finalize())", group.path()));
  }
  const auto K = static_cast<std::uint64_t>(g.components());
  const auto d = static_cast<std::uint64_t>(g.dim());
  group.set_attribute("components", static_cast<std::int64_t>(K));
  group.create_array("weights", h5::DType::f64, {K})
      .write_all(std::span<const double>(g.weights.data(), static_cast<std::size_t>(K)));
  // means is d × K column-major: its memory is exactly the K × d row-major array.
  group.create_array("means", h5::DType::f64, {K, d})
      .write_all(std::span<const double>(g.means.data(), static_cast<std::size_t>(K * d)));
  std::vector<double> cov(static_cast<std::size_t>(K * d * d));
  for (std::uint64_t k = 0; k < K; ++k) {
    const Eigen::MatrixXd& c = g.covariances[static_cast<std::size_t>(k)];
    for (std::uint64_t i = 0; i < d; ++i)
      for (std::uint64_t j = 0; j < d; ++j)
        cov[static_cast<std::size_t>((k * d + i) * d + j)] =
            c(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
  }
  group.create_array("covariances", h5::DType::f64, {K, d, d}).write_all(std::span<const double>(cov));
}

void write_gaussian_mixture(const std::string& path, const std::string& group_path, const GaussianMixture& g) {
  const auto parts = path_parts(group_path);
  if (parts.empty()) {
    throw ProposalError(fmt::format("{}: group path '{}' names no group; give e.g. /proposal/mixture", path, group_path));
  }
  std::error_code ec;
  h5::File file = std::filesystem::exists(path, ec) ? h5::File::open(path, h5::Access::read_write)
                                                     : h5::File::create(path);
  stamp_fsbi_file(file);
  std::vector<h5::Group> chain;
  chain.reserve(parts.size());
  h5::Group* parent = &file;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    chain.push_back(parent->exists(parts[i]) ? parent->open_group(parts[i]) : parent->create_group(parts[i]));
    parent = &chain.back();
  }
  if (parent->exists(parts.back())) {
    throw ProposalError(fmt::format("{}: {} already exists; write the mixture to a new group", path, group_path));
  }
  chain.push_back(parent->create_group(parts.back()));
  write_gaussian_mixture(chain.back(), g);
  file.close();
}

GaussianMixture read_gaussian_mixture(const h5::Group& group) {
  const std::string& where = group.path();
  try {
    const std::int64_t K = group.attribute_int("components");
    if (K < 1) throw ProposalError(fmt::format("{}: attribute components is {}, expected at least 1", where, K));
    const auto uK = static_cast<std::uint64_t>(K);
    const h5::Dataset w = group.open_dataset("weights");
    const h5::Dataset m = group.open_dataset("means");
    const h5::Dataset c = group.open_dataset("covariances");
    const auto ws = w.shape(), ms = m.shape(), cs = c.shape();
    if (ws != std::vector<std::uint64_t>{uK}) {
      throw ProposalError(fmt::format("{} has shape {}, expected {} (one weight per component)", w.path(),
                                      shape_text(ws), K));
    }
    if (ms.size() != 2 || ms[0] != uK || ms[1] < 1) {
      throw ProposalError(fmt::format("{} has shape {}, expected {} × d with d ≥ 1 (one mean per row)", m.path(),
                                      shape_text(ms), K));
    }
    const std::uint64_t d = ms[1];
    if (cs != std::vector<std::uint64_t>{uK, d, d}) {
      throw ProposalError(fmt::format("{} has shape {}, expected {} × {} × {} (K × d × d)", c.path(), shape_text(cs),
                                      K, d, d));
    }
    const std::vector<double> wv = w.read_all_double(), mv = m.read_all_double(), cv = c.read_all_double();
    GaussianMixture g;
    g.weights = Eigen::Map<const Eigen::VectorXd>(wv.data(), K);
    g.means = Eigen::Map<const Eigen::MatrixXd>(mv.data(), static_cast<Eigen::Index>(d), K);
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    for (std::uint64_t k = 0; k < uK; ++k) {
      g.covariances.emplace_back(Eigen::Map<const RowMajor>(cv.data() + k * d * d, static_cast<Eigen::Index>(d),
                                                            static_cast<Eigen::Index>(d)));
    }
    try {
      g.finalize();
    } catch (const ProposalError& e) {
      throw ProposalError(fmt::format("{}: invalid mixture: {}", where, e.what()));
    }
    return g;
  } catch (const h5::Error& e) {
    throw ProposalError(fmt::format("{}: malformed Gaussian mixture: {}", where, e.what()));
  }
}

GaussianMixture read_gaussian_mixture(const std::string& path, const std::string& group_path) {
  try {
    const h5::File file = h5::File::open(path);
    const auto parts = path_parts(group_path);
    if (parts.empty()) return read_gaussian_mixture(static_cast<const h5::Group&>(file));
    std::string rel;
    for (const auto& p : parts) rel += (rel.empty() ? "" : "/") + p;
    return read_gaussian_mixture(file.open_group(rel));
  } catch (const h5::Error& e) {
    throw ProposalError(fmt::format("cannot read a Gaussian mixture from {}:{}: {}", path, group_path, e.what()));
  }
}

void write_prior_truncation(h5::Group& group, const PriorTruncation& truncation) {
  group.set_attribute("truncation_threshold", truncation.threshold);
  group.set_attribute("truncation_width", truncation.width);
  group.set_attribute("truncation_candidates", static_cast<std::int64_t>(truncation.candidates));
  group.set_attribute("truncation_mixture_share", truncation.mixture_share);
}

std::optional<PriorTruncation> read_prior_truncation(const h5::Group& group) {
  const char* names[] = {"truncation_threshold", "truncation_width", "truncation_candidates",
                         "truncation_mixture_share"};
  int present = 0;
  for (const char* n : names) present += group.has_attribute(n) ? 1 : 0;
  if (present == 0) return std::nullopt;
  if (present != 4) {
    throw ProposalError(fmt::format("{} has only some of the attributes truncation_threshold, truncation_width, "
                                    "truncation_candidates and truncation_mixture_share: the file is incomplete; "
                                    "delete it to rerun the round",
                                    group.path()));
  }
  PriorTruncation t;
  t.threshold = group.attribute_double("truncation_threshold");
  t.width = group.attribute_double("truncation_width");
  const std::int64_t m = group.attribute_int("truncation_candidates");
  t.mixture_share = group.attribute_double("truncation_mixture_share");
  if (m < 1 || m > std::numeric_limits<int>::max()) {
    throw ProposalError(fmt::format("{}: invalid truncation: truncation_candidates is {}, expected 1 to {}",
                                    group.path(), m, std::numeric_limits<int>::max()));
  }
  t.candidates = static_cast<int>(m);
  try {
    t.validate();
  } catch (const ProposalError& e) {
    throw ProposalError(fmt::format("{}: invalid truncation: {}", group.path(), e.what()));
  }
  return t;
}

void write_proposal_file(const std::string& path, const GaussianMixture& mixture, double defensive_fraction,
                         const std::optional<PriorTruncation>& truncation) {
  if (!(defensive_fraction > 0.0 && defensive_fraction <= 1.0)) {
    throw ProposalError(fmt::format("{}: defensive fraction {} must be in (0, 1]", path, defensive_fraction));
  }
  const std::string partial = path + ".partial";
  {
    h5::File file = h5::File::create(partial);
    stamp_fsbi_file(file);
    h5::Group g = file.create_group("proposal");
    g.set_attribute("defensive_fraction", defensive_fraction);
    if (truncation) write_prior_truncation(g, *truncation);
    write_gaussian_mixture(g, mixture);
    file.close();
  }
  std::error_code ec;
  std::filesystem::rename(partial, path, ec);
  if (ec) throw ProposalError(fmt::format("cannot rename {} to {}: {}", partial, path, ec.message()));
}

GaussianMixture read_proposal_file(const std::string& path, double* defensive_fraction,
                                   std::optional<PriorTruncation>* truncation) {
  try {
    const h5::File file = h5::File::open(path);
    if (!file.is_group("proposal")) {
      throw ProposalError(fmt::format("{}: no /proposal group (not a proposal file)", path));
    }
    const h5::Group g = file.open_group("proposal");
    const double alpha = g.attribute_double("defensive_fraction");
    if (!(alpha > 0.0 && alpha <= 1.0)) {
      throw ProposalError(fmt::format("{}: attribute defensive_fraction is {}, expected a value in (0, 1]", g.path(),
                                      alpha));
    }
    GaussianMixture mixture = read_gaussian_mixture(g);
    const std::optional<PriorTruncation> t = read_prior_truncation(g);
    if (defensive_fraction) *defensive_fraction = alpha;
    if (truncation) *truncation = t;
    return mixture;
  } catch (const h5::Error& e) {
    throw ProposalError(fmt::format("cannot read a proposal from {}: {}", path, e.what()));
  }
}

}  // namespace fsbi
