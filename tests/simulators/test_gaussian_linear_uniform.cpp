// The bundled gaussian_linear_uniform simulator, loaded as the real plugin through the host API,
// checked against sbibm's definition (../shared/sbibm/TASKS.md): x = θ + √0.1·ε, ε ~ N(0, I_dim),
// prior θ_i ~ U(-1, 1); likelihood score ∇θ log p(x|θ) = (x − θ)/0.1.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include <fsbi/plugin.hpp>
#include <fsbi/prior.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr double kVariance = 0.1;

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/gaussian_linear_uniform.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

// Simulates rows index_begin .. index_begin+n-1 (attempt 0) at one θ, in a single call.
using fsbi::test::simulate_at;

using fsbi::test::read_csv_row;

std::string error_of(const fsbi::SimulatorOptions& options) {
  try {
    open(options);
  } catch (const fsbi::PluginError& e) {
    std::printf("  options %s -> %s\n", fsbi::format_simulator_options(options).c_str(), e.what());
    return e.what();
  }
  ADD_FAILURE() << "options were accepted";
  return "";
}

}  // namespace

TEST(GaussianLinearUniform, DefaultMetadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "gaussian_linear_uniform");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("gaussian_linear_uniform"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "dim=INT  number of parameters and data dimensions (default 10)");
  auto sim = fsbi::Simulator::create(plugin);
  ASSERT_EQ(sim->parameter_dim(), 10);
  ASSERT_EQ(sim->data_dim(), 10);
  EXPECT_EQ(sim->parameter_names().front(), "parameter_1");
  EXPECT_EQ(sim->parameter_names().back(), "parameter_10");
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_10");
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "uniform(-1, 1)");
  const auto prior = fsbi::parse_prior(*sim->default_prior(), 10);
  EXPECT_EQ(prior->lower_bounds(), Eigen::VectorXd::Constant(10, -1.0));
  EXPECT_EQ(prior->upper_bounds(), Eigen::VectorXd::Constant(10, 1.0));
  EXPECT_TRUE(sim->has_likelihood_score());
}

TEST(GaussianLinearUniform, DimOption) {
  auto sim = open({{"dim", "3"}});
  EXPECT_EQ(sim->parameter_dim(), 3);
  EXPECT_EQ(sim->data_dim(), 3);
  EXPECT_EQ(sim->parameter_names(),
            (std::vector<std::string>{"parameter_1", "parameter_2", "parameter_3"}));
  EXPECT_EQ(sim->data_names(), (std::vector<std::string>{"data_1", "data_2", "data_3"}));
  EXPECT_EQ(*sim->default_prior(), "uniform(-1, 1)");
}

