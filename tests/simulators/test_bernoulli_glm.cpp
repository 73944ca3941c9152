// The bundled bernoulli_glm simulator, loaded as the real plugin through the host API, checked
// against sbibm's definition (../shared/sbibm/TASKS.md) and its fixed inputs
// (../shared/sbibm/bernoulli_glm/stimulus_I.csv, design_matrix.csv — the plugin computes them
// itself; these files are only read here): ψ = Xθ, y_t ~ Bernoulli(logistic(ψ_t)), x = Xᵀy;
// prior N(0, B⁻¹) with the precision B of the definition.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include <fsbi/plugin.hpp>
#include <fsbi/prior.hpp>
#include <fsbi/random.hpp>

#include <gtest/gtest.h>

#include "test_support.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string plugin_path() { return fsbi::test::bundled_plugin_dir() + "/bernoulli_glm.so"; }
std::string data_dir() { return fsbi::test::shared_dir() + "/sbibm/bernoulli_glm"; }

std::shared_ptr<const fsbi::Simulator> open(const fsbi::SimulatorOptions& options = {}) {
  return fsbi::Simulator::create(fsbi::Plugin::load(plugin_path()), options);
}

using fsbi::test::simulate_at;

// All numeric rows of a CSV; `header` says whether the first line is a header.
std::vector<std::vector<double>> read_csv(const std::string& path, bool header) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::string line;
  if (header) std::getline(in, line);
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<double> row;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) row.push_back(std::stod(cell));
    rows.push_back(row);
  }
  return rows;
}

// sbibm's design matrix (100 x 10), float32 values printed to 9 digits (exact).
Eigen::MatrixXd design() {
  const auto rows = read_csv(data_dir() + "/design_matrix.csv", false);
  Eigen::MatrixXd x(100, 10);
  EXPECT_EQ(rows.size(), 100u);
  for (int t = 0; t < 100; ++t)
    for (int j = 0; j < 10; ++j) x(t, j) = static_cast<float>(rows[static_cast<std::size_t>(t)][static_cast<std::size_t>(j)]);
  return x;
}

Eigen::VectorXd logistic(const Eigen::VectorXd& psi) {
  return (1.0 / (1.0 + (-psi.array()).exp())).matrix();
}

Eigen::VectorXd vec(const std::vector<double>& v) {
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size()));
}

bool have_data() { return std::filesystem::exists(data_dir() + "/design_matrix.csv"); }

// The precision B of the definition, built literally: D = I₉ − subdiag(1), F = D·D + diag(√(i/9)).
Eigen::MatrixXd precision() {
  Eigen::MatrixXd d = Eigen::MatrixXd::Identity(9, 9);
  for (int i = 1; i < 9; ++i) d(i, i - 1) = -1;
  Eigen::MatrixXd f = d * d;
  for (int i = 0; i < 9; ++i) f(i, i) += std::sqrt(i / 9.0);
  Eigen::MatrixXd b = Eigen::MatrixXd::Zero(10, 10);
  b(0, 0) = 0.5;
  b.bottomRightCorner(9, 9) = f.transpose() * f;
  return b;
}

}  // namespace

TEST(BernoulliGlm, Metadata) {
  auto plugin = fsbi::Plugin::load(plugin_path());
  EXPECT_EQ(plugin->name(), "bernoulli_glm");
  EXPECT_EQ(plugin->version(), "1.0.0");
  EXPECT_NE(plugin->description().find("bernoulli_glm"), std::string::npos);
  EXPECT_EQ(plugin->options_help(), "");
  auto sim = fsbi::Simulator::create(plugin);
  ASSERT_EQ(sim->parameter_dim(), 10);
  ASSERT_EQ(sim->data_dim(), 10);
  EXPECT_EQ(sim->parameter_names().front(), "parameter_1");
  EXPECT_EQ(sim->parameter_names().back(), "parameter_10");
  EXPECT_EQ(sim->data_names().front(), "data_1");
  EXPECT_EQ(sim->data_names().back(), "data_10");
  EXPECT_TRUE(sim->has_likelihood_score());
  try {
    open({{"summary", "raw"}});
    ADD_FAILURE() << "an option was accepted";
  } catch (const fsbi::PluginError& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("unknown option 'summary'"), std::string::npos) << e.what();
  }
}

