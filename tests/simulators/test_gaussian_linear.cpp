// The bundled gaussian_linear simulator, loaded as the real plugin through the host API, checked
// against sbibm's definition (../shared/sbibm/TASKS.md): x = θ + √0.1·ε, ε ~ N(0, I_dim),
// prior N(0, 0.1·I); likelihood score ∇θ log p(x|θ) = (x − θ)/0.1.
#include <fsbi/plugin.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr double kVariance = 0.1;

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/gaussian_linear.so"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

// Simulates rows index_begin .. index_begin+n-1 (attempt 0) at one θ, in a single call.
using fsbi::test::simulate_at;

// Sample mean and covariance of x (n x d) vs N(θ, 0.1·I), with tolerances of 5 Monte-Carlo
// standard errors: mean σ/√n, variance σ²·√(2/n), covariance σ²/√n.
void check_moments(const std::vector<double>& theta, std::uint64_t seed) {
  const std::size_t d = theta.size();
  SCOPED_TRACE("dim = " + std::to_string(d));
  auto sim = d == 10 ? open() : open({{"dim", std::to_string(d)}});  // 10 is the default
  ASSERT_EQ(sim->parameter_dim(), static_cast<int>(d));
  constexpr std::size_t n = 100000;
  const std::vector<double> x = simulate_at(*sim, seed, theta, n);
  const double nn = static_cast<double>(n);
  std::vector<double> mean(d, 0.0), cov(d * d, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j) mean[j] += x[i * d + j];
  for (double& m : mean) m /= nn;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < d; ++j)
      for (std::size_t k = 0; k <= j; ++k)
        cov[j * d + k] += (x[i * d + j] - mean[j]) * (x[i * d + k] - mean[k]);
  const double se_mean = std::sqrt(kVariance / nn);
  const double se_var = kVariance * std::sqrt(2 / nn);
  const double se_cov = kVariance / std::sqrt(nn);
  double max_mean_dev = 0, max_var_dev = 0, max_cov_dev = 0;
  for (std::size_t j = 0; j < d; ++j) {
    EXPECT_NEAR(mean[j], theta[j], 5 * se_mean) << "component " << j;
    max_mean_dev = std::max(max_mean_dev, std::abs(mean[j] - theta[j]));
    for (std::size_t k = 0; k <= j; ++k) {
      const double c = cov[j * d + k] / (nn - 1);
      if (j == k) {
        EXPECT_NEAR(c, kVariance, 5 * se_var) << "variance " << j;
        max_var_dev = std::max(max_var_dev, std::abs(c - kVariance));
      } else {
        EXPECT_NEAR(c, 0.0, 5 * se_cov) << "covariance " << j << "," << k;
        max_cov_dev = std::max(max_cov_dev, std::abs(c));
      }
    }
  }
  std::printf("  dim %zu: max |mean - theta| %.2e (se %.1e), max |var - 0.1| %.2e (se %.1e), "
              "max |cov| %.2e (se %.1e)\n",
              d, max_mean_dev, se_mean, max_var_dev, se_var, max_cov_dev, se_cov);
}

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

TEST(GaussianLinear, DefaultMetadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "gaussian_linear");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("gaussian_linear"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "dim=INT  number of parameters and data dimensions (default 10)");
  auto sim = fsbi::Simulator::create(plugin);
  ASSERT_EQ(sim->parameter_dim(), 10);
  ASSERT_EQ(sim->data_dim(), 10);
  EXPECT_EQ(sim->parameter_names().front(), "parameter_1");
  EXPECT_EQ(sim->parameter_names().back(), "parameter_10");
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_10");
  ASSERT_TRUE(sim->default_prior().has_value());
  EXPECT_EQ(*sim->default_prior(), "normal(0, 0.31622776601683794)");
  // The printed sd is sqrt(0.1) to the last bit.
  EXPECT_EQ(std::stod("0.31622776601683794"), std::sqrt(0.1));
}

