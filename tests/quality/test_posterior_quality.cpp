// Posterior quality with fsbi's defaults (label: quality; run with `ctest -L quality`): `fsbi run`
// end to end on gaussian_linear (analytic posterior) and two_moons (mode balance), and i.i.d.
// composition. These are the posterior issue's acceptance targets; the defaults do not meet all of
// them yet, so they are not part of the CI suite (status in docs/sampling.md).
#include "fsbi/random.hpp"
#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

namespace fsbi {
namespace {

std::string sbibm(const std::string& task, int obs, const std::string& file) {
  return test::shared_dir() + "/sbibm/" + task + "/obs_" + std::to_string(obs) + "/" + file;
}

// Samples (chains·draws) × d from a run file's posterior group.
Table posterior_table(const std::string& path) {
  h5::File f = h5::File::open(path);
  const PosteriorSamples s = read_posterior(f);
  const auto d = static_cast<Eigen::Index>(s.parameter_names.size());
  return Eigen::Map<const Table>(s.theta.data(), static_cast<Eigen::Index>(s.chains) * s.draws, d);
}

void write_csv(const std::string& path, const Table& t) {
  std::ofstream out(path);
  out.precision(17);
  for (Eigen::Index i = 0; i < t.rows(); ++i) {
    for (Eigen::Index j = 0; j < t.cols(); ++j) out << (j ? "," : "") << t(i, j);
    out << "\n";
  }
}

double c2st(const std::string& reference_csv, const std::string& samples_csv) {
  const auto r = test::run({"/usr/bin/python3", std::string(FSBI_TEST_SOURCE_DIR) + "/tests/support/c2st.py",
                            reference_csv, samples_csv});
  if (r.exit_code != 0) ADD_FAILURE() << "c2st.py failed: " << r.err;
  return std::stod(r.out);
}

void run_fsbi_run(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"run", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = test::run_fsbi(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

void expect_gaussian(const Table& s, const Eigen::VectorXd& mean, double var, const char* what) {
  for (Eigen::Index j = 0; j < s.cols(); ++j) {
    const double m = s.col(j).mean();
    const double v = (s.col(j).array() - m).square().sum() / static_cast<double>(s.rows() - 1);
    std::printf("%s parameter %ld: mean %.4f (analytic %.4f), variance %.5f (analytic %.5f)\n", what,
                static_cast<long>(j + 1), m, mean[j], v, var);
    EXPECT_NEAR(m, mean[j], 0.02) << what << " parameter " << j + 1;
    EXPECT_NEAR(v, var, 0.1 * var) << what << " parameter " << j + 1;
  }
}

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

TEST(PosteriorQuality, TwoMoonsModesAreBalanced) {
  test::TempDir tmp;
  run_fsbi_run({"-s", "two_moons", "--observation", sbibm("two_moons", 1, "observation.csv"), "-n", "10000",
                "--seed", std::to_string(test::announce_seed("run", 4)), "-o", tmp.file("run.h5")});
  const Table s = posterior_table(tmp.file("run.h5"));
  const double share = static_cast<double>(((s.col(0) + s.col(1)).array() > 0).count()) / static_cast<double>(s.rows());
  std::printf("two_moons obs 1: %.1f%% of %ld samples in the mode with θ1 + θ2 > 0\n", 100 * share,
              static_cast<long>(s.rows()));
  EXPECT_NEAR(share, 0.5, 0.03);
  write_csv(tmp.file("samples.csv"), s.topRows(std::min<Eigen::Index>(s.rows(), 10000)));
  const double c = c2st(sbibm("two_moons", 1, "reference_posterior_samples.csv"), tmp.file("samples.csv"));
  std::printf("two_moons obs 1: C2ST %.4f against the reference samples (sbibm NPE at 10^4: 0.67)\n", c);
}

}  // namespace
}  // namespace fsbi
