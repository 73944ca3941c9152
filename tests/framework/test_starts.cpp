// Chain starts from a sequential run's pairs (framework/src/sampling/starts.hpp): the weights
// prior / pooled proposal against their closed form, and systematic resampling's exact counts.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/prior.hpp"
#include "fsbi/proposal.hpp"
#include "h5/h5.hpp"
#include "proposal_file.hpp"
#include "sampling/starts.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <optional>

namespace fsbi {
namespace {

double normal_pdf(double u, double mean, double sd) {
  const double z = (u - mean) / sd;
  return std::exp(-0.5 * z * z) / (sd * std::sqrt(2 * std::numbers::pi));
}

TEST(SystematicResample, CountsFollowTheWeightsExactly) {
  const Eigen::MatrixXd cols{{10.0, 20.0, 30.0}};
  // Points (j + 1/2)/8 · 4 = 0.25, 0.75 | 1.25 … 3.75: two below the first weight's 1, none in
  // the empty second column, six in the third.
  const Eigen::MatrixXd a = sampling::systematic_resample(cols, Eigen::Vector3d(1, 0, 3), 8);
  EXPECT_EQ(a, (Eigen::MatrixXd{{10, 10, 30, 30, 30, 30, 30, 30}}));
  // Equal weights, 7 draws: points 3(j + 1/2)/7 = 0.21, 0.64 | 1.07, 1.5, 1.93 | 2.36, 2.79.
  const Eigen::MatrixXd b = sampling::systematic_resample(cols, Eigen::Vector3d(1, 1, 1), 7);
  EXPECT_EQ(b, (Eigen::MatrixXd{{10, 10, 20, 20, 20, 30, 30}}));
  // As many draws as columns with equal weights: each column once, in order.
  EXPECT_EQ(sampling::systematic_resample(cols, Eigen::Vector3d(0.5, 0.5, 0.5), 3), cols);
}

class PriorOverPooledProposal : public testing::Test {
 protected:
  // A run file's /rounds as `fsbi run --rounds 2` writes it: round 1 (100 pairs from the prior),
  // round 2 (300 pairs from 0.1·prior + 0.9·N(1, 0.5²)). No /simulations or /model: the weights
  // need only the rounds.
  void write_rounds(std::int64_t count) {
    h5::File f = h5::File::create(path);
    h5::Group rounds = f.create_group("rounds");
    rounds.set_attribute("rounds", count);
    h5::Group r1 = rounds.create_group("round_1");
    r1.set_attribute("num_rows", std::int64_t{100});
    if (count < 2) return;
    h5::Group r2 = rounds.create_group("round_2");
    r2.set_attribute("num_rows", std::int64_t{300});
    h5::Group p = r2.create_group("proposal");
    p.set_attribute("defensive_fraction", 0.1);
    write_gaussian_mixture(p, GaussianMixture(Eigen::VectorXd::Ones(1), Eigen::MatrixXd::Ones(1, 1),
                                              {Eigen::MatrixXd::Constant(1, 1, 0.25)}));
  }
  test::TempDir tmp;
  std::string path = tmp.file("run.h5");
  std::shared_ptr<const Prior> prior = parse_prior("normal(0, 1)", 1);
};

TEST_F(PriorOverPooledProposal, MatchesTheClosedForm) {
  write_rounds(2);
  const Eigen::MatrixXd u{{-1.0, 0.0, 1.0, 2.5}};
  const std::optional<PooledProposal> pooled = sampling::read_pooled_proposal(path, prior);
  ASSERT_TRUE(pooled.has_value());
  ASSERT_EQ(pooled->rounds().size(), 2u);
  const Eigen::VectorXd w = sampling::prior_over_proposal(*pooled, u);
  ASSERT_EQ(w.size(), 4);
  // q = (100 π + 300 (0.1 π + 0.9 g)) / 400, the normal prior's transform is the identity.
  auto ratio = [](double v) {
    const double pi = normal_pdf(v, 0, 1), g = normal_pdf(v, 1, 0.5);
    return pi / (0.25 * pi + 0.75 * (0.1 * pi + 0.9 * g));
  };
  double top = 0;
  for (int i = 0; i < 4; ++i) top = std::max(top, ratio(u(0, i)));
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(u(0, i));
    EXPECT_NEAR(w[i], ratio(u(0, i)) / top, 1e-12);
    // Bounded by n / n_1 = 4 before scaling: round 1 drew from the prior.
    EXPECT_LE(ratio(u(0, i)), 4.0);
  }
  // Where round 2's mixture sits (u = 1) the prior's pairs are over-represented: weight below
  // the far tail's, which only round 1 and the defensive part reach.
  EXPECT_LT(w[2], 0.2 * w[0]);
}

TEST_F(PriorOverPooledProposal, AmortisedPairsAreThePriorsOwn) {
  // A file without /rounds: its pairs are prior draws.
  h5::File::create(tmp.file("plain.h5"));
  EXPECT_FALSE(sampling::read_pooled_proposal(tmp.file("plain.h5"), prior).has_value());
  // One round: the pooled density is the prior, every weight 1.
  write_rounds(1);
  const std::optional<PooledProposal> pooled = sampling::read_pooled_proposal(path, prior);
  ASSERT_TRUE(pooled.has_value());
  EXPECT_EQ(pooled->rounds().size(), 1u);
  EXPECT_TRUE(sampling::prior_over_proposal(*pooled, Eigen::MatrixXd{{-2.0, 0.0, 3.0}}).isApprox(Eigen::Vector3d::Ones(), 1e-14));
}

}  // namespace
}  // namespace fsbi
