// `fsbi mle`, `fsbi fisher` and `fsbi compress` through the real binary and bundled plugins.
#include "fsbi/random.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

namespace fsbi {
namespace {

using test::run_fsbi;
using testing::HasSubstr;

// n observations of x ~ N(θ, I_d) at θ = (1, …, 1), from the test stream.
Table gaussian_mean_observations(int d, int n, std::uint64_t seed) {
  Table obs(n, d);
  for (int i = 0; i < n; ++i) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(i));
    for (int j = 0; j < d; ++j) obs(i, j) = 1.0 + rng.normal();
  }
  return obs;
}

void write_csv(const std::string& path, const Table& t, bool header) {
  std::ofstream f(path);
  if (header)
    for (Eigen::Index j = 0; j < t.cols(); ++j) f << (j ? "," : "") << "data_" << j + 1;
  if (header) f << "\n";
  f.precision(17);
  for (Eigen::Index i = 0; i < t.rows(); ++i) {
    for (Eigen::Index j = 0; j < t.cols(); ++j) f << (j ? "," : "") << t(i, j);
    f << "\n";
  }
}

std::vector<double> read_dataset(const std::string& file, const std::string& path) {
  h5::File f = h5::File::open(file);
  return f.open_dataset(path).read_all_double();
}

class CliMle : public testing::Test {
 protected:
  test::TempDir tmp;
};

