// The bundled slcp simulator, loaded as the real plugin through the host API, checked against
// sbibm's definition (../shared/sbibm/TASKS.md): m = (θ0, θ1), s1 = θ2², s2 = θ3², ρ = tanh θ4,
// S = [[s1² + 1e-6, ρ s1 s2], [ρ s1 s2, s2² + 1e-6]], x = 4 i.i.d. points of N(m, S), flattened.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include <fsbi/plugin.hpp>
#include <fsbi/prior.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/slcp.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

using fsbi::test::simulate_at;

using fsbi::test::read_csv_row;

// S from the definition.
struct Cov {
  double s00, s01, s11;
};
Cov cov_of(const std::vector<double>& t) {
  const double s1 = t[2] * t[2], s2 = t[3] * t[3], rho = std::tanh(t[4]);
  return {s1 * s1 + 1e-6, rho * s1 * s2, s2 * s2 + 1e-6};
}

// Σ_j (x_j − m)ᵀ S⁻¹ (x_j − m) over the 4 points.
double mahalanobis2(const std::vector<double>& t, std::span<const double> x) {
  const Cov c = cov_of(t);
  const double det = c.s00 * c.s11 - c.s01 * c.s01;
  double q = 0;
  for (int j = 0; j < 4; ++j) {
    const double r0 = x[2 * j] - t[0], r1 = x[2 * j + 1] - t[1];
    q += (c.s11 * r0 * r0 - 2 * c.s01 * r0 * r1 + c.s00 * r1 * r1) / det;
  }
  return q;
}

double log_lik(const std::vector<double>& t, std::span<const double> x) {
  const Cov c = cov_of(t);
  const double det = c.s00 * c.s11 - c.s01 * c.s01;
  return 4 * (-std::log(2 * std::numbers::pi) - 0.5 * std::log(det)) - 0.5 * mahalanobis2(t, x);
}

void check_moments(const std::vector<double>& theta, std::uint64_t seed) {
  SCOPED_TRACE("theta = (" + std::to_string(theta[0]) + ", " + std::to_string(theta[1]) + ", " +
               std::to_string(theta[2]) + ", " + std::to_string(theta[3]) + ", " +
               std::to_string(theta[4]) + ")");
  constexpr std::size_t n = 50000;
  auto sim = open();
  const auto x = simulate_at(*sim, seed, theta, n);
  const Cov c = cov_of(theta);
  const double nn = static_cast<double>(n);
  // Per point j: mean and covariance; across points 1 and 2: cross-covariance (0, independent).
  for (int j = 0; j < 4; ++j) {
    double m0 = 0, m1 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      m0 += x[8 * i + 2 * j] / nn;
      m1 += x[8 * i + 2 * j + 1] / nn;
    }
    double v00 = 0, v01 = 0, v11 = 0, cross = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double d0 = x[8 * i + 2 * j] - m0, d1 = x[8 * i + 2 * j + 1] - m1;
      v00 += d0 * d0 / (nn - 1);
      v01 += d0 * d1 / (nn - 1);
      v11 += d1 * d1 / (nn - 1);
      const int other = (j + 1) % 4;  // point j's first coordinate vs the next point's second
      cross += d0 * (x[8 * i + 2 * other + 1] - theta[1]) / nn;
    }
    const double se_m0 = std::sqrt(c.s00 / nn), se_m1 = std::sqrt(c.s11 / nn);
    const double se_v00 = c.s00 * std::sqrt(2 / nn), se_v11 = c.s11 * std::sqrt(2 / nn);
    const double se_v01 = std::sqrt((c.s00 * c.s11 + c.s01 * c.s01) / nn);
    const double se_cross = std::sqrt(c.s00 * c.s11 / nn);
    std::printf("  point %d: mean (%.4f, %.4f) [theta (%.4f, %.4f), se (%.1e, %.1e)]  "
                "S00 %.5g [%.5g]  S01 %.5g [%.5g]  S11 %.5g [%.5g]  cross %.2e [0, se %.1e]\n",
                j + 1, m0, m1, theta[0], theta[1], se_m0, se_m1, v00, c.s00, v01, c.s01, v11, c.s11,
                cross, se_cross);
    EXPECT_NEAR(m0, theta[0], 5 * se_m0);
    EXPECT_NEAR(m1, theta[1], 5 * se_m1);
    EXPECT_NEAR(v00, c.s00, 5 * se_v00);
    EXPECT_NEAR(v01, c.s01, 5 * se_v01);
    EXPECT_NEAR(v11, c.s11, 5 * se_v11);
    EXPECT_NEAR(cross, 0.0, 5 * se_cross);
  }
}

}  // namespace

