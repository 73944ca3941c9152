// Posterior-quality targets the defaults do not meet yet (label: quality; run by hand with
// `ctest -L quality`; not in CI): the composition of ten i.i.d. gaussian_linear observations to
// the analytic posterior's tolerances. Status in docs/sampling.md.
#include "fsbi/random.hpp"
#include "posterior_checks.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace fsbi {
namespace {

using test::c2st;
using test::expect_gaussian;
using test::posterior_table;
using test::run_fsbi_run;
using test::sbibm;
using test::write_csv;

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
  run_fsbi_run({"-s", "gaussian_linear", "--observation", tmp.file("obs.csv"), "-n", "10000", "--seed", "3", "-o",
                tmp.file("run.h5")});
  // Prior N(0, 0.1 I) and ten N(θ, 0.1 I) observations: N(Σx / 11, 0.1/11 I).
  expect_gaussian(posterior_table(tmp.file("run.h5")), obs.colwise().sum().transpose() / 11, 0.1 / 11,
                  "gaussian_linear, 10 observations");
}

}  // namespace
}  // namespace fsbi