TEST(GaussianLinear, DimOption) {
  auto sim = open({{"dim", "3"}});
  EXPECT_EQ(sim->parameter_dim(), 3);
  EXPECT_EQ(sim->data_dim(), 3);
  EXPECT_EQ(sim->parameter_names(),
            (std::vector<std::string>{"parameter_1", "parameter_2", "parameter_3"}));
  EXPECT_EQ(sim->data_names(), (std::vector<std::string>{"data_1", "data_2", "data_3"}));
  EXPECT_EQ(*sim->default_prior(), "normal(0, 0.31622776601683794)");
  EXPECT_EQ(open({{"dim", "1"}})->parameter_dim(), 1);
}

// Options as a file stores them ("key=value,...", sorted) split back into what opened the
// simulator: how a model's simulator is reopened (fsbi fisher --local, bench/score_error).
TEST(GaussianLinear, StoredOptionsSplitBackIntoTheOptions) {
  const fsbi::SimulatorOptions options{{"dim", "3"}, {"a", "x=y"}};
  const std::string stored = fsbi::format_simulator_options(options);
  EXPECT_EQ(stored, "a=x=y,dim=3");
  EXPECT_EQ(fsbi::split_simulator_options(stored), (std::vector<std::string>{"a=x=y", "dim=3"}));
  EXPECT_EQ(fsbi::parse_simulator_options(fsbi::split_simulator_options(stored)),
            (fsbi::SimulatorOptions{{"a", "x=y"}, {"dim", "3"}}));
  EXPECT_TRUE(fsbi::split_simulator_options("").empty());
  EXPECT_EQ(open(fsbi::parse_simulator_options(fsbi::split_simulator_options("dim=3")))->parameter_dim(), 3);
}

TEST(GaussianLinear, BadOptions) {
  std::string msg = error_of({{"dim", "0"}});
  EXPECT_NE(msg.find("option 'dim'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  msg = error_of({{"dim", "-4"}});
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  msg = error_of({{"dim", "abc"}});
  EXPECT_NE(msg.find("option 'dim'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an integer"), std::string::npos) << msg;
  msg = error_of({{"dim", "2.5"}});
  EXPECT_NE(msg.find("not an integer"), std::string::npos) << msg;
  msg = error_of({{"colour", "red"}});
  EXPECT_NE(msg.find("unknown option 'colour'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dim=INT"), std::string::npos) << msg;  // lists the accepted options
}

TEST(GaussianLinear, MomentsAtFixedTheta) {
  std::vector<double> theta10(10);
  for (std::size_t j = 0; j < 10; ++j) theta10[j] = -0.9 + 0.2 * static_cast<double>(j);
  check_moments(theta10, fsbi::test::announce_seed("gaussian_linear moments dim 10", 31337));
  check_moments({0.3, -1.2, 2.5}, fsbi::test::announce_seed("gaussian_linear moments dim 3", 31338));
}

// The exact draw order: dim standard normals from the host's stream
// CounterRng(seed, Stream::simulator, index, attempt), component by component.
TEST(GaussianLinear, UsesTheHostStreamInTheDocumentedOrder) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_linear stream", 5);
  auto sim = open({{"dim", "3"}});
  const std::vector<double> theta{0.1, 0.2, -0.3};
  const auto x = simulate_at(*sim, seed, theta, 20, 7);
  for (std::size_t i = 0; i < 20; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 7 + i, 0);
    for (std::size_t j = 0; j < 3; ++j)
      EXPECT_NEAR(x[3 * i + j], theta[j] + std::sqrt(0.1) * rng.normal(), 1e-15) << i << "," << j;
  }
}

