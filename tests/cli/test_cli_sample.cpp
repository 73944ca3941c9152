// `fsbi sample` and `fsbi run` through the real binary on a small problem: the netCDF-4 posterior
// file (read by xarray), reloading it as a Posterior, determinism across thread counts, errors.
#include "fsbi/local_fsm.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/table_io.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fsbi {
namespace {

using test::run_fsbi;
using testing::HasSubstr;

class CliSample : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = new test::TempDir();
    const auto s = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=2", "-n", "3000", "--seed",
                             std::to_string(test::announce_seed("simulation", 31)), "-o", file("data.h5"), "--quiet"});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    const auto t = run_fsbi({"train", "--data", file("data.h5"), "-o", file("model.h5"), "--model-kind", "energy",
                             "--epochs", "8", "--seed", "1", "--quiet"});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    std::ofstream obs(file("obs.csv"));
    obs << "data_1,data_2\n0.3,-0.2\n0.25,-0.1\n";
  }
  static void TearDownTestSuite() { delete dir; }
  static std::string file(const std::string& name) { return dir->file(name); }
  static test::TempDir* dir;
};
test::TempDir* CliSample::dir = nullptr;

TEST_F(CliSample, PosteriorFileOpensInXarrayAndReloads) {
  const auto r = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"), "--num-samples",
                           "400", "--chains", "8", "--warmup", "100", "-o", file("post.h5"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto py = test::run({"/usr/bin/python3", "-c",
                             "import xarray as xr\n"
                             "p = xr.open_dataset('" + file("post.h5") + "', engine='h5netcdf', group='posterior')\n"
                             "print('dims', dict(p.sizes))\n"
                             "print('theta', p['theta'].dims)\n"
                             "print('names', list(p['parameter'].values))\n"
                             "o = xr.open_dataset('" + file("post.h5") + "', engine='h5netcdf', group='observed_data')\n"
                             "print('obs', o['x'].dims, o['x'].values.tolist())\n"});
  if (py.exit_code != 0 && py.err.find("No module named") != std::string::npos) GTEST_SKIP() << py.err;
  ASSERT_EQ(py.exit_code, 0) << py.err;
  EXPECT_THAT(py.out, HasSubstr("dims {'chain': 8, 'draw': 50, 'parameter': 2}"));
  EXPECT_THAT(py.out, HasSubstr("theta ('chain', 'draw', 'parameter')"));
  EXPECT_THAT(py.out, HasSubstr("names ['parameter_1', 'parameter_2']"));
  EXPECT_THAT(py.out, HasSubstr("obs ('trial', 'data') [[0.3, -0.2], [0.25, -0.1]]"));
  EXPECT_THAT(py.out, testing::Not(HasSubstr("phony_dim")));

  // The posterior file alone reloads the model and its samples.
  const Posterior post = Posterior::load(file("post.h5"));
  EXPECT_EQ(post.model().info().simulator_name, "gaussian_linear");
  h5::File f = h5::File::open(file("post.h5"));
  const PosteriorSamples s = read_posterior(f);
  EXPECT_EQ(s.chains, 8);
  EXPECT_EQ(s.draws, 50);
  EXPECT_EQ(s.observations.rows(), 2);
}

TEST_F(CliSample, SamplesDoNotDependOnThreads) {
  for (const std::string threads : {"1", "2"}) {
    const auto r = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"),
                             "--num-samples", "256", "--chains", "8", "--warmup", "50", "--seed", "3", "--threads",
                             threads, "-o", file("t" + threads + ".h5"), "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  h5::File a = h5::File::open(file("t1.h5")), b = h5::File::open(file("t2.h5"));
  const auto sa = read_posterior(a), sb = read_posterior(b);
  ASSERT_EQ(sa.theta.size(), 256u * 2);  // samples × parameters
  EXPECT_EQ(sa.theta, sb.theta);
}

// The examples/ program: load a posterior and draw samples through the C++ API.
TEST_F(CliSample, ExampleProgramLoadsAPosterior) {
  const auto r = test::run({std::string(FSBI_TEST_BINARY_DIR) + "/bin/load_posterior", file("model.h5"),
                            file("obs.csv"), "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("parameter_1: mean -?[0-9]"));
  EXPECT_THAT(r.out, testing::ContainsRegex("parameter_2: mean -?[0-9]"));
}

// `fsbi check`: replicates simulated at the file's posterior draws, an observation they do not
// reproduce (exit code 4), and its errors.
TEST_F(CliSample, CheckSaysWhetherThePosteriorReproducesTheObservation) {
  const auto r = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"), "--num-samples",
                           "400", "--chains", "8", "--warmup", "100", "-o", file("pc.h5"), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ok = run_fsbi({"check", file("pc.h5"), "-n", "400", "--seed",
                            std::to_string(test::announce_seed("replicates", 2)), "-o", file("rep.csv")});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("400 replicate data sets of 'gaussian_linear' at posterior draws"));
  EXPECT_THAT(ok.out, HasSubstr("the posterior reproduces the observations"));
  // gaussian_linear's x ~ N(θ, 0.1 I): the replicates' mean is the posterior draws' mean, to
  // sqrt((0.1 + posterior variance) / 400) ≈ 0.017 per value; 0.06 is 3.5 of that.
  const Table rep = read_table(file("rep.csv"), 2, "replicates", "2 data values");
  ASSERT_EQ(rep.rows(), 400);
  h5::File f = h5::File::open(file("pc.h5"));
  const PosteriorSamples s = read_posterior(f);
  const Eigen::Map<const Table> theta(s.theta.data(), 400, 2);
  for (int j = 0; j < 2; ++j) EXPECT_NEAR(rep.col(j).mean(), theta.col(j).mean(), 0.06) << "data value " << j + 1;

  // The same replicates as a netCDF-4 file: the draws, the observations and /posterior_predictive.
  const auto nc = run_fsbi({"check", file("pc.h5"), "-n", "400", "--seed", "2", "-o", file("rep.h5")});
  ASSERT_EQ(nc.exit_code, 0) << nc.err;
  {
    h5::File g = h5::File::open(file("rep.h5"));
    const PosteriorSamples draws = read_posterior(g);
    EXPECT_EQ(draws.chains, 1);
    EXPECT_EQ(draws.draws, 400);
    EXPECT_EQ(draws.observations, s.observations);
    const std::vector<double> x = g.open_group("posterior_predictive").open_dataset("x").read_all_double();
    ASSERT_EQ(x.size(), 800u);
    const Eigen::Map<const Table> xm(x.data(), 400, 2);
    EXPECT_EQ(Table(xm), rep);
  }
  const auto py = test::run({"/usr/bin/python3", "-c",
                             "import xarray as xr\n"
                             "p = xr.open_dataset('" + file("rep.h5") +
                                 "', engine='h5netcdf', group='posterior_predictive')\n"
                             "print('dims', dict(p.sizes), p['x'].dims)\n"});
  if (py.exit_code == 0) {
    EXPECT_THAT(py.out, HasSubstr("dims {'chain': 1, 'draw': 400, 'data': 2} ('chain', 'draw', 'data')"));
  } else {
    EXPECT_THAT(py.err, HasSubstr("No module named")) << "xarray could not open the file";
  }
  const auto txt = run_fsbi({"check", file("pc.h5"), "-o", file("rep.txt")});
  EXPECT_EQ(txt.exit_code, 2);
  EXPECT_THAT(txt.err,
              HasSubstr("--output " + file("rep.txt") + ": give FILE.csv (a table) or FILE.h5 (netCDF-4)"));

  {
    std::ofstream far(file("far.csv")), wide(file("wide.csv"));
    far << "3,3\n";
    wide << "1,2,3\n";
  }
  const auto bad = run_fsbi({"check", file("pc.h5"), "-n", "400", "--observation", file("far.csv")});
  EXPECT_EQ(bad.exit_code, 4);
  EXPECT_THAT(bad.err, HasSubstr("fsbi check: the posterior does not reproduce " + file("far.csv") +
                                 ": an observation lies beyond nearly all replicate data sets (smallest p = 0.00249"));
  const auto wide = run_fsbi({"check", file("pc.h5"), "--observation", file("wide.csv")});
  EXPECT_EQ(wide.exit_code, 1);
  EXPECT_THAT(wide.err, HasSubstr("wide.csv: line 1 has 3 values, simulator 'gaussian_linear' produces 2"));
  const auto no_samples = run_fsbi({"check", file("model.h5")});
  EXPECT_EQ(no_samples.exit_code, 1);
  EXPECT_THAT(no_samples.err, HasSubstr(file("model.h5") + ": no posterior samples (/posterior); check a file written "
                                                           "by `fsbi run` or `fsbi sample`"));
  const auto few = run_fsbi({"check", file("pc.h5"), "-n", "5"});
  EXPECT_EQ(few.exit_code, 2);
  EXPECT_THAT(few.err, HasSubstr("--replicates must be at least 20, not 5"));
}

// One seed drives every stage of `fsbi run`, and simulation and training do not depend on the
// observation: `fsbi sample --model RUN.h5` with another single observation and the same seed
// draws exactly what `fsbi run` with that observation draws. The quality benchmark
// (bench/quality/run.py) relies on this to train once per task and budget.
TEST_F(CliSample, SamplingARunFileRepeatsTheRunForAnotherObservation) {
  const std::string seed = std::to_string(test::announce_seed("run", 41));
  {
    std::ofstream a(file("one_a.csv")), b(file("one_b.csv"));
    a << "0.3,-0.2\n";
    b << "-0.1,0.15\n";
  }
  const std::vector<std::string> sampling = {"--num-samples", "64", "--chains", "8", "--warmup", "30",
                                             "--seed", seed, "--threads", "2", "--quiet"};
  auto run = [&](const std::string& obs, const std::string& out) {
    std::vector<std::string> a = {"run", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation", file(obs),
                                  "-n", "600", "--epochs", "5", "-o", file(out)};
    a.insert(a.end(), sampling.begin(), sampling.end());
    return run_fsbi(a);
  };
  const auto ra = run("one_a.csv", "run_a.h5");
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  const auto rb = run("one_b.csv", "run_b.h5");
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  std::vector<std::string> sa = {"sample", "--model", file("run_a.h5"), "--observation", file("one_b.csv"), "-o",
                                 file("sample_b.h5")};
  sa.insert(sa.end(), sampling.begin(), sampling.end());
  const auto s = run_fsbi(sa);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  h5::File fb = h5::File::open(file("run_b.h5")), fs = h5::File::open(file("sample_b.h5")),
           fa = h5::File::open(file("run_a.h5"));
  const PosteriorSamples pb = read_posterior(fb), ps = read_posterior(fs), pa = read_posterior(fa);
  ASSERT_EQ(pb.theta.size(), 64u * 2);
  EXPECT_EQ(ps.observations, pb.observations);
  EXPECT_EQ(ps.theta, pb.theta);
  // ... and not because the observation is ignored: observation a gives other draws.
  EXPECT_NE(pa.theta, pb.theta);
}

// `fsbi run` with several observations spends a fifth of the budget recentring the score
// (docs/sampling.md, "Several observations"): the pairs and the offset are in the run file, the
// offset is the model's mean score over those pairs, and the pairs are the simulator's own draws
// from the documented streams; --recentring-simulations 0 turns it off; bad counts are refused.
TEST_F(CliSample, RunRecentresTheScoreForSeveralObservations) {
  const std::uint64_t seed = test::announce_seed("run", 23);
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"run", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation",
                                    file("obs.csv"), "-n", "1000", "--epochs", "8", "--num-samples", "400",
                                    "--chains", "8", "--warmup", "100", "--seed", std::to_string(seed), "-o", out};
  };
  const auto r = run_fsbi(args(file("rc.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("[1/3] simulating 800 × gaussian_linear"));
  EXPECT_THAT(r.out, HasSubstr("recentring the score: 200 simulations at posterior draws"));
  EXPECT_THAT(r.out, HasSubstr("/recentring,"));
  EXPECT_EQ(read_simulations(file("rc.h5")).theta.rows(), 800);
  h5::File f = h5::File::open(file("rc.h5"));
  h5::Group g = f.open_group("recentring");
  EXPECT_EQ(g.attribute_uint("num_requested"), 200u);
  EXPECT_EQ(g.attribute_uint("num_failed"), 0u);
  EXPECT_EQ(g.attribute_uint("seed"), seed);
  EXPECT_EQ(g.attribute_uint("first_index"), 800u);
  // The draws come from a preliminary posterior: all 8 chains, fewer than the least it runs (200).
  EXPECT_EQ(g.attribute_uint("preliminary_chains"), 8u);
  const std::vector<double> th = g.open_dataset("theta").read_all_double(), x = g.open_dataset("x").read_all_double();
  ASSERT_EQ(th.size(), 400u);
  ASSERT_EQ(x.size(), 400u);
  const Eigen::Map<const Eigen::MatrixXd> theta(th.data(), 2, 200), xs(x.data(), 2, 200);
  // The pairs at their streams: pair j is simulation first_index + j of the run's seed.
  const auto sim = open_simulator("gaussian_linear", {{"dim", "2"}}, {test::bundled_plugin_dir()});
  EXPECT_EQ(simulate_at(*sim, theta, seed, 800, 1).x, xs);
  // The draws are posterior draws: inside the run's posterior samples' range.
  const PosteriorSamples ps = read_posterior(f);
  const Eigen::Map<const Eigen::MatrixXd> samples(ps.theta.data(), 2, 400);
  for (int i = 0; i < 2; ++i) {
    EXPECT_GE(theta.row(i).minCoeff(), samples.row(i).minCoeff() - 0.3) << "parameter " << i + 1;
    EXPECT_LE(theta.row(i).maxCoeff(), samples.row(i).maxCoeff() + 0.3) << "parameter " << i + 1;
  }
  // The offset is the model's mean score in u over the pairs.
  const ScoreModel model = ScoreModel::load(file("rc.h5"));
  const Eigen::VectorXd mean = model.score_u(model.transform().to_unconstrained(theta), xs).rowwise().mean();
  const std::vector<double> offset = g.open_dataset("offset_u").read_all_double();
  ASSERT_EQ(offset.size(), 2u);
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(offset[static_cast<std::size_t>(i)], mean(i), 1e-9 * std::abs(mean(i)));
  const auto info = run_fsbi({"info", file("rc.h5")});
  EXPECT_THAT(info.out, HasSubstr("/recentring: 200 simulations at posterior draws (0 failed)"));

  // `fsbi sample` recentres on request, with streams beyond any simulation file's slots.
  const auto s = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"),
                           "--recentring-simulations", "100", "--num-samples", "400", "--chains", "8", "--warmup",
                           "100", "--seed", "4", "-o", file("src.h5")});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_THAT(s.out, HasSubstr("recentring the score: 100 simulations at posterior draws"));
  {
    h5::File sf = h5::File::open(file("src.h5"));
    h5::Group sg = sf.open_group("recentring");
    EXPECT_EQ(sg.attribute_uint("first_index"), std::uint64_t{1} << 40);
    const std::vector<double> sth = sg.open_dataset("theta").read_all_double(),
                              sx = sg.open_dataset("x").read_all_double();
    ASSERT_EQ(sth.size(), 200u);
    const Eigen::Map<const Eigen::MatrixXd> t2(sth.data(), 2, 100), x2(sx.data(), 2, 100);
    EXPECT_EQ(simulate_at(*sim, t2, 4, std::uint64_t{1} << 40, 2).x, x2);
    EXPECT_EQ(sg.attribute_uint("preliminary_chains"), 8u);
  }
  // With more chains than the recentring needs, the preliminary posterior runs only as many as its
  // draws need at the final posterior's draws per chain: 1500 draws at 2 per chain, 750 chains.
  const auto part = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"),
                              "--recentring-simulations", "1500", "--num-samples", "2000", "--chains", "1000",
                              "--warmup", "20", "--seed", "4", "-o", file("src750.h5")});
  ASSERT_EQ(part.exit_code, 0) << part.err;
  EXPECT_THAT(part.out, HasSubstr("preliminary posterior (750 chains)"));
  {
    h5::File pf = h5::File::open(file("src750.h5"));
    EXPECT_EQ(pf.open_group("recentring").attribute_uint("preliminary_chains"), 750u);
    EXPECT_EQ(pf.open_group("recentring").open_dataset("theta").shape(), (std::vector<std::uint64_t>{1500, 2}));
    EXPECT_EQ(read_posterior(pf).chains, 1000);
  }
  const auto five = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"),
                              "--recentring-simulations", "5", "-o", file("src5.h5")});
  EXPECT_EQ(five.exit_code, 2);
  EXPECT_THAT(five.err, HasSubstr("--recentring-simulations must be 0 (off) or at least 20, not 5"));
  const auto nowhere = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"),
                                 "--recentring-simulations", "100", "--simulator", file("missing.so"), "-o",
                                 file("src6.h5")});
  EXPECT_EQ(nowhere.exit_code, 1);
  EXPECT_THAT(nowhere.err, HasSubstr("missing.so"));
  EXPECT_FALSE(std::filesystem::exists(file("src6.h5")));

  auto off = args(file("rc0.h5"));
  off.insert(off.end(), {"--recentring-simulations", "0", "--quiet"});
  const auto r0 = run_fsbi(off);
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  EXPECT_EQ(read_simulations(file("rc0.h5")).theta.rows(), 1000);
  EXPECT_FALSE(h5::File::open(file("rc0.h5")).exists("recentring"));

  auto few = args(file("rc1.h5"));
  few.insert(few.end(), {"--recentring-simulations", "10"});
  const auto r1 = run_fsbi(few);
  EXPECT_EQ(r1.exit_code, 2);
  EXPECT_THAT(r1.err, HasSubstr("--recentring-simulations must be 0 (off) or at least 20, not 10"));
  auto many = args(file("rc2.h5"));
  many.insert(many.end(), {"--recentring-simulations", "600"});
  const auto r2 = run_fsbi(many);
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_THAT(r2.err, HasSubstr("--recentring-simulations 600 would take more than half of the 1000 simulations; "
                                "give at most 500 or a larger --num-simulations"));
  EXPECT_FALSE(std::filesystem::exists(file("rc1.h5")));
}

