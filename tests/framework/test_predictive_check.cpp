// The posterior predictive check (fsbi/predictive_check.hpp) with the real gaussian_linear and sir
// plugins: p-values against their closed form for exact posterior draws, an observation the
// posterior does not reproduce, data values that never vary, determinism and errors.
#include "fsbi/plugin.hpp"
#include "fsbi/predictive_check.hpp"
#include "fsbi/random.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace fsbi {
namespace {

using testing::HasSubstr;

// P(χ²_10 > q) in closed form (even degrees of freedom): e^{−q/2} Σ_{i<5} (q/2)^i / i!.
double chi2_10_survival(double q) {
  double term = 1, sum = 0;
  for (int i = 0; i < 5; ++i) {
    sum += term;
    term *= 0.5 * q / (i + 1);
  }
  return std::exp(-0.5 * q) * sum;
}

std::shared_ptr<const Simulator> bundled(const std::string& name) {
  return open_simulator(name, {}, {test::bundled_plugin_dir()});
}

// gaussian_linear (prior N(0, 0.1 I), x ~ N(θ, 0.1 I), d = k = 10) and one observation x_o:
// the exact posterior is N(x_o/2, 0.05 I), its predictive N(x_o/2, 0.15 I).
class GaussianLinearCheck : public testing::Test {
 protected:
  void SetUp() override {
    sim = bundled("gaussian_linear");
    // ±0.7746: ‖x_o‖² = 6, so the squared distance from the predictive mean is 1.5/0.15 = 10.
    for (int i = 0; i < 10; ++i) x_o(0, i) = (i % 2 ? -1 : 1) * std::sqrt(0.6);
    const std::uint64_t seed = test::announce_seed("posterior draws", 17);
    theta.resize(10, 4000);
    for (Eigen::Index j = 0; j < theta.cols(); ++j) {
      CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(j));
      for (int i = 0; i < 10; ++i) theta(i, j) = 0.5 * x_o(0, i) + std::sqrt(0.05) * rng.normal();
    }
  }
  std::shared_ptr<const Simulator> sim;
  Table x_o = Table(1, 10);
  Eigen::MatrixXd theta;
};

TEST_F(GaussianLinearCheck, ExactPosteriorGivesTheAnalyticPValues) {
  PredictiveCheckSettings st;
  st.seed = test::announce_seed("replicates", 5);
  const PredictiveCheck pc = posterior_predictive_check(*sim, theta, x_o, st);
  ASSERT_EQ(pc.replicates.cols(), 4000);
  EXPECT_EQ(pc.failed, 0u);
  EXPECT_TRUE(pc.constant.empty());
  // The distance is measured in the replicates' estimated covariance: 10 ± a few per cent.
  EXPECT_NEAR(pc.distance[0], 10.0, 0.6);
  // p = P(χ²_10 > 10) = 0.4405; sampling error of p about 0.008, of the distance's scale a little more.
  EXPECT_NEAR(pc.p_value[0], chi2_10_survival(10.0), 0.04);
  EXPECT_NEAR(pc.replicate_median, 9.342, 0.5);  // the median of χ²_10
  // Per data value x_o,i lies 1 predictive sd from the mean: two-sided p = 0.3173.
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(pc.marginal_p(i, 0), 0.3173, 0.04) << "data value " << i + 1;
  EXPECT_FALSE(pc.flagged);
}