TEST(GaussianLinear, LikelihoodScore) {
  auto sim = open({{"dim", "3"}});
  ASSERT_TRUE(sim->has_likelihood_score());
  ASSERT_NE(sim->extension(FSBI_EXT_LIKELIHOOD_SCORE), nullptr);
  EXPECT_EQ(sim->extension("fsbi.no-such-extension/1"), nullptr);
  // Two rows: (x − θ)/0.1 by hand.
  const std::vector<double> theta{0.1, -0.2, 0.3, 0.0, 0.0, 0.0};
  const std::vector<double> x{0.5, 0.5, -1.0, 0.1, -0.1, 0.0};
  std::vector<double> score(6, -99.0);
  sim->likelihood_score(theta, x, score);
  const std::vector<double> expected{4.0, 7.0, -13.0, 1.0, -1.0, 0.0};
  for (std::size_t i = 0; i < 6; ++i) EXPECT_NEAR(score[i], expected[i], 1e-12) << i;
  // And by central differences of log N(x; θ, 0.1·I).
  auto log_lik = [&](const std::vector<double>& t) {
    double s = 0;
    for (std::size_t j = 0; j < 3; ++j) s += -0.5 * (x[j] - t[j]) * (x[j] - t[j]) / kVariance;
    return s;
  };
  for (std::size_t j = 0; j < 3; ++j) {
    std::vector<double> tp(theta.begin(), theta.begin() + 3), tm = tp;
    tp[j] += 1e-5;
    tm[j] -= 1e-5;
    EXPECT_NEAR(score[j], (log_lik(tp) - log_lik(tm)) / 2e-5, 1e-6) << j;
  }
}

// sbibm's observations agree with the definition's noise scale (a *variance* of 0.1, the
// documented pitfall): Σ (x_o − θ_true)²/0.1 over 10 observations x 10 dims is χ²(100).
TEST(GaussianLinear, SbibmObservationsMatchTheNoiseScale) {
  double chi2 = 0;
  int terms = 0;
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir =
        fsbi::test::shared_dir() + "/sbibm/gaussian_linear/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv_row(dir + "/true_parameters.csv");
    const auto xo = read_csv_row(dir + "/observation.csv");
    ASSERT_EQ(theta.size(), 10u);
    ASSERT_EQ(xo.size(), 10u);
    for (std::size_t j = 0; j < 10; ++j, ++terms)
      chi2 += (xo[j] - theta[j]) * (xo[j] - theta[j]) / kVariance;
  }
  if (terms == 0) GTEST_SKIP() << "sbibm data not found under " << fsbi::test::shared_dir();
  std::printf("  chi2 = %.2f on %d terms\n", chi2, terms);
  // χ²(k): mean k, sd √(2k); 5 sd either side.
  EXPECT_NEAR(chi2, terms, 5 * std::sqrt(2.0 * terms));
}

TEST(GaussianLinear, Deterministic) {
  const std::uint64_t seed = fsbi::test::announce_seed("gaussian_linear determinism", 123);
  auto sim = open();
  constexpr std::size_t n = 100, d = 10;
  std::vector<double> theta(d * n);
  for (std::size_t i = 0; i < theta.size(); ++i) theta[i] = std::sin(static_cast<double>(i));
  std::vector<std::uint64_t> index(n);
  std::iota(index.begin(), index.end(), 0);
  std::vector<std::uint32_t> attempt(n, 0);

  auto inst = sim->create_instance();
  std::vector<double> once(d * n), again(d * n), singles(d * n);
  std::vector<std::uint8_t> ok(n);
  inst->simulate(seed, index, attempt, theta, once, ok);
  EXPECT_EQ(std::count(ok.begin(), ok.end(), 1), static_cast<std::ptrdiff_t>(n));
  sim->create_instance()->simulate(seed, index, attempt, theta, again, ok);
  EXPECT_EQ(std::memcmp(once.data(), again.data(), once.size() * sizeof(double)), 0);
  std::uint8_t ok1 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    inst->simulate(seed, std::span(&index[i], 1), std::span(&attempt[i], 1),
                   std::span(&theta[d * i], d), std::span(&singles[d * i], d), std::span(&ok1, 1));
    ASSERT_EQ(ok1, 1);
  }
  EXPECT_EQ(std::memcmp(once.data(), singles.data(), once.size() * sizeof(double)), 0);
  // A different index, attempt or seed: different noise in every component.
  std::vector<std::uint64_t> shifted(index);
  for (auto& i : shifted) i += n;
  std::vector<std::uint32_t> attempt1(n, 1);
  std::vector<double> other(d * n);
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    inst->simulate(variant == 2 ? seed + 1 : seed, variant == 0 ? shifted : index,
                   variant == 1 ? attempt1 : attempt, theta, other, ok);
    for (std::size_t i = 0; i < d * n; ++i) EXPECT_NE(other[i], once[i]) << i;
  }
}
