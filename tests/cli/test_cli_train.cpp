// `fsbi train` and `fsbi score` through the real binary: resume after SIGKILL, score I/O, errors.
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace fsbi {
namespace {

using test::run_fsbi;
using testing::HasSubstr;

class CliTrain : public testing::Test {
 protected:
  void SetUp() override {
    const auto r = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=2", "-n", "4000", "--seed",
                             std::to_string(test::announce_seed("simulation", 21)), "-o", data(), "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string data() const { return tmp.file("data.h5"); }
  test::TempDir tmp;
};

TEST_F(CliTrain, KilledTrainingResumesToTheUninterruptedModel) {
  // A short patience with many learning-rate reductions: the resumed run must also carry the
  // reductions taken before the kill.
  const std::vector<std::string> common{"train", "--data", data(), "--epochs", "40", "--patience", "2",
                                        "--lr-reductions", "10", "--lr-reduction-factor", "0.5", "--seed", "5",
                                        "--threads", "1", "--checkpoint-seconds", "0", "--quiet"};
  auto killed = common;
  killed.insert(killed.end(), {"-o", tmp.file("killed.h5")});
  // Kill once a checkpoint records a reduction (epochs are checkpointed as they finish; the
  // checkpoint is replaced atomically, so reading it while training runs is safe).
  const pid_t pid = test::spawn_fsbi(killed);
  ASSERT_GT(pid, 0);
  const auto checkpoint = tmp.file("killed.h5.checkpoint");
  std::int64_t reductions_at_kill = 0;
  const auto reduced = [&] {
    if (!std::filesystem::exists(checkpoint)) return false;
    try {
      reductions_at_kill = h5::File::open(checkpoint).open_group("checkpoint").attribute_int("lr_reductions");
    } catch (const std::exception&) {
      return false;  // replaced between the check and the open: look again
    }
    return reductions_at_kill >= 1;
  };
  ASSERT_TRUE(test::kill_when(pid, reduced, std::chrono::milliseconds(0), std::chrono::seconds(120)))
      << "training finished before it could be killed";
  std::printf("killed after %lld learning-rate reduction(s)\n", static_cast<long long>(reductions_at_kill));
  ASSERT_GE(reductions_at_kill, 1);
  ASSERT_FALSE(std::filesystem::exists(tmp.file("killed.h5")));

  // Without --resume the leftover checkpoint is pointed out.
  const auto again = run_fsbi(killed);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("--resume"));

  auto resume = killed;
  resume.push_back("--resume");
  const auto r = run_fsbi(resume);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto whole = common;
  whole.insert(whole.end(), {"-o", tmp.file("whole.h5")});
  const auto w = run_fsbi(whole);
  ASSERT_EQ(w.exit_code, 0) << w.err;

  const ScoreModel a = ScoreModel::load(tmp.file("killed.h5")), b = ScoreModel::load(tmp.file("whole.h5"));
  EXPECT_EQ(a.info().validation_loss, b.info().validation_loss);
  EXPECT_EQ(a.info().learning_rate, b.info().learning_rate);
  const auto& lr = b.info().learning_rate;
  int halvings = 0;
  for (std::size_t e = 1; e < lr.size(); ++e) halvings += lr[e] < 0.6 * lr[e - 1];
  std::printf("%zu epochs, %d learning-rate reductions\n", lr.size(), halvings);
  EXPECT_GE(halvings, 1) << "no stall in " << lr.size() << " epochs: the test does not cover resumed reductions";
  const Eigen::MatrixXd th = Eigen::MatrixXd::Random(2, 50) * 0.3, x = Eigen::MatrixXd::Random(2, 50);
  EXPECT_TRUE(a.score(th, x) == b.score(th, x));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("killed.h5.checkpoint")));
}

