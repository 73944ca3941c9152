// Posterior quality with fsbi's defaults (label: statistical — minutes, its own CI step): `fsbi run`
// end to end on gaussian_linear (analytic posterior: means within 0.02, variances within 10 %,
// C2ST < 0.55) and two_moons (each symmetric mode holds 50 ± 3 % of the samples). Measured
// values are printed; docs/sampling.md and bench/README.md record them.
#include "fsbi/random.hpp"
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

}  // namespace
}  // namespace fsbi
