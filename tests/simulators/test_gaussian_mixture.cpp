// The bundled gaussian_mixture simulator, loaded as the real plugin through the host API, checked
// against sbibm's definition (../shared/sbibm/TASKS.md): one k ~ Categorical(0.5, 0.5) per data
// set, shared by both coordinates, x = θ + σ_k ε with σ = (1, 0.1), prior U(-10, 10)².
// Moments of d = x − θ derived by hand: E d_i = 0, Var d_i = (1 + 0.01)/2 = 0.505,
// E d_i⁴ = 3 (1 + 1e-4)/2 = 1.50015, E d_0² d_1² = (1 + 1e-4)/2 = 0.50005 (0.255025 if each
// coordinate drew its own k), and |d|² has the CDF F(r²) = 1 − ½e^{−r²/2} − ½e^{−r²/0.02}.
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

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/gaussian_mixture.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

using fsbi::test::simulate_at;

using fsbi::test::read_csv_row;

// Sample mean of f and its Monte-Carlo standard error.
struct Estimate {
  double mean, se;
};
Estimate estimate(const std::vector<double>& f) {
  const double n = static_cast<double>(f.size());
  const double m = std::accumulate(f.begin(), f.end(), 0.0) / n;
  double v = 0;
  for (double e : f) v += (e - m) * (e - m) / (n - 1);
  return {m, std::sqrt(v / n)};
}

double radial_cdf(double r2) { return 1 - 0.5 * std::exp(-r2 / 2) - 0.5 * std::exp(-r2 / 0.02); }

double log_lik(double t0, double t1, const std::vector<double>& x) {
  const double q = (x[0] - t0) * (x[0] - t0) + (x[1] - t1) * (x[1] - t1);
  const double two_pi = 2 * std::numbers::pi;
  return std::log(0.5 * std::exp(-q / 2) / two_pi + 0.5 * std::exp(-q / 0.02) / (two_pi * 0.01));
}

}  // namespace

TEST(GaussianMixture, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "gaussian_mixture");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("gaussian_mixture"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  EXPECT_EQ(sim->parameter_names(), (std::vector<std::string>{"parameter_1", "parameter_2"}));
  EXPECT_EQ(sim->data_names(), (std::vector<std::string>{"data_1", "data_2"}));
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "uniform(-10, 10)");
  EXPECT_EQ(fsbi::parse_prior(*sim->default_prior(), 2)->spec(), "uniform(-10, 10)");
  EXPECT_TRUE(sim->has_likelihood_score());
}