TEST(GaussianLinearUniform, BadOptions) {
  std::string msg = error_of({{"dim", "0"}});
  EXPECT_NE(msg.find("option 'dim'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  msg = error_of({{"dim", "ten"}});
  EXPECT_NE(msg.find("not an integer"), std::string::npos) << msg;
  msg = error_of({{"prior_bound", "2"}});
  EXPECT_NE(msg.find("unknown option 'prior_bound'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dim=INT"), std::string::npos) << msg;
}

// Sample mean and covariance of x (n x 10) vs N(θ, 0.1·I), 5 Monte-Carlo standard errors:
// mean σ/√n, variance σ²·√(2/n), covariance σ²/√n.
TEST(GaussianLinearUniform, MomentsAtFixedTheta) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_linear_uniform moments", 8101);
  constexpr std::size_t d = 10, n = 100000;
  std::vector<double> theta(d);
  for (std::size_t j = 0; j < d; ++j) theta[j] = -0.95 + 0.21 * static_cast<double>(j);
  auto sim = open();
  const std::vector<double> x = simulate_at(*sim, seed, theta, n);
  const double nn = static_cast<double>(n);
  std::vector<double> mean(d, 0.0), cov(d * d, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) mean[j] += x[i * d + j] / nn;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      for (std::size_t k = 0; k <= j; ++k)
        cov[j * d + k] += (x[i * d + j] - mean[j]) * (x[i * d + k] - mean[k]) / (nn - 1);
  const double se_mean = std::sqrt(kVariance / nn), se_var = kVariance * std::sqrt(2 / nn),
               se_cov = kVariance / std::sqrt(nn);
  double max_mean = 0, max_var = 0, max_cov = 0;
  for (std::size_t j = 0; j < d; ++j) {
    EXPECT_NEAR(mean[j], theta[j], 5 * se_mean) << j;
    max_mean = std::max(max_mean, std::abs(mean[j] - theta[j]));
    for (std::size_t k = 0; k <= j; ++k) {
      const double c = cov[j * d + k];
      if (j == k) {
        EXPECT_NEAR(c, kVariance, 5 * se_var) << j;
        max_var = std::max(max_var, std::abs(c - kVariance));
      } else {
        EXPECT_NEAR(c, 0.0, 5 * se_cov) << j << "," << k;
        max_cov = std::max(max_cov, std::abs(c));
      }
    }
  }
  std::printf("  max |mean - theta| %.2e (se %.1e), max |var - 0.1| %.2e (se %.1e), max |cov| %.2e "
              "(se %.1e)\n", max_mean, se_mean, max_var, se_var, max_cov, se_cov);
}

// The exact draw order: dim standard normals from CounterRng(seed, Stream::simulator, index, 0).
TEST(GaussianLinearUniform, UsesTheHostStreamInTheDocumentedOrder) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_linear_uniform stream", 8102);
  auto sim = open();
  std::vector<double> theta(10);
  for (std::size_t j = 0; j < 10; ++j) theta[j] = 0.1 * static_cast<double>(j) - 0.45;
  const auto x = simulate_at(*sim, seed, theta, 20, 300);
  for (std::size_t i = 0; i < 20; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 300 + i, 0);
    for (std::size_t j = 0; j < 10; ++j)
      EXPECT_NEAR(x[10 * i + j], theta[j] + std::sqrt(0.1) * rng.normal(), 1e-15) << i << "," << j;
  }
}

TEST(GaussianLinearUniform, LikelihoodScore) {
  auto sim = open({{"dim", "2"}});
  ASSERT_TRUE(sim->has_likelihood_score());
  const std::vector<double> theta{0.25, -0.5}, x{0.0, 0.3};
  std::vector<double> score(2);
  sim->likelihood_score(theta, x, score);
  EXPECT_NEAR(score[0], -2.5, 1e-12);
  EXPECT_NEAR(score[1], 8.0, 1e-12);
  auto log_lik = [&](double t0, double t1) {
    return -0.5 * ((x[0] - t0) * (x[0] - t0) + (x[1] - t1) * (x[1] - t1)) / kVariance;
  };
  const double h = 1e-5;
  EXPECT_NEAR(score[0], (log_lik(theta[0] + h, theta[1]) - log_lik(theta[0] - h, theta[1])) / (2 * h), 1e-6);
  EXPECT_NEAR(score[1], (log_lik(theta[0], theta[1] + h) - log_lik(theta[0], theta[1] - h)) / (2 * h), 1e-6);
}

// sbibm's observations: true θ inside the prior box, and Σ (x_o − θ)²/0.1 over 10 observations
// x 10 dims is χ²(100) (the noise is a variance of 0.1, as in gaussian_linear).
TEST(GaussianLinearUniform, SbibmObservationsMatchTheDefinition) {
  const auto prior = fsbi::parse_prior(*open()->default_prior(), 10);
  double chi2 = 0;
  int terms = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir =
        fsbi::test::shared_dir() + "/sbibm/gaussian_linear_uniform/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 10u);
    ASSERT_EQ(xo.size(), 10u);
    EXPECT_TRUE(prior->in_support(theta)) << "obs_" << obs;
    for (std::size_t j = 0; j < 10; ++j, ++terms) chi2 += (xo[j] - theta[j]) * (xo[j] - theta[j]) / kVariance;
  }
  if (terms == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  std::printf("  chi2 = %.2f on %d terms\n", chi2, terms);
  EXPECT_NEAR(chi2, terms, 5 * std::sqrt(2.0 * terms));
}
