#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "sampling/starts.hpp"

#include "h5/h5.hpp"
#include "proposal_file.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace fsbi::sampling {

std::optional<PooledProposal> read_pooled_proposal(const std::string& run_file, std::shared_ptr<const Prior> prior) {
  const h5::File f = h5::File::open(run_file);
  if (!f.is_group("rounds")) return std::nullopt;
  const h5::Group rounds = f.open_group("rounds");
  const std::int64_t count = rounds.attribute_int("rounds");
  std::vector<RoundProposal> proposals;
  std::vector<std::uint64_t> rows;
  for (std::int64_t r = 1; r <= count; ++r) {
    const h5::Group g = rounds.open_group(fmt::format("round_{}", r));
    const std::uint64_t n = g.attribute_uint("num_rows");
    if (n == 0) continue;  // a round that kept no pairs adds nothing to the pooled density
    if (r == 1) {
      proposals.emplace_back(prior);
    } else {
      const h5::Group p = g.open_group("proposal");
      proposals.emplace_back(prior, read_gaussian_mixture(p), p.attribute_double("defensive_fraction"),
                             read_prior_truncation(p));
    }
    rows.push_back(n);
  }
  if (proposals.empty()) return std::nullopt;
  return PooledProposal(std::move(proposals), std::move(rows));
}

Eigen::VectorXd prior_over_proposal(const PooledProposal& pooled, const Eigen::MatrixXd& u) {
  // π_u through round 1's prior and transform (every round shares the transform: PooledProposal checks).
  const RoundProposal& first = pooled.rounds().front();
  const Eigen::RowVectorXd log_w = first.transform().prior_log_density(first.prior(), u) - pooled.log_density_u(u);
  const double top = log_w.maxCoeff();
  if (!std::isfinite(top)) return {};
  Eigen::VectorXd w = (log_w.array() - top).exp().transpose();
  for (Eigen::Index i = 0; i < w.size(); ++i)
    if (!std::isfinite(w[i])) w[i] = 0;
  return w;
}

Eigen::MatrixXd systematic_resample(const Eigen::MatrixXd& cols, const Eigen::VectorXd& w, int n) {
  const double total = w.sum();
  Eigen::MatrixXd out(cols.rows(), n);
  Eigen::Index i = 0;
  double cumulative = w[0];
  for (int j = 0; j < n; ++j) {
    const double t = (j + 0.5) / n * total;
    while (cumulative < t && i + 1 < w.size()) cumulative += w[++i];
    out.col(j) = cols.col(i);
  }
  return out;
}

}  // namespace fsbi::sampling
