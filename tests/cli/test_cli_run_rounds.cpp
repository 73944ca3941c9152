// `fsbi run --rounds R` through the real binary on a small problem (gaussian_linear, dim 2): what
// the run file holds per round, that a run killed in any round resumes to the uninterrupted
// result, and the errors of bad sequential settings.
#include "fsbi/posterior.hpp"
#include "fsbi/simulation.hpp"
#include "h5/h5.hpp"
#include "model_file.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace fsbi {
namespace {

using test::run_fsbi;
using testing::HasSubstr;

class CliRunRounds : public testing::Test {
 protected:
  void SetUp() override {
    std::ofstream obs(tmp.file("obs.csv"));
    obs << "data_1,data_2\n0.3,-0.2\n";
  }
  // Small and quick: 3 rounds of 300 simulations, 15 epochs each, 600 posterior samples.
  std::vector<std::string> args(const std::string& output, int rounds = 3, int epochs = 15) const {
    return {"run", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--observation", tmp.file("obs.csv"),
            "-n", "900", "--rounds", std::to_string(rounds), "--epochs", std::to_string(epochs), "--patience", "1000",
            "--num-samples", "600", "--proposal-samples", "600", "--warmup", "100", "--batch-size", "64",
            "--seed", std::to_string(seed), "--threads", "2", "-o", output};
  }
  test::TempDir tmp;
  std::uint64_t seed = test::announce_seed("run", 17);
};

TEST_F(CliRunRounds, RunFileHoldsEveryRoundsProposalPairsAndModel) {
  // Enough epochs for round 1's posterior to be the posterior, not the prior.
  auto a = args(tmp.file("run.h5"), 3, 150);
  // Unwidened proposals, so that later rounds' θ's are visibly tighter than the prior's; half of
  // the focused draws from the truncated prior.
  a.insert(a.end(), {"--proposal-widen", "1", "--truncated-share", "0.5", "--quiet"});
  const auto r = run_fsbi(a);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  h5::File f = h5::File::open(tmp.file("run.h5"));
  h5::Group rounds = f.open_group("rounds");
  EXPECT_EQ(rounds.attribute_int("rounds"), 3);
  const SimulationData pooled = read_simulations(tmp.file("run.h5"));
  std::int64_t rows = 0;
  for (int i = 1; i <= 3; ++i) {
    SCOPED_TRACE(i);
    h5::Group g = rounds.open_group("round_" + std::to_string(i));
    EXPECT_EQ(g.attribute_int("num_requested"), 300);
    EXPECT_EQ(g.attribute_int("first_row"), rows);
    rows += g.attribute_int("num_rows");
    EXPECT_EQ(g.exists("proposal"), i > 1);
    if (i > 1) {
      h5::Group p = g.open_group("proposal");
      EXPECT_DOUBLE_EQ(p.attribute_double("defensive_fraction"), 0.1);
      const auto w = p.open_dataset("weights").read_all_double();
      double sum = 0;
      for (double v : w) sum += v;
      EXPECT_NEAR(sum, 1.0, 1e-12);
      // The truncation that shaped the round's draws, stored with its mixture.
      EXPECT_EQ(p.attribute_double("truncation_mixture_share"), 0.5);
      EXPECT_TRUE(std::isfinite(p.attribute_double("truncation_threshold")));
      EXPECT_EQ(p.attribute_int("truncation_candidates"), 64);
      EXPECT_THAT(g.attribute_string("proposal_description"), HasSubstr("0.45·prior truncated to the region"));
    }
    EXPECT_TRUE(g.exists("model"));
  }
  EXPECT_EQ(rows, 900);
  EXPECT_EQ(pooled.theta.rows(), 900);
  // One observation: no recentring by default (docs/sampling.md, "Several observations").
  EXPECT_FALSE(f.exists("recentring"));
  EXPECT_THAT(pooled.prior_source, HasSubstr("sequential rounds 1-3"));

  // The run's model trained on the pooled pairs with the pooled proposal's score; round 1 is an
  // amortised model (no proposal).
  const StoredModel last = read_model(tmp.file("run.h5"));
  EXPECT_THAT(last.info.training_proposal, HasSubstr("sequential rounds 1-3"));
  EXPECT_EQ(last.info.num_train + last.info.num_validation, 900u);

  // Later rounds simulate where the posterior is: the observation's posterior is centred near
  // x_o / 2 = (0.15, −0.1) with sd 0.22 (prior sd 0.32), so round 3's θ's cluster there more
  // tightly than round 1's prior draws (the truncated half less so than the mixture's: 0.401
  // against 0.484 at the test's seed).
  auto spread = [&](Eigen::Index first, Eigen::Index n) {
    const Eigen::MatrixXd t = pooled.theta.middleRows(first, n);
    const Eigen::RowVectorXd c = Eigen::RowVectorXd{{0.15, -0.1}};
    return std::sqrt((t.rowwise() - c).rowwise().squaredNorm().mean());
  };
  const double s1 = spread(0, 300), s3 = spread(600, 300);
  std::printf("rms distance from the posterior centre: round 1 %.3f, round 3 %.3f\n", s1, s3);
  EXPECT_LT(s3, 0.9 * s1);

  // The pooled pairs must not be retrained on as if they came from the prior.
  const auto t = run_fsbi({"train", "--data", tmp.file("run.h5"), "-o", tmp.file("m.h5"), "--quiet"});
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_THAT(t.err, HasSubstr("sequential rounds"));
  EXPECT_THAT(t.err, HasSubstr("biased"));

  // The chains started from the pooled pairs nearest the observation, weighted by prior /
  // pooled proposal so that they stand for prior draws again (sampling/starts.hpp).
  EXPECT_THAT(f.open_group("posterior").attribute_string("init"), HasSubstr("weighted by prior / proposal"));

  // The file reloads as a Posterior and the stage files are gone.
  EXPECT_NO_THROW(Posterior::load(tmp.file("run.h5")));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_THAT(e.path().filename().string(), testing::Not(HasSubstr(".round"))) << e.path();
}

TEST_F(CliRunRounds, KilledRunResumesToTheUninterruptedResult) {
  const auto whole = run_fsbi([&] {
    auto a = args(tmp.file("whole.h5"));
    a.push_back("--quiet");
    return a;
  }());
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  // Kill once round 2's proposal exists, i.e. inside round 2.
  auto killed = args(tmp.file("killed.h5"));
  killed.push_back("--quiet");
  const pid_t pid = test::spawn_fsbi(killed);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(test::kill_once_exists(pid, tmp.file("killed.h5.round2.proposal.h5"), std::chrono::milliseconds(150)))
      << "the run finished before it could be killed";
  ASSERT_FALSE(std::filesystem::exists(tmp.file("killed.h5")));

  // Resuming with another defensive fraction would train with the wrong proposal density.
  auto other = killed;
  other.insert(other.end(), {"--resume", "--defensive-fraction", "0.2"});
  const auto o = run_fsbi(other);
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_THAT(o.err, HasSubstr("--defensive-fraction 0.1, not 0.2"));
  // So would another share of truncated-prior draws.
  auto shape = killed;
  shape.insert(shape.end(), {"--resume", "--truncated-share", "0.25"});
  const auto sh = run_fsbi(shape);
  EXPECT_EQ(sh.exit_code, 1);
  EXPECT_THAT(sh.err, HasSubstr("--truncated-share"));
  EXPECT_THAT(sh.err, HasSubstr("not 0.25"));

  auto resume = killed;
  resume.push_back("--resume");
  const auto r = run_fsbi(resume);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  h5::File a = h5::File::open(tmp.file("whole.h5")), b = h5::File::open(tmp.file("killed.h5"));
  const PosteriorSamples sa = read_posterior(a), sb = read_posterior(b);
  ASSERT_EQ(sa.theta.size(), sb.theta.size());
  EXPECT_TRUE(sa.theta == sb.theta) << "resumed samples differ from the uninterrupted run's";
  const SimulationData pa = read_simulations(tmp.file("whole.h5")), pb = read_simulations(tmp.file("killed.h5"));
  EXPECT_TRUE(pa.theta == pb.theta);
  EXPECT_TRUE(pa.x == pb.x);
}

TEST_F(CliRunRounds, OneRoundIsTheAmortisedRun) {
  auto one = args(tmp.file("one.h5"), 1);
  one.push_back("--quiet");
  const auto r1 = run_fsbi(one);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  h5::File f = h5::File::open(tmp.file("one.h5"));
  EXPECT_FALSE(f.exists("rounds"));
  EXPECT_EQ(read_simulations(tmp.file("one.h5")).theta.rows(), 900);
  EXPECT_TRUE(read_model(tmp.file("one.h5")).info.training_proposal.empty());
  // Prior draws: the nearest pairs start the chains as they are.
  const std::string init = f.open_group("posterior").attribute_string("init");
  EXPECT_THAT(init, HasSubstr("nearest"));
  EXPECT_THAT(init, testing::Not(HasSubstr("weighted")));
}

// Recentring after the rounds comes out of the same budget: the rounds share what is left, and the
// recentring pairs continue round 1's stream after every row the rounds could have used.
TEST_F(CliRunRounds, RecentringAfterRoundsSharesTheBudget) {
  auto a = args(tmp.file("rc.h5"), 2);
  a.insert(a.end(), {"--recentring-simulations", "100", "--quiet"});
  const auto r = run_fsbi(a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  h5::File f = h5::File::open(tmp.file("rc.h5"));
  h5::Group rounds = f.open_group("rounds");
  EXPECT_EQ(rounds.open_group("round_1").attribute_int("num_requested") +
                rounds.open_group("round_2").attribute_int("num_requested"),
            800);
  EXPECT_EQ(read_simulations(tmp.file("rc.h5")).theta.rows(), 800);
  h5::Group g = f.open_group("recentring");
  EXPECT_EQ(g.attribute_uint("num_requested"), 100u);
  EXPECT_EQ(g.attribute_uint("first_index"), 800u);
  EXPECT_EQ(g.open_dataset("theta").shape(), (std::vector<std::uint64_t>{100, 2}));
}

TEST_F(CliRunRounds, BadSequentialSettingsGetClearErrors) {
  auto too_many = args(tmp.file("a.h5"), 30);  // 900 / 30 = 30 simulations per round
  const auto r = run_fsbi(too_many);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("leave round 1 with 30"));
  EXPECT_THAT(r.err, HasSubstr("--rounds"));

  auto defensive = args(tmp.file("b.h5"));
  defensive.insert(defensive.end(), {"--defensive-fraction", "0"});
  const auto d = run_fsbi(defensive);
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_THAT(d.err, HasSubstr("--defensive-fraction"));

  auto share = args(tmp.file("b.h5"));
  share.insert(share.end(), {"--truncated-share", "1.5"});
  const auto sh = run_fsbi(share);
  EXPECT_EQ(sh.exit_code, 1);
  EXPECT_THAT(sh.err, HasSubstr("--truncated-share 1.5: give a value in [0, 1]"));

  auto latent = args(tmp.file("c.h5"));
  latent.insert(latent.end(), {"--objective", "latent"});
  const auto l = run_fsbi(latent);
  EXPECT_NE(l.exit_code, 0);
  EXPECT_THAT(l.err, HasSubstr("latent"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("a.h5")));
}

}  // namespace
}  // namespace fsbi
