// Posterior quality with fsbi's defaults (label: statistical — minutes, its own CI step): `fsbi run`
// end to end on gaussian_linear (analytic posterior: means within 0.02, variances within 10 %,
// C2ST < 0.55), on ten i.i.d. gaussian_linear observations composed (the same tolerances against
// N(Σx/11, 0.1/11 I)) and on two_moons (each symmetric mode holds 50 ± 3 % of the samples).
// Measured values are printed; docs/sampling.md and bench/README.md record them.
#include "fsbi/random.hpp"
#include "fsbi/simulation.hpp"
#include "h5/h5.hpp"
#include "posterior_checks.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace fsbi {
namespace {

using test::c2st;
using test::expect_gaussian;
using test::posterior_table;
using test::run_fsbi_run;
using test::sbibm;
using test::write_csv;

TEST(PosteriorQuality, GaussianLinearMatchesTheAnalyticPosterior) {
  test::TempDir tmp;
  const std::string seed = std::to_string(test::announce_seed("run", 1));
  run_fsbi_run({"-s", "gaussian_linear", "--observation", sbibm("gaussian_linear", 1, "observation.csv"), "-n",
                "10000", "--seed", seed, "-o", tmp.file("run.h5")});
  const Table s = posterior_table(tmp.file("run.h5"));
  const Table xo = read_table(sbibm("gaussian_linear", 1, "observation.csv"), 10, "observation", "10 values");
  expect_gaussian(s, xo.row(0).transpose() / 2, 0.05, "gaussian_linear obs 1");
  write_csv(tmp.file("samples.csv"), s.topRows(std::min<Eigen::Index>(s.rows(), 10000)));
  const double c = c2st(sbibm("gaussian_linear", 1, "reference_posterior_samples.csv"), tmp.file("samples.csv"));
  std::printf("gaussian_linear obs 1: C2ST %.4f against the reference samples\n", c);
  EXPECT_LT(c, 0.55);
}

TEST(PosteriorQuality, TwoMoonsModesAreBalanced) {
  test::TempDir tmp;
  run_fsbi_run({"-s", "two_moons", "--observation", sbibm("two_moons", 1, "observation.csv"), "-n", "10000",
                "--seed", std::to_string(test::announce_seed("run", 4)), "-o", tmp.file("run.h5")});
  const Table s = posterior_table(tmp.file("run.h5"));
  const Eigen::Index n = s.rows(), upper = ((s.col(0) + s.col(1)).array() > 0).count();
  std::printf("two_moons obs 1: %.2f%% (%ld of %ld samples) in the mode with θ1 + θ2 > 0\n",
              100.0 * static_cast<double>(upper) / static_cast<double>(n), static_cast<long>(upper),
              static_cast<long>(n));
  // 50 ± 3 %, bounds included, in whole samples: |upper/n − 1/2| ≤ 3/100 ⇔ |100·upper − 50·n| ≤ 3·n
  // (a floating-point share would put exactly 47 % a rounding error outside).
  EXPECT_LE(std::abs(100 * upper - 50 * n), 3 * n) << "mode share outside 50 ± 3 %";
  write_csv(tmp.file("samples.csv"), s.topRows(std::min<Eigen::Index>(s.rows(), 10000)));
  const double c = c2st(sbibm("two_moons", 1, "reference_posterior_samples.csv"), tmp.file("samples.csv"));
  std::printf("two_moons obs 1: C2ST %.4f against the reference samples (sbibm NPE at 10^4: 0.606)\n", c);
  EXPECT_LT(c, 0.65);
}

// Ten observations add the learned score's mean error ten times; the default run recentres the
// score at the posterior with a fifth of the budget (docs/sampling.md, "Several observations").
TEST(PosteriorQuality, GaussianLinearComposesTenIidObservations) {
  test::TempDir tmp;
  // Ten observations at one θ (drawn from the prior), written as one CSV.
  const std::uint64_t seed = test::announce_seed("observations", 2);
  Eigen::VectorXd theta(10);
  CounterRng prior_rng(seed, Stream::test, 0);
  for (int i = 0; i < 10; ++i) theta[i] = std::sqrt(0.1) * prior_rng.normal();
  Table obs(10, 10);
  for (int r = 0; r < 10; ++r) {
    CounterRng rng(seed, Stream::test, 1 + static_cast<std::uint64_t>(r));
    for (int i = 0; i < 10; ++i) obs(r, i) = theta[i] + std::sqrt(0.1) * rng.normal();
  }
  write_csv(tmp.file("obs.csv"), obs);
  run_fsbi_run({"-s", "gaussian_linear", "--observation", tmp.file("obs.csv"), "-n", "10000", "--seed",
                std::to_string(test::announce_seed("run", 3)), "-o", tmp.file("run.h5")});
  // 10⁴ simulations in all: 8000 trained on, 2000 recentring the score.
  EXPECT_EQ(read_simulations(tmp.file("run.h5")).theta.rows(), 8000);
  EXPECT_EQ(h5::File::open(tmp.file("run.h5")).open_group("recentring").open_dataset("theta").shape(),
            (std::vector<std::uint64_t>{2000, 10}));
  // Prior N(0, 0.1 I) and ten N(θ, 0.1 I) observations: N(Σx / 11, 0.1/11 I).
  expect_gaussian(posterior_table(tmp.file("run.h5")), obs.colwise().sum().transpose() / 11, 0.1 / 11,
                  "gaussian_linear, 10 observations");
}

}  // namespace
}  // namespace fsbi