// The default prior is an mvnormal with covariance B⁻¹: parsed by fsbi (symmetric, positive
// definite), its covariance times the independently built precision B is the identity, and a
// sample of it has that covariance.
TEST(BernoulliGlm, DefaultPriorIsTheInverseOfThePrecision) {
  auto sim = open();
  ASSERT_TRUE(sim->default_prior().has_value());
  const std::string& spec = *sim->default_prior();
  ASSERT_EQ(spec.rfind("mvnormal(0, [[2, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, ", 0), 0u) << spec;
  const auto prior = fsbi::parse_prior(spec, 10);
  EXPECT_EQ(prior->kind(), "mvnormal");
  EXPECT_EQ(prior->spec(), spec);  // already canonical
  // Read the covariance back from the spec: the rows after "mvnormal(0, ".
  std::string body = spec.substr(std::string("mvnormal(0, ").size());
  for (char& c : body)
    if (c == '[' || c == ']' || c == ')') c = ' ';
  std::stringstream ss(body);
  Eigen::MatrixXd cov(10, 10);
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 10; ++j) {
      std::string cell;
      std::getline(ss, cell, ',');
      cov(i, j) = std::stod(cell);
    }
  const double err = (cov * precision() - Eigen::MatrixXd::Identity(10, 10)).cwiseAbs().maxCoeff();
  std::printf("  max |cov * B - I| = %.2e; cov diagonal: %.6g %.6g %.6g ... %.6g\n", err, cov(0, 0), cov(1, 1),
              cov(2, 2), cov(9, 9));
  EXPECT_LT(err, 1e-12);
  // Prior draws through fsbi's sampler: sample covariance vs B⁻¹ (5 standard errors,
  // se(Σ_ij) = √((Σ_ii Σ_jj + Σ_ij²)/n)).
  const std::uint64_t seed = fsbi::test::announce_seed("bernoulli_glm prior draws", 9901);
  constexpr int n = 50000;
  Eigen::MatrixXd draws(n, 10);
  std::array<double, 10> theta{};
  for (int i = 0; i < n; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::prior, static_cast<std::uint64_t>(i));
    prior->sample(rng, theta);
    for (int j = 0; j < 10; ++j) draws(i, j) = theta[static_cast<std::size_t>(j)];
  }
  const Eigen::MatrixXd centred = draws.rowwise() - draws.colwise().mean();
  const Eigen::MatrixXd sample_cov = centred.transpose() * centred / (n - 1);
  double worst = 0;
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j <= i; ++j) {
      const double se = std::sqrt((cov(i, i) * cov(j, j) + cov(i, j) * cov(i, j)) / n);
      EXPECT_NEAR(sample_cov(i, j), cov(i, j), 5 * se) << i << "," << j;
      worst = std::max(worst, std::abs(sample_cov(i, j) - cov(i, j)) / se);
    }
  std::printf("  prior sample covariance: worst deviation %.2f standard errors\n", worst);
}

// With |ψ_t| ≥ 100 for every t the spikes are certain (z = 1 or z < 1e-43 below every uniform),
// so x = Σ over the spiking bins of the design rows, exactly. θ = (−c·K, 0.., K at tap j, 0..)
// fires bin t iff X[t, j+1] > c, i.e. I[t − j] > c for t ≥ j and 0 > c for t < j: this reads the
// plugin's stimulus and design structure entry by entry.
TEST(BernoulliGlm, DesignMatrixAndStimulusMatchSbibm) {
  if (!have_data()) GTEST_SKIP() << "sbibm data not found under " << data_dir();
  const Eigen::MatrixXd xd = design();
  // The stimulus file is the design's second column.
  const auto stim = read_csv(data_dir() + "/stimulus_I.csv", false);
  ASSERT_EQ(stim.size(), 100u);
  for (int t = 0; t < 100; ++t) EXPECT_EQ(static_cast<float>(stim[static_cast<std::size_t>(t)][0]), xd(t, 1)) << t;
  const std::uint64_t seed = fsbi::test::announce_seed("bernoulli_glm design", 9902);
  auto sim = open();
  constexpr double kGain = 1e6;
  int cases = 0;
  for (int j = 0; j < 9; ++j) {
    for (double c : {-1.0, -0.3, 0.05, 0.4, 1.1}) {
      // Skip a threshold that some stimulus value is too close to (|ψ| < 100).
      bool margin = true;
      for (int t = 0; t < 100; ++t) margin = margin && std::abs(xd(t, j + 1) - c) * kGain >= 100;
      if (!margin) continue;
      std::vector<double> theta(10, 0.0);
      theta[0] = -c * kGain;
      theta[static_cast<std::size_t>(j) + 1] = kGain;
      Eigen::VectorXd expected = Eigen::VectorXd::Zero(10);
      for (int t = 0; t < 100; ++t)
        if (xd(t, j + 1) > c) expected += xd.row(t).transpose();
      const auto x = simulate_at(*sim, seed, theta, 3, static_cast<std::uint64_t>(100 * cases));
      for (int r = 0; r < 3; ++r)
        for (int k = 0; k < 10; ++k)
          EXPECT_NEAR(x[10 * static_cast<std::size_t>(r) + static_cast<std::size_t>(k)], expected[k], 1e-9)
              << "tap " << j << ", threshold " << c << ", output " << k;
      ++cases;
    }
  }
  // Always firing (θ0 = 100): x = the column sums; never firing: x = 0.
  std::vector<double> on(10, 0.0), off(10, 0.0);
  on[0] = 100;
  off[0] = -100;
  const auto x_on = simulate_at(*sim, seed, on, 1), x_off = simulate_at(*sim, seed, off, 1);
  const Eigen::VectorXd sums = xd.colwise().sum().transpose();
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(x_on[static_cast<std::size_t>(k)], sums[k], 1e-9) << k;
    EXPECT_EQ(x_off[static_cast<std::size_t>(k)], 0.0) << k;
  }
  std::printf("  %d (tap, threshold) cases checked exactly; column sums %.6f %.6f ... %.6f\n", cases, sums[0],
              sums[1], sums[9]);
  EXPECT_GE(cases, 30);
}