TEST_F(CliMle, RecoversTheSampleMeanOfAGaussian) {
  for (const int d : {2, 10, 50}) {
    const std::uint64_t obs_seed = test::announce_seed("observations d=" + std::to_string(d), 100 + d);
    const Table obs = gaussian_mean_observations(d, 10, obs_seed);
    std::string source;
    if (d == 10) {  // HDF5 observations; CSV with a header (d = 2) and without (d = 50)
      source = tmp.file("obs10.h5") + ":/obs";
      write_table(source, obs, std::vector<std::string>(static_cast<std::size_t>(d), "x"), "/obs");
    } else {
      source = tmp.file("obs" + std::to_string(d) + ".csv");
      write_csv(source, obs, d == 2);
    }
    const std::string out = tmp.file("mle" + std::to_string(d) + ".h5");
    const std::uint64_t seed = test::announce_seed("mle d=" + std::to_string(d), 7);
    const auto r = run_fsbi({"mle", "-s", "gaussian_mean", "--sim-opt", "dim=" + std::to_string(d), "--observation",
                             source, "-o", out, "--simulations-per-iteration", "1000", "--seed", std::to_string(seed)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("maximum-likelihood estimate from 10 observations"));
    EXPECT_THAT(r.err, HasSubstr("mle: iteration 100/100"));
    const auto th = read_dataset(out, "/mle/theta_hat");
    ASSERT_EQ(th.size(), static_cast<std::size_t>(d));
    const Eigen::VectorXd mean = obs.colwise().mean().transpose();
    const double err = (Eigen::Map<const Eigen::VectorXd>(th.data(), d) - mean).norm();
    h5::File f = h5::File::open(out);
    const auto g = f.open_group("mle");
    const auto sims = g.attribute_int("num_simulations");
    std::printf("[mle] d = %d: |theta_hat − sample mean| = %.4f (bound %.4f), %lld simulations in total, 1000 per "
                "iteration, sigma %s = %.3g\n",
                d, err, 0.05 * std::sqrt(d), static_cast<long long>(sims), g.attribute_string("sigma_source").c_str(),
                g.open_dataset("sigma").read_all_double()[0]);
    EXPECT_LT(err, 0.05 * std::sqrt(static_cast<double>(d)));
    EXPECT_EQ(g.attribute_int("num_observations"), 10);
    EXPECT_EQ(g.open_dataset("trajectory").shape(), (std::vector<std::uint64_t>{101, static_cast<std::uint64_t>(d)}));
    // Wald standard errors from the fitted Fisher information: 1/√10 per coordinate. In 50
    // dimensions the 50 × 50 smoothing correction from 4000 simulations is noisy per coordinate
    // (docs/mle.md), so there the mean is checked.
    const auto se = g.open_dataset("standard_error").read_all_double();
    const Eigen::Map<const Eigen::VectorXd> sev(se.data(), d);
    std::printf("[mle] d = %d: standard errors mean %.4f, range [%.4f, %.4f] (exact %.4f)\n", d, sev.mean(),
                sev.minCoeff(), sev.maxCoeff(), 1 / std::sqrt(10.0));
    if (d <= 10) {
      for (const double s : se) EXPECT_NEAR(s, 1 / std::sqrt(10.0), 0.05);
    }
    EXPECT_NEAR(sev.mean(), 1 / std::sqrt(10.0), 0.03);
  }
}

TEST_F(CliMle, ReproducibleForAnyThreadCount) {
  const Table obs = gaussian_mean_observations(2, 10, test::announce_seed("observations", 3));
  write_csv(tmp.file("obs.csv"), obs, false);
  std::vector<std::vector<double>> est;
  for (const char* t : {"1", "2"}) {
    const std::string out = tmp.file(std::string("t") + t + ".h5");
    const auto r = run_fsbi({"mle", "-s", "gaussian_mean", "--observation", tmp.file("obs.csv"), "-o", out,
                             "--iterations", "30", "--threads", t, "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.err.empty()) << r.err;
    est.push_back(read_dataset(out, "/mle/trajectory"));
  }
  EXPECT_EQ(est[0], est[1]);
}

TEST_F(CliMle, FisherFromTheLocalFitOnGaussianLinear) {
  // x = θ + N(0, 0.1 I): F = 10 I.
  const std::string out = tmp.file("fisher.h5");
  const std::uint64_t seed = test::announce_seed("fisher", 5);
  const auto r = run_fsbi({"fisher", "--local", "-s", "gaussian_linear", "--sim-opt", "dim=3", "--theta", "0.1,-0.2,0.3",
                           "-n", "100000", "--local-simulations", "400000", "--seed", std::to_string(seed), "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Cramér–Rao bounds"));
  const auto f = read_dataset(out, "/fisher/fisher");
  ASSERT_EQ(f.size(), 9u);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const double v = f[static_cast<std::size_t>(3 * i + j)];
      std::printf("[fisher] local F(%d,%d) = %.4f (true %g)\n", i, j, v, i == j ? 10.0 : 0.0);
      if (i == j) EXPECT_NEAR(v, 10.0, 0.5);
      else EXPECT_NEAR(v, 0.0, 0.5);
    }
  const auto cr = read_dataset(out, "/fisher/cramer_rao");
  for (const double c : cr) EXPECT_NEAR(c, std::sqrt(0.1), 0.01);
}

TEST_F(CliMle, AmortisedFisherWaldIntervalsAndCompression) {
  const std::uint64_t seed = test::announce_seed("simulation", 21);
  auto r = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=2", "-n", "10000", "--seed",
                     std::to_string(seed), "-o", tmp.file("sims.h5"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_fsbi({"train", "--data", tmp.file("sims.h5"), "-o", tmp.file("model.h5"), "--seed", "1", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // An MLE to put Wald intervals around: observations at θ = (0.1, -0.2).
  Table obs(5, 2);
  for (int i = 0; i < 5; ++i) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(i));
    obs(i, 0) = 0.1 + std::sqrt(0.1) * rng.normal();
    obs(i, 1) = -0.2 + std::sqrt(0.1) * rng.normal();
  }
  write_csv(tmp.file("obs.csv"), obs, true);
  r = run_fsbi({"mle", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation", tmp.file("obs.csv"), "-o",
                tmp.file("mle.h5"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = run_fsbi({"fisher", "--model", tmp.file("model.h5"), "--theta", "0.1,-0.2", "-n", "20000", "--mle",
                tmp.file("mle.h5"), "-o", tmp.file("fisher.h5")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("95% Wald intervals around the estimate"));
  const auto f = read_dataset(tmp.file("fisher.h5"), "/fisher/fisher");
  std::printf("[fisher] amortised model (jacobian estimator): F = [[%.3f, %.3f], [%.3f, %.3f]] (true 10 I)\n", f[0],
              f[1], f[2], f[3]);
  // Within 5 % on the diagonal and 0.5 off it (10⁴ training simulations, default model).
  EXPECT_NEAR(f[0], 10.0, 0.5);
  EXPECT_NEAR(f[3], 10.0, 0.5);
  EXPECT_NEAR(f[1], 0.0, 0.5);
  // The outer-product estimator adds the score error's covariance: it reads high.
  r = run_fsbi({"fisher", "--model", tmp.file("model.h5"), "--theta", "0.1,-0.2", "-n", "20000", "--estimator",
                "outer", "-o", tmp.file("fisher_outer.h5")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto fo = read_dataset(tmp.file("fisher_outer.h5"), "/fisher/fisher");
  std::printf("[fisher] amortised model (outer estimator): F = [[%.3f, %.3f], [%.3f, %.3f]]\n", fo[0], fo[1], fo[2],
              fo[3]);
  EXPECT_GT(fo[0] + fo[3], f[0] + f[3] - 0.2);
  // Wald intervals: estimate ± 1.96 · sqrt(diag F⁻¹ / 5).
  const auto th = read_dataset(tmp.file("fisher.h5"), "/fisher/theta_hat");
  const auto lo = read_dataset(tmp.file("fisher.h5"), "/fisher/wald_lower");
  const auto cr = read_dataset(tmp.file("fisher.h5"), "/fisher/cramer_rao");
  EXPECT_NEAR(th[0] - lo[0], 1.959963984540054 * cr[0], 1e-12);
  EXPECT_NEAR(cr[0], std::sqrt(0.1 / 5), 0.015);

  // Compression t(x) = s(θ_fid, x) equals `fsbi score` at θ = θ_fid row by row.
  {
    std::ofstream x(tmp.file("x.csv")), th_fid(tmp.file("theta.csv"));
    for (int i = 0; i < 4; ++i) {
      x << 0.1 * i << "," << -0.2 + 0.05 * i << "\n";
      th_fid << "0.05,-0.1\n";
    }
  }
  r = run_fsbi({"compress", "--model", tmp.file("model.h5"), "--theta-fid", "0.05,-0.1", "--x", tmp.file("x.csv"),
                "-o", tmp.file("t.h5")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_fsbi({"score", "--model", tmp.file("model.h5"), "--theta", tmp.file("theta.csv"), "--x", tmp.file("x.csv"),
                "-o", tmp.file("s.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Table t = read_table(tmp.file("t.h5"), 2, "t", "2 columns", "/compressed");
  const Table s = read_table(tmp.file("s.csv"), 2, "score", "2 columns");
  ASSERT_EQ(t.rows(), 4);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_NEAR(t(i, j), s(i, j), 1e-12 * (1 + std::abs(s(i, j))));
  r = run_fsbi({"compress", "--model", tmp.file("model.h5"), "--theta-fid", "0.05,-0.1", "--x", tmp.file("x.csv"),
                "-o", tmp.file("t.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Table tc = read_table(tmp.file("t.csv"), 2, "t", "2 columns");
  EXPECT_NEAR(tc(3, 1), t(3, 1), 1e-12 * (1 + std::abs(t(3, 1))));
}

TEST_F(CliMle, ClearErrors) {
  {
    std::ofstream f(tmp.file("v.csv"));
    f << "1.2\n0.7\n";
  }
  auto r = run_fsbi({"mle", "-s", "gaussian_scale", "--observation", tmp.file("v.csv"), "-o", tmp.file("a.h5"),
                     "--theta0", "-1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--theta0 = (-1) is outside the interior of the prior's support"));
  r = run_fsbi({"mle", "-s", "gaussian_scale", "--observation", tmp.file("v.csv"), "-o", tmp.file("a.h5"), "--sigma",
                "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--sigma = 0 must be positive"));
  r = run_fsbi({"mle", "-s", "gaussian_mean", "--observation", tmp.file("v.csv"), "-o", tmp.file("a.h5")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("line 1 has 1 values, simulator 'gaussian_mean' produces 2"));
  {
    std::ofstream f(tmp.file("x2.csv"));
    f << "1.2,0.3\n";
  }
  r = run_fsbi({"mle", "-s", "gaussian_mean", "--observation", tmp.file("x2.csv"), "-o", tmp.file("a.h5"), "--theta0",
                "1,2,3"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--theta0 has 3 values, the simulator has 2 parameters"));
  r = run_fsbi({"mle", "-s", "gaussian_scale", "--observation", tmp.file("v.csv"), "-o", tmp.file("a.h5"),
                "--features", "learned"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--features learned needs --model FILE"));
  r = run_fsbi({"fisher", "-s", "gaussian_mean", "--theta", "0,0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("give --model FILE (amortised score) or --local"));
  r = run_fsbi({"fisher", "--local", "-s", "gaussian_scale", "--theta", "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("theta = (0) is outside the interior of the prior's support"));
}

}  // namespace
}  // namespace fsbi
