// Checks of posterior samples shared by the posterior-quality tests: reading a run file's samples,
// C2ST against sbibm's reference samples (tests/support/c2st.py, as sbibm computes it), and
// moments against an analytic Gaussian posterior.
#pragma once

#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace fsbi::test {

inline std::string sbibm(const std::string& task, int obs, const std::string& file) {
  return shared_dir() + "/sbibm/" + task + "/obs_" + std::to_string(obs) + "/" + file;
}

// Samples (chains·draws) × d from a run file's posterior group.
inline Table posterior_table(const std::string& path) {
  h5::File f = h5::File::open(path);
  const PosteriorSamples s = read_posterior(f);
  const auto d = static_cast<Eigen::Index>(s.parameter_names.size());
  return Eigen::Map<const Table>(s.theta.data(), static_cast<Eigen::Index>(s.chains) * s.draws, d);
}

// CSV with a header row column_1..column_k, through fsbi's own table writer (exact round-trip
// numbers); fsbi and c2st.py read it with or without the header.
inline void write_csv(const std::string& path, const Table& t) {
  std::vector<std::string> names;
  for (Eigen::Index j = 0; j < t.cols(); ++j) names.push_back("column_" + std::to_string(j + 1));
  write_table(path, t, names, "");
}

inline double c2st(const std::string& reference_csv, const std::string& samples_csv) {
  const auto r = run({"/usr/bin/python3", std::string(FSBI_TEST_SOURCE_DIR) + "/tests/support/c2st.py",
                            reference_csv, samples_csv});
  if (r.exit_code != 0) ADD_FAILURE() << "c2st.py failed: " << r.err;
  return std::stod(r.out);
}

inline void run_fsbi_run(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"run", "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_fsbi(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

inline void expect_gaussian(const Table& s, const Eigen::VectorXd& mean, double var, const char* what) {
  for (Eigen::Index j = 0; j < s.cols(); ++j) {
    const double m = s.col(j).mean();
    const double v = (s.col(j).array() - m).square().sum() / static_cast<double>(s.rows() - 1);
    std::printf("%s parameter %ld: mean %.4f (analytic %.4f), variance %.5f (analytic %.5f)\n", what,
                static_cast<long>(j + 1), m, mean[j], v, var);
    EXPECT_NEAR(m, mean[j], 0.02) << what << " parameter " << j + 1;
    EXPECT_NEAR(v, var, 0.1 * var) << what << " parameter " << j + 1;
  }
}

}  // namespace fsbi::test
