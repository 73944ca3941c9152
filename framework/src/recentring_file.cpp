#include "recentring_file.hpp"

#include "h5/eigen_datasets.hpp"

namespace fsbi {

void write_recentring(h5::File& file, const ScoreRecentring& r, std::uint64_t seed, std::uint64_t first_index,
                      int preliminary_chains) {
  h5::Group g = file.create_group("recentring");
  g.set_attribute("num_requested", static_cast<std::uint64_t>(r.theta.cols()) + r.failed);
  g.set_attribute("num_failed", r.failed);
  g.set_attribute("seed", seed);
  g.set_attribute("first_index", first_index);
  g.set_attribute("preliminary_chains", static_cast<std::uint64_t>(preliminary_chains));
  // One pair per column: stored one pair per row.
  h5::write_matrix(g, "theta", r.theta.transpose());
  h5::write_matrix(g, "x", r.x.transpose());
  h5::write_vector(g, "offset_u", r.offset_u);
  h5::write_vector(g, "standard_error", r.standard_error);
}

}  // namespace fsbi
