// Coverage of the Wald intervals `fsbi mle` reports: 100 independent MLE runs on a 5-d Gaussian
// mean (10 observations each at θ = ones), nominal 95 %.
#include "fsbi/random.hpp"
#include "h5/h5.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace fsbi {
namespace {

TEST(MleCoverage, WaldIntervalsCoverTheTruthAtTheNominalRate) {
  constexpr int runs = 100, d = 5, n = 10;
  const std::uint64_t base = test::announce_seed("coverage base seed", 2024);
  test::TempDir tmp;
  int covered = 0, total = 0, runs_all_covered = 0;
  for (int r = 0; r < runs; ++r) {
    const std::string obs = tmp.file("obs.csv"), out = tmp.file("mle.h5");
    {
      std::ofstream f(obs);
      f.precision(17);
      for (int i = 0; i < n; ++i) {
        CounterRng rng(base + static_cast<std::uint64_t>(r), Stream::test, static_cast<std::uint64_t>(i));
        for (int j = 0; j < d; ++j) f << (j ? "," : "") << 1.0 + rng.normal();
        f << "\n";
      }
    }
    const auto res = test::run_fsbi({"mle", "-s", "gaussian_mean", "--sim-opt", "dim=5", "--observation", obs, "-o",
                                     out, "--overwrite", "--seed", std::to_string(base + static_cast<std::uint64_t>(r)),
                                     "--quiet"});
    ASSERT_EQ(res.exit_code, 0) << res.err;
    h5::File f = h5::File::open(out);
    const auto lo = f.open_dataset("/mle/wald_lower").read_all_double();
    const auto hi = f.open_dataset("/mle/wald_upper").read_all_double();
    int here = 0;
    for (int j = 0; j < d; ++j) here += (lo[static_cast<std::size_t>(j)] <= 1.0 && 1.0 <= hi[static_cast<std::size_t>(j)]);
    covered += here;
    total += d;
    runs_all_covered += here == d;
  }
  const double coverage = static_cast<double>(covered) / total;
  std::printf("[coverage] %d of %d marginal 95%% Wald intervals cover θ = 1 (%.3f) over %d runs; all %d covered in "
              "%d runs\n",
              covered, total, coverage, runs, d, runs_all_covered);
  EXPECT_GE(coverage, 0.90);
  EXPECT_LE(coverage, 0.99);
}

}  // namespace
}  // namespace fsbi