TEST_F(CliSample, ClearErrors) {
  {
    std::ofstream wrong(file("wrong.csv")), empty(file("empty.csv"));
    wrong << "1,2,3\n";
    empty << "data_1,data_2\n";
  }
  const auto w = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("wrong.csv"), "-o",
                           file("x.h5"), "--quiet"});
  EXPECT_EQ(w.exit_code, 1);
  EXPECT_THAT(w.err, HasSubstr("wrong.csv: line 1 has 3 values, simulator 'gaussian_linear' produces 2"));
  const auto e = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("empty.csv"), "-o",
                           file("x.h5"), "--quiet"});
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_THAT(e.err, HasSubstr("empty.csv: no observation rows"));
  const auto folder = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("."), "-o", file("x.h5"),
                                "--quiet"});
  EXPECT_EQ(folder.exit_code, 1);
  EXPECT_THAT(folder.err, HasSubstr("is a folder; give the observation as a CSV file (FILE.csv) or an HDF5 dataset"));
  // A model of another simulator: two_moons' observation file has the right width (2) for this
  // model, but `fsbi run` checks the observation against the simulator it runs.
  const auto sims = run_fsbi({"sample", "--model", file("data.h5"), "--observation", file("obs.csv"), "-o",
                              file("x.h5"), "--quiet"});
  EXPECT_EQ(sims.exit_code, 1);
  EXPECT_THAT(sims.err, HasSubstr("no /model group"));
  const auto run = run_fsbi({"run", "-s", "gaussian_linear", "--observation", file("obs.csv"), "-n", "100", "-o",
                             file("r.h5"), "--quiet"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("obs.csv: the header has 2 columns, simulator 'gaussian_linear' produces 10"));
  EXPECT_FALSE(std::filesystem::exists(file("x.h5")));
  // An --output in a folder that does not exist: said before any sampling, for each command.
  const std::string nowhere = file("no/such/dir/x.h5");
  const std::string missing = nowhere + ": the folder '" + file("no/such/dir") +
                              "' does not exist; create it or choose another --output";
  const auto s = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"), "-o", nowhere,
                           "--quiet"});
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_THAT(s.err, HasSubstr(missing));
  const auto t = run_fsbi({"train", "--data", file("data.h5"), "-o", nowhere, "--quiet"});
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_THAT(t.err, HasSubstr(missing));
  const auto r = run_fsbi({"run", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation", file("obs.csv"),
                           "-n", "100", "-o", nowhere, "--quiet"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(missing));
  // Numbers out of range are usage errors (exit 2) before anything is written: a negative count
  // is not read as 2^64 − 5, and a budget too small to train on is said before simulating.
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases{
      {{"-n", "-5"}, "--num-simulations '-5': give a whole number of 0 or more"},
      {{"-n", "19"}, "--num-simulations 19: fsbi run trains on its simulations, which needs at least 20"},
      {{"-n", "100", "--seed", "-1"}, "--seed '-1': give a whole number of 0 or more"},
      {{"-n", "100", "--threads", "-1"}, "--threads -1: give 0 (all cores) or a positive number"},
      {{"-n", "100", "--num-samples", "-10"}, "--num-samples -10: give at least 1"},
      {{"-n", "100", "--method", "nuts"}, "--method 'nuts': give auto, mala, smc or ula"},
      {{"-n", "100", "--warmup", "-1"}, "sampling options: warmup is -1; it must be 0 or more"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"run", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation",
                                  file("obs.csv"), "-o", file("bad.h5"), "--quiet"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto b = run_fsbi(args);
    EXPECT_EQ(b.exit_code, 2) << c.expected << "\n" << b.err;
    EXPECT_THAT(b.err, HasSubstr(c.expected));
    EXPECT_FALSE(std::filesystem::exists(file("bad.h5")));
    EXPECT_FALSE(std::filesystem::exists(file("bad.h5.simulations.h5.partial")));
  }
  const auto sample_threads = run_fsbi({"sample", "--model", file("model.h5"), "--observation", file("obs.csv"), "-o",
                                        file("x.h5"), "--threads", "-2", "--quiet"});
  EXPECT_EQ(sample_threads.exit_code, 2);
  EXPECT_THAT(sample_threads.err, HasSubstr("--threads -2: give 0 (all cores) or a positive number"));
}

}  // namespace
}  // namespace fsbi