TEST_F(CliTrain, ScoreCommandReadsAndWritesCsvAndHdf5) {
  const auto t = run_fsbi({"train", "--data", data(), "-o", tmp.file("m.h5"), "--epochs", "5", "--box-weight",
                           "linear"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  // 3600 training pairs: the automatic batch is 128 (16 steps per epoch), its rate 2e-3.
  EXPECT_THAT(t.out, HasSubstr("3600 training + 400 validation pairs in batches of 128 at peak learning rate 0.002"));
  const auto info = run_fsbi({"info", tmp.file("m.h5")});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_THAT(info.out, HasSubstr("(batches of 128)"));
  EXPECT_THAT(info.out, HasSubstr("energy score network, hidden 256,256"));
  EXPECT_THAT(info.out, HasSubstr("objective:  ibp, box weight linear"));
  EXPECT_EQ(ScoreModel::load(tmp.file("m.h5")).info().box_weight, "linear");
  EXPECT_THAT(info.out, HasSubstr("gaussian_linear"));
  {
    std::ofstream th(tmp.file("theta.csv")), x(tmp.file("x.csv"));
    th << "parameter_1,parameter_2\n0.1,-0.2\n0.0,0.3\n";
    x << "0.2,-0.1\n-0.1,0.4\n";
  }
  const auto csv = run_fsbi({"score", "--model", tmp.file("m.h5"), "--theta", tmp.file("theta.csv"), "--x",
                             tmp.file("x.csv"), "-o", tmp.file("s.csv")});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  const Table s = read_table(tmp.file("s.csv"), 2, "score", "2 columns");
  ASSERT_EQ(s.rows(), 2);
  const ScoreModel m = ScoreModel::load(tmp.file("m.h5"));
  Eigen::MatrixXd th(2, 2), x(2, 2);
  th << 0.1, 0.0, -0.2, 0.3;
  x << 0.2, -0.1, -0.1, 0.4;
  const Eigen::MatrixXd direct = m.score(th, x);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_DOUBLE_EQ(s(i, j), direct(j, i));
  // HDF5 in (the simulation file's own datasets) and out.
  const auto h5 = run_fsbi({"score", "--model", tmp.file("m.h5"), "--theta", data(), "--x", data(), "-o",
                            tmp.file("s.h5")});
  ASSERT_EQ(h5.exit_code, 0) << h5.err;
  const Table sh = read_table(tmp.file("s.h5"), 2, "score", "2 columns", "/score");
  ASSERT_EQ(sh.rows(), 4000);
  // The model file reloaded in this process gives the scores the `fsbi score` process wrote, bit
  // for bit.
  const Table all_theta = read_table(data(), 2, "theta", "2 columns", "/simulations/theta");
  const Table all_x = read_table(data(), 2, "x", "2 columns", "/simulations/x");
  const Eigen::MatrixXd reloaded = m.score(all_theta.transpose(), all_x.transpose());
  EXPECT_TRUE(Eigen::MatrixXd(sh.transpose()) == reloaded)
      << "largest difference " << (Eigen::MatrixXd(sh.transpose()) - reloaded).cwiseAbs().maxCoeff();
}

// `fsbi score --log-likelihood`: the energy model's log-likelihood column is the potential of its
// own score column, in θ (the box transform's Jacobian must not enter), and a vector model has none.
TEST_F(CliTrain, ScoreCommandLogLikelihoodIsThePotentialOfTheScore) {
  // A box prior, so that θ and the trained-on coordinates u differ by a nonlinear map.
  const auto sim = run_fsbi({"simulate", "-s", "gaussian_linear", "--sim-opt", "dim=2", "--prior", "uniform(-1, 1)",
                             "-n", "2000", "--seed", std::to_string(test::announce_seed("box simulation", 22)), "-o",
                             tmp.file("box.h5"), "--quiet"});
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  const auto t = run_fsbi({"train", "--data", tmp.file("box.h5"), "-o", tmp.file("m.h5"), "--epochs", "5", "--quiet"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  // 401 points on a segment through the box, towards a corner, all at the same x.
  constexpr int n = 401;
  const Eigen::Vector2d a(-0.3, 0.2), b(0.9, -0.8);
  {
    std::ofstream th(tmp.file("path.csv")), x(tmp.file("x.csv"));
    th.precision(17);
    for (int i = 0; i < n; ++i) {
      const Eigen::Vector2d p = a + (b - a) * (static_cast<double>(i) / (n - 1));
      th << p(0) << ',' << p(1) << '\n';
      x << "0.1,0.05\n";
    }
  }
  const auto r = run_fsbi({"score", "--model", tmp.file("m.h5"), "--theta", tmp.file("path.csv"), "--x",
                           tmp.file("x.csv"), "-o", tmp.file("s.csv"), "--log-likelihood"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Fisher score and log-likelihood (up to a function of x) at 401 pairs"));
  {
    std::ifstream f(tmp.file("s.csv"));
    std::string header;
    std::getline(f, header);
    EXPECT_EQ(header, "score_parameter_1,score_parameter_2,log_likelihood");
  }
  const Table s = read_table(tmp.file("s.csv"), 3, "score", "3 columns");
  ASSERT_EQ(s.rows(), n);
  // ℓ(b) − ℓ(a) = ∫ s(θ)·dθ along the segment, by the trapezoid rule (error ~1e-5 here: the
  // path is 1.6 long and the score smooth); the network runs in single precision. The prior's
  // log-Jacobian log|dθ/du| changes by 2.5 along the path, so a column that carried it would fail.
  double integral = 0;
  for (int i = 0; i + 1 < n; ++i)
    integral += 0.5 * (s.row(i).head<2>() + s.row(i + 1).head<2>()).dot(b - a) / (n - 1);
  const double difference = s(n - 1, 2) - s(0, 2);
  std::printf("log-likelihood difference along the segment %.6f, integral of the score %.6f\n", difference, integral);
  EXPECT_GT(std::abs(difference), 0.05) << "a model this flat cannot tell a wrong column from a right one";
  EXPECT_NEAR(difference, integral, 1e-3 * (1 + std::abs(integral)));

  const auto v = run_fsbi({"train", "--data", data(), "-o", tmp.file("v.h5"), "--epochs", "2", "--quiet",
                           "--model-kind", "vector"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  const auto none = run_fsbi({"score", "--model", tmp.file("v.h5"), "--theta", tmp.file("path.csv"), "--x",
                              tmp.file("x.csv"), "-o", tmp.file("v.csv"), "--log-likelihood"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("v.h5 is a vector score model"));
  EXPECT_THAT(none.err, HasSubstr("--model-kind energy"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("v.csv")));
}

TEST_F(CliTrain, ClearErrorsForForeignInputs) {
  {
    std::ofstream f(tmp.file("junk.h5"));
    f << "junk";
  }
  const auto junk = run_fsbi({"train", "--data", tmp.file("junk.h5"), "-o", tmp.file("m.h5")});
  EXPECT_EQ(junk.exit_code, 1);
  EXPECT_THAT(junk.err, HasSubstr("junk.h5: not an HDF5 file"));
  const auto not_model = run_fsbi({"score", "--model", data(), "--theta", data(), "--x", data(), "-o", tmp.file("s.csv")});
  EXPECT_EQ(not_model.exit_code, 1);
  EXPECT_THAT(not_model.err, HasSubstr("no /model group"));
  const auto t = run_fsbi({"train", "--data", data(), "-o", tmp.file("m.h5"), "--epochs", "2", "--quiet"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  // A model file cut short (an interrupted copy) and a file that is not HDF5 at all.
  std::filesystem::copy_file(tmp.file("m.h5"), tmp.file("cut.h5"));
  std::filesystem::resize_file(tmp.file("cut.h5"), std::filesystem::file_size(tmp.file("m.h5")) / 2);
  const auto cut = run_fsbi({"score", "--model", tmp.file("cut.h5"), "--theta", data(), "--x", data(), "-o",
                             tmp.file("s.csv")});
  EXPECT_EQ(cut.exit_code, 1);
  EXPECT_THAT(cut.err, HasSubstr("cut.h5: truncated HDF5 file"));
  EXPECT_THAT(cut.err, HasSubstr("copy it again from its source"));
  const auto junk_model = run_fsbi({"score", "--model", tmp.file("junk.h5"), "--theta", data(), "--x", data(),
                                    "-o", tmp.file("s.csv")});
  EXPECT_EQ(junk_model.exit_code, 1);
  EXPECT_THAT(junk_model.err, HasSubstr("junk.h5: not an HDF5 file"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("s.csv")));
  {
    std::ofstream th(tmp.file("theta3.csv"));
    th << "1,2,3\n";
  }
  const auto wrong = run_fsbi({"score", "--model", tmp.file("m.h5"), "--theta", tmp.file("theta3.csv"), "--x",
                               tmp.file("theta3.csv"), "-o", tmp.file("s.csv")});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("theta3.csv: line 1 has 3 values, the model has 2 parameters"));
  const auto hidden = run_fsbi({"train", "--data", data(), "-o", tmp.file("m9.h5"), "--hidden", "128,x"});
  EXPECT_EQ(hidden.exit_code, 2);
  EXPECT_THAT(hidden.err, HasSubstr("--hidden '128,x'"));
  const auto weight = run_fsbi({"train", "--data", data(), "-o", tmp.file("m9.h5"), "--box-weight", "cubic"});
  EXPECT_EQ(weight.exit_code, 2);
  EXPECT_THAT(weight.err, HasSubstr("--box-weight 'cubic': give square or linear"));
  const auto latent = run_fsbi({"train", "--data", data(), "-o", tmp.file("m9.h5"), "--box-weight", "linear",
                                "--objective", "latent"});
  EXPECT_EQ(latent.exit_code, 2);
  EXPECT_THAT(latent.err, HasSubstr("the latent objective has no box weight: leave --box-weight out"));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("m9.h5")));
}

}  // namespace
}  // namespace fsbi