TEST(Slcp, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "slcp");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("slcp"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  EXPECT_EQ(sim->parameter_dim(), 5);
  EXPECT_EQ(sim->data_dim(), 8);
  EXPECT_EQ(sim->parameter_names(), (std::vector<std::string>{"parameter_1", "parameter_2", "parameter_3",
                                                              "parameter_4", "parameter_5"}));
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_8");
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "uniform(-3, 3)");
  EXPECT_EQ(fsbi::parse_prior(*sim->default_prior(), 5)->spec(), "uniform(-3, 3)");
  EXPECT_TRUE(sim->has_likelihood_score());
}

TEST(Slcp, RejectsAnyOption) {
  try {
    open({{"distractors", "1"}});
    FAIL() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    EXPECT_NE(msg.find("unknown option 'distractors'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes no options"), std::string::npos) << msg;
  }
}

TEST(Slcp, MomentsAtFixedTheta) {
  check_moments({0.7, -1.5, 1.2, -0.9, 0.6}, fsbi::test::announce_seed("slcp moments A", 5501));
  // Negative correlation, very different scales (S00 = 1.5⁴ ≈ 5.1, S11 = 0.5⁴ ≈ 0.06).
  check_moments({-2.0, 2.5, -1.5, 0.5, -1.1}, fsbi::test::announce_seed("slcp moments B", 5502));
}

// The exact draw order: 8 normals z_1[0], z_1[1], ..., z_4[1]; x_j = m + L z_j, S = L Lᵀ.
TEST(Slcp, UsesTheHostStreamInTheDocumentedOrder) {
  const std::uint64_t seed = fsbi::test::announce_seed("slcp stream", 5503);
  const std::vector<double> theta{0.3, -0.2, 1.7, 2.2, -0.4};
  auto sim = open();
  const auto x = simulate_at(*sim, seed, theta, 30, 900);
  const Cov c = cov_of(theta);
  const double l00 = std::sqrt(c.s00), l10 = c.s01 / l00, l11 = std::sqrt(c.s11 - l10 * l10);
  for (std::size_t i = 0; i < 30; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 900 + i, 0);
    for (int j = 0; j < 4; ++j) {
      const double z0 = rng.normal(), z1 = rng.normal();
      EXPECT_NEAR(x[8 * i + 2 * j], theta[0] + l00 * z0, 1e-12) << i << "," << j;
      EXPECT_NEAR(x[8 * i + 2 * j + 1], theta[1] + l10 * z0 + l11 * z1, 1e-12) << i << "," << j;
    }
  }
}

// The analytic score against central differences of the log-likelihood coded above.
TEST(Slcp, LikelihoodScoreMatchesFiniteDifferences) {
  auto sim = open();
  const std::vector<std::vector<double>> thetas{
      {0.7, -1.5, 1.2, -0.9, 0.6}, {-2.0, 2.5, -1.5, 0.5, -1.1}, {0.1, 0.2, 0.4, 2.6, 2.0}};
  const std::vector<double> x{0.5, -1.0, 1.5, -2.2, 0.9, -1.4, -0.3, 0.1};
  double worst = 0;
  for (const auto& theta : thetas) {
    worst = std::max(worst, fsbi::test::expect_score_matches_central_differences(
                                *sim, theta, x, [&](const std::vector<double>& t) { return log_lik(t, x); },
                                {.size = 1e-6, .relative = false}, 1e-6, 1.0));
  }
  std::printf("  worst relative |score - central difference| = %.2e\n", worst);
}

// sbibm's observations at their true θ: Σ_j (x_j − m)ᵀS⁻¹(x_j − m) is χ²(8) per observation,
// so χ²(80) summed over the 10; and each is inside the simulated distribution's bulk.
TEST(Slcp, SbibmObservationsHavePlausibleLikelihood) {
  const std::uint64_t seed = fsbi::test::announce_seed("slcp sbibm observations", 5504);
  auto sim = open();
  double total = 0;
  int count = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir = fsbi::test::shared_dir() + "/sbibm/slcp/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 5u);
    ASSERT_EQ(xo.size(), 8u);
    const double q = mahalanobis2(theta, xo);
    // Fraction of simulated data sets at θ with a larger statistic (a Monte-Carlo p-value).
    constexpr std::size_t n = 4000;
    const auto x = simulate_at(*sim, seed, theta, n, static_cast<std::uint64_t>(obs) * n);
    std::size_t larger = 0;
    for (std::size_t i = 0; i < n; ++i)
      larger += mahalanobis2(theta, std::span<const double>(x).subspan(8 * i, 8)) > q;
    const double p = static_cast<double>(larger) / n;
    std::printf("  obs_%d: statistic %.3f, simulated p-value %.4f\n", obs, q, p);
    EXPECT_GT(p, 0.001) << "obs_" << obs;
    total += q;
    ++count;
  }
  if (count == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  std::printf("  sum %.2f over %d observations (chi2(%d): mean %d, sd %.1f)\n", total, count, 8 * count,
              8 * count, std::sqrt(16.0 * count));
  EXPECT_NEAR(total, 8.0 * count, 5 * std::sqrt(16.0 * count));
}
