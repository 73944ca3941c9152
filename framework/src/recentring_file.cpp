#include "recentring_file.hpp"

#include <span>
#include <vector>

namespace fsbi {

namespace {

// Column-major rows × n (one pair per column) as an n × rows C-order dataset.
void write_pairs(h5::Group& g, const char* name, const Eigen::MatrixXd& m) {
  h5::Dataset ds = g.create_dataset(name, h5::DType::f64,
                                    {static_cast<std::uint64_t>(m.cols()), static_cast<std::uint64_t>(m.rows())});
  ds.write_all(std::span<const double>(m.data(), static_cast<std::size_t>(m.size())));
}

void write_vector(h5::Group& g, const char* name, const Eigen::VectorXd& v) {
  h5::Dataset ds = g.create_dataset(name, h5::DType::f64, {static_cast<std::uint64_t>(v.size())});
  ds.write_all(std::span<const double>(v.data(), static_cast<std::size_t>(v.size())));
}

}  // namespace

void write_recentring(h5::File& file, const ScoreRecentring& r, std::uint64_t seed, std::uint64_t first_index) {
  h5::Group g = file.create_group("recentring");
  g.set_attribute("num_requested", static_cast<std::uint64_t>(r.theta.cols()) + r.failed);
  g.set_attribute("num_failed", r.failed);
  g.set_attribute("seed", seed);
  g.set_attribute("first_index", first_index);
  write_pairs(g, "theta", r.theta);
  write_pairs(g, "x", r.x);
  write_vector(g, "offset_u", r.offset_u);
  write_vector(g, "standard_error", r.standard_error);
}

}  // namespace fsbi