// The exact draw order: 100 uniforms u_t, y_t = 1[u_t < z_t].
TEST(BernoulliGlm, UsesTheHostStreamInTheDocumentedOrder) {
  if (!have_data()) GTEST_SKIP() << "sbibm data not found under " << data_dir();
  const Eigen::MatrixXd xd = design();
  const std::uint64_t seed = fsbi::test::announce_seed("bernoulli_glm stream", 9903);
  const std::vector<double> theta{-1.0, 0.5, 1.0, 0.3, -0.2, -0.5, 0.1, 0.0, 0.2, -0.1};
  const Eigen::VectorXd z = logistic(xd * vec(theta));
  const auto x = simulate_at(*open(), seed, theta, 25, 5000);
  for (std::size_t i = 0; i < 25; ++i) {
    fsbi::CounterRng rng(seed, fsbi::Stream::simulator, 5000 + i, 0);
    Eigen::VectorXd y(100);
    for (int t = 0; t < 100; ++t) y[t] = rng.uniform() < z[t] ? 1.0 : 0.0;
    const Eigen::VectorXd expected = xd.transpose() * y;
    for (int k = 0; k < 10; ++k) EXPECT_NEAR(x[10 * i + static_cast<std::size_t>(k)], expected[k], 1e-9) << i << "," << k;
  }
}

// Moments at a fixed θ: E x = Xᵀz, Cov x = Xᵀ diag(z(1 − z)) X.
TEST(BernoulliGlm, MomentsAtFixedTheta) {
  if (!have_data()) GTEST_SKIP() << "sbibm data not found under " << data_dir();
  const Eigen::MatrixXd xd = design();
  const std::uint64_t seed = fsbi::test::announce_seed("bernoulli_glm moments", 9904);
  const std::vector<double> theta{0.4, 1.2, -0.7, 0.9, 0.3, -1.1, 0.2, 0.5, -0.4, 0.6};
  const Eigen::VectorXd z = logistic(xd * vec(theta));
  const Eigen::VectorXd mean = xd.transpose() * z;
  const Eigen::MatrixXd cov = xd.transpose() * (z.array() * (1 - z.array())).matrix().asDiagonal() * xd;
  constexpr int n = 50000;
  const auto x = simulate_at(*open(), seed, theta, n);
  const Eigen::MatrixXd sims = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 10, Eigen::RowMajor>>(x.data(), n, 10);
  const Eigen::VectorXd m = sims.colwise().mean().transpose();
  const Eigen::MatrixXd centred = sims.rowwise() - m.transpose();
  const Eigen::MatrixXd c = centred.transpose() * centred / (n - 1);
  double worst_m = 0, worst_c = 0;
  for (int k = 0; k < 10; ++k) {
    const double se = std::sqrt(cov(k, k) / n);
    EXPECT_NEAR(m[k], mean[k], 5 * se) << k;
    worst_m = std::max(worst_m, std::abs(m[k] - mean[k]) / se);
    for (int l = 0; l <= k; ++l) {
      // Normal-theory se of a covariance; x is a sum of 100 independent terms, close to normal.
      const double se_c = std::sqrt((cov(k, k) * cov(l, l) + cov(k, l) * cov(k, l)) / n);
      EXPECT_NEAR(c(k, l), cov(k, l), 6 * se_c) << k << "," << l;
      worst_c = std::max(worst_c, std::abs(c(k, l) - cov(k, l)) / se_c);
    }
  }
  std::printf("  mean spikes %.3f (analytic %.3f); worst mean deviation %.2f se, worst covariance "
              "deviation %.2f se\n", m[0], mean[0], worst_m, worst_c);
}