TEST_F(GaussianLinearCheck, AnObservationThePosteriorDoesNotReproduceIsFlagged) {
  Table two(2, 10);
  two.row(0) = x_o.row(0);
  two.row(1) = x_o.row(0);
  two(1, 0) += 2.0;  // (0.387 + 2)/0.387 ≈ 6.2 predictive sd out: beyond every replicate
  PredictiveCheckSettings st;
  st.seed = test::announce_seed("replicates", 5);
  const PredictiveCheck pc = posterior_predictive_check(*sim, theta, two, st);
  EXPECT_GT(pc.p_value[0], 0.3);
  EXPECT_DOUBLE_EQ(pc.p_value[1], 1.0 / 4001);
  EXPECT_DOUBLE_EQ(pc.marginal_p(0, 1), 2.0 / 4001);
  EXPECT_GT(pc.distance[1], 30.0);
  EXPECT_TRUE(pc.flagged);
  // The same with a lenient alarm: 2 · 1/4001 is not below 1e-4.
  st.alarm = 1e-4;
  EXPECT_FALSE(posterior_predictive_check(*sim, theta, two, st).flagged);
}

TEST_F(GaussianLinearCheck, ReplicatesDoNotDependOnThreads) {
  PredictiveCheckSettings st;
  st.seed = test::announce_seed("replicates", 8);
  st.threads = 1;
  const Eigen::MatrixXd few = theta.leftCols(300);
  const PredictiveCheck a = posterior_predictive_check(*sim, few, x_o, st);
  st.threads = 2;
  const PredictiveCheck b = posterior_predictive_check(*sim, few, x_o, st);
  EXPECT_EQ(a.replicates, b.replicates);
  EXPECT_EQ(a.p_value, b.p_value);
}

TEST_F(GaussianLinearCheck, ClearErrors) {
  PredictiveCheckSettings st;
  const auto message = [&](const Eigen::MatrixXd& th, const Table& obs) -> std::string {
    try {
      posterior_predictive_check(*sim, th, obs, st);
    } catch (const PredictiveCheckError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message(theta.topRows(3), x_o),
            "the posterior draws have 3 parameters, simulator 'gaussian_linear' has 10");
  EXPECT_EQ(message(theta, x_o.leftCols(4)),
            "the observations have 4 data values, simulator 'gaussian_linear' produces 10");
  EXPECT_EQ(message(theta, Table(0, 10)), "no observations to check");
  Table nan = x_o;
  nan(0, 3) = std::nan("");
  EXPECT_EQ(message(theta, nan), "the observations hold NaN or infinite values");
  EXPECT_THAT(message(theta.leftCols(15), x_o),
              HasSubstr("only 15 of 15 replicate simulations succeeded; the check needs at least 20"));
}

// sir at β = 0.01, γ = 0.5: the single initial infection dies out (I(17)/N ≈ 2·10⁻¹⁰), so every
// replicate reports 0 infected from the second sample on; only the first (t = 0, I/N = 10⁻⁶) can
// rarely show one.
TEST(PredictiveCheckConstant, DataValuesThatNeverVaryAreLeftOutOrFlagged) {
  const auto sim = bundled("sir");
  const Eigen::MatrixXd theta = Eigen::Vector2d(0.01, 0.5).replicate(1, 200);
  PredictiveCheckSettings st;
  st.seed = test::announce_seed("replicates", 3);
  Table zeros = Table::Zero(2, 10);
  zeros(1, 4) = 5;  // five infected in the fifth sample: never seen in a replicate
  const PredictiveCheck pc = posterior_predictive_check(*sim, theta, zeros, st);
  ASSERT_GE(pc.constant.size(), 9u);
  EXPECT_EQ(pc.constant.back(), 9);
  EXPECT_EQ(pc.replicates.bottomRows(9), Eigen::MatrixXd::Zero(9, 200));
  EXPECT_GT(pc.p_value[0], 0.5);  // all zeros: what (nearly) every replicate shows
  EXPECT_DOUBLE_EQ(pc.p_value[1], 1.0 / 201);
  EXPECT_TRUE(std::isinf(pc.distance[1]));
  ASSERT_EQ(pc.notes.size(), 1u);
  EXPECT_EQ(pc.notes[0], "observation 2: data value 5 is 5, but 0 in every replicate");
  EXPECT_TRUE(pc.flagged);
}

}  // namespace
}  // namespace fsbi