TEST(GaussianMixture, RejectsAnyOption) {
  try {
    open({{"dim", "3"}});
    FAIL() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    const std::string msg = e.what();
    std::printf("  %s\n", msg.c_str());
    EXPECT_NE(msg.find("unknown option 'dim'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("takes no options"), std::string::npos) << msg;
  }
}

TEST(GaussianMixture, MomentsAtFixedTheta) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_mixture moments", 6601);
  constexpr std::size_t n = 200000;
  const std::vector<double> theta{-7.5, 3.25};
  const auto x = simulate_at(*open(), seed, theta, n);
  std::vector<double> d0(n), d1(n), d0sq(n), d1sq(n), d0d1(n), d0q(n), d1q(n), prod2(n);
  std::array<std::size_t, 10> bins{};
  for (std::size_t i = 0; i < n; ++i) {
    d0[i] = x[2 * i] - theta[0];
    d1[i] = x[2 * i + 1] - theta[1];
    d0sq[i] = d0[i] * d0[i];
    d1sq[i] = d1[i] * d1[i];
    d0d1[i] = d0[i] * d1[i];
    d0q[i] = d0sq[i] * d0sq[i];
    d1q[i] = d1sq[i] * d1sq[i];
    prod2[i] = d0sq[i] * d1sq[i];
    bins[std::min<std::size_t>(9, static_cast<std::size_t>(10 * radial_cdf(d0sq[i] + d1sq[i])))]++;
  }
  struct Row {
    const char* what;
    const std::vector<double>* f;
    double expected;
  };
  const std::array<Row, 8> rows{{{"E d0", &d0, 0.0},
                                 {"E d1", &d1, 0.0},
                                 {"E d0^2", &d0sq, 0.505},
                                 {"E d1^2", &d1sq, 0.505},
                                 {"E d0 d1", &d0d1, 0.0},
                                 {"E d0^4", &d0q, 1.50015},
                                 {"E d1^4", &d1q, 1.50015},
                                 {"E d0^2 d1^2", &prod2, 0.50005}}};
  for (const Row& r : rows) {
    const Estimate e = estimate(*r.f);
    std::printf("  %-12s %.5f (analytic %.5f, se %.1e)\n", r.what, e.mean, r.expected, e.se);
    EXPECT_NEAR(e.mean, r.expected, 5 * e.se) << r.what;
  }
  // F(|d|²) is uniform on (0, 1): 10 equal bins, each Binomial(n, 0.1).
  const double sd = std::sqrt(n * 0.1 * 0.9);
  for (std::size_t b = 0; b < 10; ++b) {
    std::printf("  F(|d|^2) bin %zu: %zu (expected %.0f, sd %.0f)\n", b, bins[b], n * 0.1, sd);
    EXPECT_NEAR(static_cast<double>(bins[b]), n * 0.1, 5 * sd) << "bin " << b;
  }
}

// The exact draw order: one uniform (k = 0, σ = 1 if u < 0.5), then two normals.
TEST(GaussianMixture, UsesTheHostStreamInTheDocumentedOrder) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_mixture stream", 6602);
  const std::vector<double> theta{1.5, -4.0};
  const auto x = simulate_at(*open(), seed, theta, 40, 17);
  int narrow = 0;
  for (std::size_t i = 0; i < 40; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 17 + i, 0);
    const double sigma = rng.uniform() < 0.5 ? 1.0 : 0.1;
    narrow += sigma == 0.1;
    const double e0 = rng.normal(), e1 = rng.normal();
    EXPECT_NEAR(x[2 * i], theta[0] + sigma * e0, 1e-14) << i;
    EXPECT_NEAR(x[2 * i + 1], theta[1] + sigma * e1, 1e-14) << i;
  }
  std::printf("  %d of 40 from the narrow component\n", narrow);
}

TEST(GaussianMixture, LikelihoodScoreMatchesFiniteDifferences) {
  auto sim = open();
  const std::vector<std::vector<double>> cases{// θ0, θ1, x0, x1
                                               {0.0, 0.0, 0.05, -0.02},
                                               {1.0, -2.0, 1.3, -2.1},
                                               {-5.0, 5.0, -3.0, 4.0},
                                               {2.0, 2.0, 2.0, 2.0}};
  double worst = 0;
  for (const auto& c : cases) {
    const std::vector<double> theta{c[0], c[1]}, x{c[2], c[3]};
    worst = std::max(worst, fsbi::test::expect_score_matches_central_differences(
                                *sim, theta, x, [&](const std::vector<double>& t) { return log_lik(t[0], t[1], x); },
                                {.size = 1e-6, .relative = false}, 1e-5, 1.0));
  }
  std::printf("  worst relative |score - central difference| = %.2e\n", worst);
}

// sbibm's observations at their true θ: F(|x_o − θ|²) is uniform under the definition; none is
// in the extreme tails and their mean is within 5 standard errors of 1/2.
TEST(GaussianMixture, SbibmObservationsHavePlausibleLikelihood) {
  double sum = 0;
  int count = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir = fsbi::test::shared_dir() + "/sbibm/gaussian_mixture/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 2u);
    ASSERT_EQ(xo.size(), 2u);
    const double r2 = (xo[0] - theta[0]) * (xo[0] - theta[0]) + (xo[1] - theta[1]) * (xo[1] - theta[1]);
    const double u = radial_cdf(r2);
    std::printf("  obs_%d: |x_o - theta| = %.4f, F = %.4f\n", obs, std::sqrt(r2), u);
    EXPECT_GT(u, 0.0005) << "obs_" << obs;
    EXPECT_LT(u, 0.9995) << "obs_" << obs;
    sum += u;
    ++count;
  }
  if (count == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  EXPECT_NEAR(sum / count, 0.5, 5 * std::sqrt(1.0 / 12 / count));
}
