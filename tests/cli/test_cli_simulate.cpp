// End-to-end tests of `fsbi simulate`, `fsbi plugins` and `fsbi info`: the real binary, real
// plugins loaded with dlopen, real threads, real HDF5 files, real signals.
#include "fsbi/simulation.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <thread>

extern char** environ;

namespace fsbi {
namespace {

using test::run_fsbi;
using testing::HasSubstr;
using testing::Not;

// Exactly one line of error text on stderr (progress output is off with --quiet).
int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(CliSimulate, HelpOnEverySubcommand) {
  for (const std::string cmd : {"simulate", "plugins", "info"}) {
    const auto r = run_fsbi({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_THAT(r.out, HasSubstr("usage: fsbi " + cmd)) << cmd;
  }
  const auto top = run_fsbi({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("simulate"));
  const auto unknown = run_fsbi({"simulat"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'simulat'"));
}

// The reproducibility check: 1 and 2 threads give bit-identical datasets.
TEST(CliSimulate, TwoMoonsBitIdenticalForOneAndTwoThreads) {
  test::TempDir tmp;
  const auto seed = std::to_string(test::announce_seed("two_moons run", 7));
  const auto a = run_fsbi({"simulate", "--simulator", "two_moons", "-n", "20000", "--seed", seed,
                           "--threads", "1", "-o", tmp.file("t1.h5"), "--quiet"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto b = run_fsbi({"simulate", "--simulator", "two_moons", "-n", "20000", "--seed", seed,
                           "--threads", "2", "--batch-size", "37", "-o", tmp.file("t2.h5"), "--quiet"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto da = read_simulations(tmp.file("t1.h5"));
  const auto db = read_simulations(tmp.file("t2.h5"));
  ASSERT_EQ(da.theta.rows(), 20000);
  ASSERT_EQ(db.theta.rows(), 20000);
  EXPECT_EQ(0, std::memcmp(da.theta.data(), db.theta.data(), sizeof(double) * 20000 * 2));
  EXPECT_EQ(0, std::memcmp(da.x.data(), db.x.data(), sizeof(double) * 20000 * 2));
  EXPECT_EQ(da.status, "complete");
  EXPECT_EQ(da.prior, "uniform(-1, 1)");

  // Marginal moments of x under the prior, computed from the task definition:
  // x0 = r cos a + 0.25 − |θ0+θ1|/√2, x1 = r sin a + (θ1−θ0)/√2 with a ~ U(−π/2, π/2),
  // r ~ N(0.1, 0.01²), θ ~ U(−1, 1)². θ0+θ1 and θ1−θ0 are triangular on [−2, 2]:
  // E|S| = 2/3, E S² = 2/3. E[cos a] = 2/π, E[cos² a] = E[sin² a] = 1/2.
  const double er2 = 0.01 + 1e-4;
  const double mean_x0 = 0.1 * 2 / std::numbers::pi + 0.25 - (2.0 / 3.0) / std::sqrt(2.0);
  const double var_x0 = er2 / 2 - std::pow(0.2 / std::numbers::pi, 2) + (2.0 / 3.0 - 4.0 / 9.0) / 2;
  const double mean_x1 = 0.0;
  const double var_x1 = er2 / 2 + (2.0 / 3.0) / 2;
  const double n = 20000;
  const auto x0 = da.x.col(0).array(), x1 = da.x.col(1).array();
  const double m0 = x0.mean(), m1 = x1.mean();
  const double v0 = (x0 - m0).square().sum() / (n - 1), v1 = (x1 - m1).square().sum() / (n - 1);
  // 5 standard errors; the variance's standard error uses the (near-Gaussian) 2σ⁴/n bound ×1.5.
  EXPECT_NEAR(m0, mean_x0, 5 * std::sqrt(var_x0 / n));
  EXPECT_NEAR(m1, mean_x1, 5 * std::sqrt(var_x1 / n));
  EXPECT_NEAR(v0, var_x0, 5 * 1.5 * var_x0 * std::sqrt(2 / n));
  EXPECT_NEAR(v1, var_x1, 5 * 1.5 * var_x1 * std::sqrt(2 / n));
  std::printf("x0 mean %.5f (analytic %.5f) var %.5f (%.5f); x1 mean %.5f (%.5f) var %.5f (%.5f)\n", m0,
              mean_x0, v0, var_x0, m1, mean_x1, v1, var_x1);

  // fsbi info summarises the file.
  const auto info = run_fsbi({"info", tmp.file("t1.h5")});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("two_moons"));
  EXPECT_THAT(info.out, HasSubstr("20000 of 20000"));
  EXPECT_THAT(info.out, HasSubstr("status:     complete"));
}

TEST(CliSimulate, SimulatorOptionsAndPriorOverride) {
  test::TempDir tmp;
  const auto r = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=3", "-n", "500",
                           "--prior", "uniform(-2, 2)", "-o", tmp.file("g.h5"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto d = read_simulations(tmp.file("g.h5"));
  EXPECT_EQ(d.theta.cols(), 3);
  EXPECT_EQ(d.x.cols(), 3);
  EXPECT_EQ(d.simulator_options, "dim=3");
  EXPECT_EQ(d.prior, "uniform(-2, 2)");
  EXPECT_LE(d.theta.maxCoeff(), 2.0);
  EXPECT_GE(d.theta.minCoeff(), -2.0);
  EXPECT_GT(d.theta.maxCoeff(), 1.5);  // not the default N(0, 0.1) prior

  const auto bad_opt = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=zero", "-n",
                                 "10", "-o", tmp.file("b.h5"), "--quiet"});
  EXPECT_EQ(bad_opt.exit_code, 1);
  EXPECT_THAT(bad_opt.err, HasSubstr("option 'dim'"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("b.h5")));
}

TEST(CliSimulate, OutputIsNotOverwrittenWithoutAsking) {
  test::TempDir tmp;
  const std::vector<std::string> args{"simulate", "-s", "two_moons", "-n", "10", "-o", tmp.file("o.h5"), "--quiet"};
  ASSERT_EQ(run_fsbi(args).exit_code, 0);
  const auto again = run_fsbi(args);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  EXPECT_THAT(again.err, HasSubstr("--overwrite"));
  auto over = args;
  over.push_back("--overwrite");
  EXPECT_EQ(run_fsbi(over).exit_code, 0);
}

// Each bad input: a one-line error naming the problem, a non-zero exit, no output file.
TEST(CliSimulate, BadInputsGetOneLineErrors) {
  test::TempDir tmp;
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string expected;
  };
  const std::string out = tmp.file("never.h5");
  const std::vector<Case> cases{
      {{"-s", test::fixture_plugin("wrong_abi")}, 1, "ABI version 2, but this fsbi uses ABI version 1"},
      {{"-s", test::fixture_plugin("no_entry")}, 1, "no exported 'fsbi_simulator_entry' symbol"},
      {{"-s", test::fixture_plugin("not_a_plugin")}, 1, "cannot be loaded as a plugin"},
      {{"-s", tmp.file("missing.so")}, 1, "no such file"},
      {{"-s", "no_such_simulator"}, 1, "no simulator named 'no_such_simulator'"},
      {{"-s", "two_moons", "--prior", "uniform(-1)"}, 2, "uniform(-1)"},
      {{"-s", "two_moons", "--prior", "normal([0, 0, 0], 1)"}, 2, "normal([0, 0, 0], 1)"},
      {{"-s", "two_moons", "--on-failure", "ignore"}, 2, "--on-failure 'ignore'"},
      {{"-s", "two_moons", "--sim-opt", "dim"}, 2, "not of the form key=value"},
      {{"-s", test::fixture_plugin("bad_options"), "--sim-opt", "mode=c"}, 1, "option 'mode': 'c' is not allowed"},
      {{"-s", "two_moons", "--seed", "-1"}, 2, "--seed '-1': give a whole number of 0 or more"},
      {{"-s", "two_moons", "--threads", "-1"}, 2, "--threads -1: give 0 (all cores) or a positive number"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"simulate", "-n", "100", "-o", out, "--quiet"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_fsbi(args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args[1] << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << c.args[1];
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
  }
}

// A simulator that throws for θ < −0.5 (a quarter of the prior): the default policy aborts with
// the failing θ named, and keeps what was written readable.
TEST(CliSimulate, ThrowingSimulatorAbortsAboveTheFailureBudget) {
  test::TempDir tmp;
  const std::string out = tmp.file("t.h5");
  const auto r = run_fsbi({"simulate", "-s", test::fixture_plugin("throwing"), "-n", "5000",
                           "--seed", "3", "-o", out, "--quiet"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("simulator 'throwing' failed at θ = (-"));
  EXPECT_THAT(r.err, HasSubstr("negative theta not supported"));
  EXPECT_THAT(r.err, HasSubstr("budget of 5"));
  EXPECT_EQ(count_lines(r.err), 1);
  EXPECT_FALSE(std::filesystem::exists(out));
  const auto partial = read_simulations(out + ".partial");
  EXPECT_EQ(partial.status, "running");
  EXPECT_EQ(partial.failed, 6u);  // budget 0.001 · 5000 = 5, the sixth aborts
  for (Eigen::Index i = 0; i < partial.theta.rows(); ++i) EXPECT_GE(partial.theta(i, 0), -0.5);
  const auto info = run_fsbi({"info", out + ".partial"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("INTERRUPTED"));
  EXPECT_THAT(info.out, HasSubstr("negative theta not supported"));
}

TEST(CliSimulate, FailurePoliciesDropAndRedraw) {
  test::TempDir tmp;
  // Drop: allow every failure; the kept rows are exactly the slots that did not fail.
  const auto drop = run_fsbi({"simulate", "-s", test::fixture_plugin("throwing"), "-n", "4000",
                              "--seed", "5", "--max-failure-rate", "1", "-o", tmp.file("d.h5"), "--quiet"});
  ASSERT_EQ(drop.exit_code, 0) << drop.err;
  const auto d = read_simulations(tmp.file("d.h5"));
  EXPECT_EQ(static_cast<std::uint64_t>(d.theta.rows()) + d.failed, 4000u);
  // θ ~ U(−1, 1): P(θ < −0.5) = 1/4; 5 standard errors of a binomial count.
  EXPECT_NEAR(static_cast<double>(d.failed), 1000.0, 5 * std::sqrt(4000 * 0.25 * 0.75));
  EXPECT_GE(d.theta.col(0).minCoeff(), -0.5);

  // Redraw: every slot ends with a row; the redrawn ones have attempt > 0 and θ ≥ −0.5.
  const auto redraw = run_fsbi({"simulate", "-s", test::fixture_plugin("throwing"), "-n", "4000",
                                "--seed", "5", "--on-failure", "redraw", "--max-failure-rate", "1",
                                "-o", tmp.file("r.h5"), "--quiet"});
  ASSERT_EQ(redraw.exit_code, 0) << redraw.err;
  const auto rr = read_simulations(tmp.file("r.h5"));
  EXPECT_EQ(rr.theta.rows(), 4000);
  EXPECT_GE(rr.theta.col(0).minCoeff(), -0.5);
  for (std::size_t i = 0; i < rr.index.size(); ++i) ASSERT_EQ(rr.index[i], static_cast<std::int64_t>(i));
  EXPECT_GE(rr.failed, d.failed);  // the same first attempts fail, and some redraws fail again

  // The rows both runs kept at attempt 0 are identical: redraws do not shift other slots.
  Eigen::Index j = 0;
  for (Eigen::Index i = 0; i < d.theta.rows(); ++i) {
    while (rr.index[static_cast<std::size_t>(j)] < d.index[static_cast<std::size_t>(i)]) ++j;
    ASSERT_EQ(d.theta(i, 0), rr.theta(j, 0));
    ASSERT_EQ(d.x(i, 0), rr.x(j, 0));
  }

  // Abort: the first failure stops the run.
  const auto abort = run_fsbi({"simulate", "-s", test::fixture_plugin("throwing"), "-n", "4000",
                               "--on-failure", "abort", "-o", tmp.file("a.h5"), "--quiet"});
  EXPECT_EQ(abort.exit_code, 3);
  EXPECT_THAT(abort.err, HasSubstr("--on-failure abort stops at the first failure"));
}

TEST(CliSimulate, NonFiniteOutputCountsAsFailure) {
  test::TempDir tmp;
  const auto r = run_fsbi({"simulate", "-s", test::fixture_plugin("nan"), "-n", "2000", "-o",
                           tmp.file("n.h5"), "--quiet"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("non-finite value nan"));
  EXPECT_THAT(r.err, HasSubstr("failed at θ = (0.9"));
  const auto ok = run_fsbi({"simulate", "-s", test::fixture_plugin("nan"), "-n", "2000",
                            "--max-failure-rate", "0.2", "-o", tmp.file("n2.h5"), "--quiet"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto d = read_simulations(tmp.file("n2.h5"));
  EXPECT_TRUE(d.x.allFinite());
  EXPECT_LE(d.theta.col(0).maxCoeff(), 0.9);
  EXPECT_GT(d.failed, 0u);
}

TEST(CliSimulate, CrashingSimulatorIsReportedAndRowsSurvive) {
  test::TempDir tmp;
  const std::string out = tmp.file("c.h5");
  const auto r = run_fsbi({"simulate", "-s", test::fixture_plugin("crashing"), "-n", "100000",
                           "--sim-opt", "crash_above=0.9999", "--threads", "1", "-o", out, "--quiet"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("crashed with SIGSEGV"));
  EXPECT_THAT(r.err, HasSubstr(out + ".partial"));
  EXPECT_THAT(r.err, HasSubstr("--resume"));
  EXPECT_FALSE(std::filesystem::exists(out));
  const auto info = run_fsbi({"info", out + ".partial"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("INTERRUPTED"));
}

// The resume check: a run of millions of simulations killed with SIGKILL, resumed, gives
// the same datasets as an uninterrupted run.
TEST(CliSimulate, KilledRunResumesToTheUninterruptedResult) {
  test::TempDir tmp;
  const std::string n = "3000000", seed = std::to_string(test::announce_seed("resume run", 11));
  const std::string killed = tmp.file("killed.h5"), whole = tmp.file("whole.h5");
  const pid_t pid = test::spawn_fsbi({"simulate", "-s", "gaussian_linear", "-n", n, "--seed", seed,
                                "--threads", "1", "-o", killed, "--quiet",
                                "--plugin-path", test::bundled_plugin_dir()});
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ(0, kill(pid, SIGKILL));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished within a second; raise N";
  ASSERT_FALSE(std::filesystem::exists(killed));
  const auto partial = read_simulations(killed + ".partial");
  std::printf("killed after 1 s with %lld rows checkpointed\n", static_cast<long long>(partial.theta.rows()));
  EXPECT_GT(partial.theta.rows(), 0);
  EXPECT_LT(partial.theta.rows(), 3000000);

  // Resuming with other settings is refused, naming the difference.
  const auto wrong = run_fsbi({"simulate", "-s", "gaussian_linear", "-n", n, "--seed", "12", "-o",
                               killed, "--resume", "--quiet"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("--seed was '" + seed + "', now '12'"));

  const auto resumed = run_fsbi({"simulate", "-s", "gaussian_linear", "-n", n, "--seed", seed,
                                 "--threads", "2", "-o", killed, "--resume", "--quiet"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto uninterrupted = run_fsbi({"simulate", "-s", "gaussian_linear", "-n", n, "--seed", seed,
                                       "-o", whole, "--quiet"});
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.err;
  const auto a = read_simulations(killed), b = read_simulations(whole);
  ASSERT_EQ(a.theta.rows(), 3000000);
  ASSERT_EQ(b.theta.rows(), 3000000);
  EXPECT_TRUE(a.theta == b.theta);
  EXPECT_TRUE(a.x == b.x);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.status, "complete");
}

TEST(CliPlugins, ListsBundledSimulatorsAndLoadFailures) {
  const auto r = run_fsbi({"plugins"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("two_moons +1\\.0\\.0 +2 +2 +.*two_moons\\.so"));
  EXPECT_THAT(r.out, testing::ContainsRegex("gaussian_linear +1\\.0\\.0 +10 +10"));

  const std::string fixtures = std::filesystem::path(test::fixture_plugin("x")).parent_path().string();
  const auto v = run_fsbi({"plugins", "--verbose", "--plugin-path", fixtures});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("c_plugin"));
  EXPECT_THAT(v.out, HasSubstr("failed to load:"));
  EXPECT_THAT(v.out, HasSubstr("wrong_abi.so"));
  EXPECT_THAT(v.out, HasSubstr("ABI version 2"));
  EXPECT_THAT(v.out, HasSubstr("no_entry.so"));

  // The same folder through the environment.
  const auto e = run_fsbi({"plugins"}, {"FSBI_PLUGIN_PATH=" + fixtures});
  EXPECT_THAT(e.out, HasSubstr("c_plugin"));
  EXPECT_THAT(e.out, HasSubstr("failed to load; see --verbose"));
}

TEST(CliInfo, RejectsFilesItCannotRead) {
  test::TempDir tmp;
  const auto missing = run_fsbi({"info", tmp.file("nope.h5")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope.h5: no such file"));
  {
    std::FILE* f = std::fopen(tmp.file("text.h5").c_str(), "w");
    std::fputs("not hdf5\n", f);
    std::fclose(f);
  }
  const auto text = run_fsbi({"info", tmp.file("text.h5")});
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_THAT(text.err, HasSubstr("not an HDF5 file"));
}

}  // namespace
}  // namespace fsbi