// ∇θ log p(x|θ) = x − Xᵀz(θ): against central differences of θᵀx − Σ log(1 + e^{ψ_t}).
TEST(BernoulliGlm, LikelihoodScore) {
  if (!have_data()) GTEST_SKIP() << "sbibm data not found under " << data_dir();
  const Eigen::MatrixXd xd = design();
  auto sim = open();
  const std::vector<double> theta{0.4, 1.2, -0.7, 0.9, 0.3, -1.1, 0.2, 0.5, -0.4, 0.6};
  Eigen::VectorXd y(100);
  for (int t = 0; t < 100; ++t) y[t] = (t * 7 % 3 == 0) ? 1.0 : 0.0;
  const Eigen::VectorXd xv = xd.transpose() * y;
  const std::vector<double> x(xv.data(), xv.data() + 10);
  auto log_lik = [&](const std::vector<double>& v) {
    const Eigen::VectorXd th = vec(v);
    const Eigen::VectorXd psi = xd * th;
    double a = 0;
    for (int t = 0; t < 100; ++t) a += std::log1p(std::exp(psi[t]));
    return th.dot(xv) - a;
  };
  const double worst = fsbi::test::expect_score_matches_central_differences(
      *sim, theta, x, log_lik, {.size = 1e-6, .relative = false}, 1e-5, 1.0);
  std::printf("  worst |score - central difference| / max(1, |cd|) = %.2e\n", worst);
}

// sbibm's observations: x_o = Xᵀ y_raw for the stored spike train (the "sufficient" summary), and
// x_o lies in the bulk of the plugin's distribution at the true θ: its Mahalanobis distance under
// the exact mean and covariance is below that of at least 0.1% of 20 000 simulated data sets.
TEST(BernoulliGlm, SbibmObservationsHavePlausibleLikelihood) {
  if (!have_data()) GTEST_SKIP() << "sbibm data not found under " << data_dir();
  const Eigen::MatrixXd xd = design();
  const std::uint64_t seed = fsbi::test::announce_seed("bernoulli_glm sbibm observations", 9905);
  auto sim = open();
  for (int obs = 1; obs <= 10; ++obs) {
    const std::string dir = data_dir() + "/obs_" + std::to_string(obs);
    if (!std::filesystem::exists(dir + "/observation.csv")) continue;
    const auto theta = read_csv(dir + "/true_parameters.csv", true).at(0);
    const Eigen::VectorXd xo = vec(read_csv(dir + "/observation.csv", true).at(0));
    const Eigen::VectorXd y = vec(read_csv(dir + "/observation_raw.csv", true).at(0));
    ASSERT_EQ(theta.size(), 10u);
    ASSERT_EQ(y.size(), 100);
    EXPECT_LT((xd.transpose() * y - xo).cwiseAbs().maxCoeff(), 1e-4) << "obs_" << obs;
    const Eigen::VectorXd z = logistic(xd * vec(theta));
    const Eigen::VectorXd mean = xd.transpose() * z;
    const Eigen::MatrixXd cov = xd.transpose() * (z.array() * (1 - z.array())).matrix().asDiagonal() * xd;
    const Eigen::LLT<Eigen::MatrixXd> llt(cov);
    auto dist2 = [&](const Eigen::VectorXd& v) { return llt.matrixL().solve(v - mean).squaredNorm(); };
    const double d_obs = dist2(xo);
    constexpr std::size_t n = 20000;
    const auto x = simulate_at(*sim, seed, theta, n, static_cast<std::uint64_t>(obs) * n);
    std::size_t larger = 0;
    for (std::size_t i = 0; i < n; ++i) larger += dist2(Eigen::Map<const Eigen::VectorXd>(x.data() + 10 * i, 10)) > d_obs;
    const double p = static_cast<double>(larger) / n;
    std::printf("  obs_%d: %g spikes (expected %.1f), Mahalanobis^2 %.2f, simulated p-value %.4f\n", obs, xo[0],
                mean[0], d_obs, p);
    EXPECT_GT(p, 0.001) << "obs_" << obs;
  }
}
