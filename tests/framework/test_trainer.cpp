// Training end to end on real simulations: determinism across thread counts, bit-identical
// reloads, and clear errors. The statistical accuracy checks live in tests/statistical/.
#include "fsbi/plugin.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/trainer.hpp"
#include "h5/h5.hpp"
#include "model_file.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>

#include <algorithm>
#include <filesystem>

namespace fsbi {
namespace {

using testing::HasSubstr;


TrainingSettings quick_settings(std::uint64_t seed) {
  TrainingSettings st;
  st.seed = test::announce_seed("training", seed);
  st.progress = ProgressMode::quiet;
  return st;
}

TEST(TrainerDeterminism, OneAndTwoThreadsGiveBitIdenticalModels) {
  test::TempDir tmp;
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 2000, test::announce_seed("simulation", 9), {{"dim", "3"}});
  TrainingSettings st = quick_settings(10);
  st.max_epochs = 5;
  st.threads = 1;
  train_score_model(train, "train.h5", st, tmp.file("t1.h5"));
  st.threads = 2;
  train_score_model(train, "train.h5", st, tmp.file("t2.h5"));
  const ScoreModel a = ScoreModel::load(tmp.file("t1.h5")), b = ScoreModel::load(tmp.file("t2.h5"));
  const Eigen::Index n = train.theta.rows();
  const Eigen::MatrixXd th = Eigen::Map<const Eigen::MatrixXd>(train.theta.data(), 3, n);
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::MatrixXd>(train.x.data(), 3, n);
  const Eigen::MatrixXd sa = a.score(th, x), sb = b.score(th, x);
  EXPECT_TRUE(sa == sb) << "max difference " << (sa - sb).cwiseAbs().maxCoeff();
  EXPECT_EQ(a.info().validation_loss, b.info().validation_loss);
  // Reloading gives the same scores, bit for bit.
  const ScoreModel a2 = ScoreModel::load(tmp.file("t1.h5"));
  EXPECT_TRUE(a2.score(th, x) == sa);
}

// An ensemble's members are distinct networks, trained reproducibly for any thread count, and the
// model's score and energy are their means: each member, written as a model of its own, gives
// scores whose average is the ensemble's.
TEST(TrainerEnsemble, MembersAreDistinctAndTheModelIsTheirMean) {
  test::TempDir tmp;
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 1000, test::announce_seed("simulation", 21), {{"dim", "2"}});
  TrainingSettings st = quick_settings(22);
  st.max_epochs = 4;
  st.model_kind = "energy";
  st.hidden = {16, 16};
  st.ensemble = 3;
  st.threads = 1;
  train_score_model(train, "train.h5", st, tmp.file("e1.h5"));
  st.threads = 2;
  train_score_model(train, "train.h5", st, tmp.file("e2.h5"));
  const StoredModel stored = read_model(tmp.file("e1.h5"));
  ASSERT_EQ(stored.members, 3);
  const Eigen::Index np = stored.parameters.size() / 3;
  EXPECT_EQ(np * 3, stored.parameters.size());
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      EXPECT_GT((stored.parameters.segment(a * np, np) - stored.parameters.segment(b * np, np)).cwiseAbs().maxCoeff(), 1e-3)
          << "members " << a << " and " << b << " are the same network";

  const ScoreModel ens = ScoreModel::load(tmp.file("e1.h5")), ens2 = ScoreModel::load(tmp.file("e2.h5"));
  EXPECT_EQ(ens.info().ensemble, 3);
  const Eigen::Index n = train.theta.rows();
  const Eigen::MatrixXd th = Eigen::Map<const Eigen::MatrixXd>(train.theta.data(), 2, n);
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::MatrixXd>(train.x.data(), 2, n);
  const Eigen::MatrixXd s = ens.score(th, x);
  EXPECT_TRUE(s == ens2.score(th, x)) << "ensemble training depends on the thread count";

  Eigen::MatrixXd mean_score = Eigen::MatrixXd::Zero(2, n);
  Eigen::RowVectorXd mean_energy = Eigen::RowVectorXd::Zero(n);
  const Eigen::MatrixXd u = ens.transform().to_unconstrained(th);
  for (int m = 0; m < 3; ++m) {
    StoredModel one = stored;
    one.members = 1;
    one.parameters = stored.parameters.segment(m * np, np);
    const std::string path = tmp.file("member" + std::to_string(m) + ".h5");
    {
      h5::File f = h5::File::create(path);
      write_model(f, one);
    }
    const ScoreModel single = ScoreModel::load(path);
    EXPECT_EQ(single.info().ensemble, 1);
    mean_score += single.score(th, x) / 3.0;
    mean_energy += single.energy_u(u, x) / 3.0;
  }
  const double err = (s - mean_score).cwiseAbs().maxCoeff() / mean_score.cwiseAbs().maxCoeff();
  const double err_e = (ens.energy_u(u, x) - mean_energy).cwiseAbs().maxCoeff() / mean_energy.cwiseAbs().maxCoeff();
  std::printf("ensemble of 3: score vs mean of members, max relative difference %.3g; energy %.3g\n", err, err_e);
  EXPECT_LT(err, 1e-12);
  EXPECT_LT(err_e, 1e-12);

  st.ensemble = 0;
  try {
    train_score_model(train, "train.h5", st, tmp.file("bad.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--ensemble must be between 1 and 16"));
  }
}

// --lr-reductions: a stall of `patience` epochs lowers the learning rate by the factor and
// training goes on from the best parameters, until the last reduction's stall stops it. Up to
// the first stall the run is the same as one without reductions.
TEST(TrainerLearningRate, StallsLowerTheRateUntilTheLastReductionStops) {
  test::TempDir tmp;
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 1000, test::announce_seed("simulation", 31), {{"dim", "2"}});
  TrainingSettings st = quick_settings(32);
  st.hidden = {16, 16};
  st.max_epochs = 400;
  st.patience = 3;
  st.learning_rate = 1e-3;   // explicit: the automatic rate would follow the batch size
  st.final_lr_fraction = 1;  // constant rate after warm-up: every change is a reduction
  st.lr_reductions = 0;
  const TrainingReport plain = train_score_model(train, "train.h5", st, tmp.file("plain.h5"));
  ASSERT_TRUE(plain.stopped_early);
  st.lr_reductions = 2;
  st.lr_reduction_factor = 0.25;
  const TrainingReport reduced = train_score_model(train, "train.h5", st, tmp.file("reduced.h5"));
  ASSERT_TRUE(reduced.stopped_early) << "no stall in " << st.max_epochs << " epochs";
  const ModelInfo a = ScoreModel::load(tmp.file("plain.h5")).info(), b = ScoreModel::load(tmp.file("reduced.h5")).info();
  const auto first = static_cast<std::size_t>(plain.epochs);
  std::printf("stopped at epoch %d without reductions, %d with two\n", plain.epochs, reduced.epochs);
  ASSERT_GT(b.learning_rate.size(), first);
  for (std::size_t e = 0; e < first; ++e) {
    EXPECT_EQ(a.learning_rate[e], b.learning_rate[e]) << "epoch " << e + 1;
    EXPECT_EQ(a.validation_loss[e], b.validation_loss[e]) << "epoch " << e + 1;
  }
  // After warm-up the rate takes the values 1e-3, 2.5e-4, 6.25e-5 in turn; each step down comes
  // `patience` epochs after the best validation loss so far or after the previous step down,
  // whichever is later.
  std::vector<std::size_t> drops;
  for (std::size_t e = 1; e < b.learning_rate.size(); ++e)
    if (b.learning_rate[e] < b.learning_rate[e - 1]) drops.push_back(e);
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops[0], first);
  EXPECT_DOUBLE_EQ(b.learning_rate[drops[0]], 2.5e-4);
  EXPECT_DOUBLE_EQ(b.learning_rate[drops[1]], 6.25e-5);
  EXPECT_DOUBLE_EQ(b.learning_rate.back(), 6.25e-5);
  std::size_t previous = 0;
  for (std::size_t k : drops) {
    const auto best = std::min_element(b.validation_loss.begin(), b.validation_loss.begin() + static_cast<std::ptrdiff_t>(k));
    const std::size_t since = std::max(static_cast<std::size_t>(best - b.validation_loss.begin()) + 1, previous);
    EXPECT_EQ(k, since + static_cast<std::size_t>(st.patience)) << "reduction at epoch " << k + 1;
    previous = k;
  }
  EXPECT_LE(b.best_validation_loss, a.best_validation_loss);

  st.lr_reductions = -1;
  try {
    train_score_model(train, "train.h5", st, tmp.file("bad.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--lr-reductions -1: give 0"));
  }
  st.lr_reductions = 1;
  st.lr_reduction_factor = 1.5;
  try {
    train_score_model(train, "train.h5", st, tmp.file("bad.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--lr-reduction-factor 1.5: give a factor in (0, 1)"));
  }
}

// The automatic batch size keeps at least 16 optimizer steps per epoch (256, halved down to 64),
// and the automatic peak rate is 1e-3 × 256 / batch; both are what the model file records.
TEST(TrainerAutomaticSchedule, BatchFollowsThePairsAndTheRateFollowsTheBatch) {
  EXPECT_EQ(automatic_batch_size(9000), 256);  // 10⁴ simulations: as before
  EXPECT_EQ(automatic_batch_size(4096), 256);
  EXPECT_EQ(automatic_batch_size(4095), 128);
  EXPECT_EQ(automatic_batch_size(2048), 128);
  EXPECT_EQ(automatic_batch_size(2047), 64);
  EXPECT_EQ(automatic_batch_size(900), 64);    // 10³ simulations
  EXPECT_EQ(automatic_batch_size(18), 64);     // never below 64 (the trainer caps it at the pairs)
  EXPECT_DOUBLE_EQ(automatic_learning_rate(256), 1e-3);
  EXPECT_DOUBLE_EQ(automatic_learning_rate(128), 2e-3);
  EXPECT_DOUBLE_EQ(automatic_learning_rate(64), 4e-3);

  test::TempDir tmp;
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 300, test::announce_seed("simulation", 41), {{"dim", "2"}});
  auto peak = [](const ModelInfo& i) { return *std::max_element(i.learning_rate.begin(), i.learning_rate.end()); };
  TrainingSettings st = quick_settings(42);
  st.hidden = {8};
  st.max_epochs = 5;  // warm-up (2 epochs), then the cosine starts at the peak
  const TrainingReport automatic = train_score_model(train, "train.h5", st, tmp.file("auto.h5"));
  const ModelInfo a = ScoreModel::load(tmp.file("auto.h5")).info();
  EXPECT_EQ(automatic.num_train, 270u);
  EXPECT_EQ(automatic.batch_size, 64);
  EXPECT_DOUBLE_EQ(automatic.learning_rate, 4e-3);
  EXPECT_EQ(a.batch_size, 64);
  EXPECT_DOUBLE_EQ(peak(a), 4e-3);
  EXPECT_DOUBLE_EQ(a.learning_rate[0], 4e-3 / 3);

  st.batch_size = 100;  // a chosen batch: the automatic rate follows it
  const TrainingReport chosen = train_score_model(train, "train.h5", st, tmp.file("b100.h5"));
  EXPECT_EQ(chosen.batch_size, 100);
  EXPECT_DOUBLE_EQ(chosen.learning_rate, 2.56e-3);
  EXPECT_EQ(ScoreModel::load(tmp.file("b100.h5")).info().batch_size, 100);

  st.batch_size = 0;
  st.learning_rate = 5e-4;  // a chosen rate is kept
  const TrainingReport rate = train_score_model(train, "train.h5", st, tmp.file("lr.h5"));
  EXPECT_EQ(rate.batch_size, 64);
  EXPECT_DOUBLE_EQ(peak(ScoreModel::load(tmp.file("lr.h5")).info()), 5e-4);

  st.learning_rate = 0;
  st.batch_size = -2;
  try {
    train_score_model(train, "train.h5", st, tmp.file("bad.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--batch-size -2: give a positive size, or 0 for the automatic one"));
  }
  st.batch_size = 0;
  st.learning_rate = -1e-3;
  try {
    train_score_model(train, "train.h5", st, tmp.file("bad.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("--learning-rate -0.001: give a positive rate, or 0 for the automatic one"));
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("bad.h5")));
}

TEST(TrainerErrors, BadFilesAndSettings) {
  test::TempDir tmp;
  {
    std::FILE* f = std::fopen(tmp.file("text.h5").c_str(), "w");
    std::fputs("not hdf5", f);
    std::fclose(f);
  }
  TrainingSettings st = quick_settings(11);
  try {
    train_score_model(tmp.file("text.h5"), st, tmp.file("m.h5"));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("not an HDF5 file"));
  }
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 200, 12, {{"dim", "2"}});
  st.max_epochs = 2;
  train_score_model(tmp.file("train.h5"), st, tmp.file("m.h5"));
  // A model file is not simulation data, and simulation data is not a model.
  try {
    train_score_model(tmp.file("m.h5"), st, tmp.file("m2.h5"));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("not an fsbi simulation file"));
  }
  try {
    ScoreModel::load(tmp.file("train.h5"));
    FAIL() << "expected an error";
  } catch (const ModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no /model group"));
  }
  st.model_kind = "scalar";
  try {
    train_score_model(tmp.file("train.h5"), st, tmp.file("m3.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_THAT(e.what(), HasSubstr("scalar"));
  }
  // The API refuses a box weight the CLI would, with the same message, and writes no model.
  EXPECT_EQ(box_weight_problem("linear"), "");
  EXPECT_EQ(box_weight_problem("square"), "");
  st.model_kind = "energy";
  st.box_weight = "Linear";
  try {
    train_score_model(tmp.file("train.h5"), st, tmp.file("m4.h5"));
    FAIL() << "expected an error";
  } catch (const TrainingError& e) {
    EXPECT_STREQ(e.what(), "--box-weight 'Linear': give square or linear");
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.file("m4.h5")));
  // Wrong dimensions at evaluation.
  const ScoreModel model = ScoreModel::load(tmp.file("m.h5"));
  try {
    model.score(Eigen::MatrixXd::Zero(3, 4), Eigen::MatrixXd::Zero(2, 4));
    FAIL() << "expected an error";
  } catch (const ModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("theta has 3 rows per sample, the model has 2 parameters"));
  }
}

// Sequential rounds standardise the network's inputs on round 1's prior pairs: with
// TrainingProposal::standardize_rows the stored x standardiser and u features take their scale
// from the data's first rows, not from all pairs (whose later, concentrated rows would shrink it).
TEST(TrainerStandardisation, ProposalReferenceRowsSetTheInputScale) {
  test::TempDir tmp;
  SimulationData data = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 2000,
                                                       test::announce_seed("simulation", 31), {{"dim", "2"}});
  const Eigen::Index first = 1000;  // rows [first, 2000) shrunk tenfold towards 0: a focused round
  data.theta.bottomRows(2000 - first) *= 0.1;
  data.x.bottomRows(2000 - first) *= 0.1;
  TrainingSettings st = quick_settings(32);
  st.max_epochs = 1;
  st.hidden = {8};
  TrainingProposal flat;
  flat.description = "test proposal";
  flat.score_u = [](const Eigen::MatrixXd& u) { return Eigen::MatrixXd::Zero(u.rows(), u.cols()).eval(); };
  train_score_model(data, "pooled", st, tmp.file("pooled_scale.h5"), &flat);
  TrainingProposal reference = flat;
  reference.standardize_rows = first;
  train_score_model(data, "pooled", st, tmp.file("round1_scale.h5"), &reference);

  Eigen::VectorXd sd_first(2);
  for (Eigen::Index j = 0; j < 2; ++j) {
    const auto col = data.x.col(j).head(first).array();
    sd_first(j) = std::sqrt((col - col.mean()).square().sum() / static_cast<double>(first - 1));
  }
  const StoredModel pooled = read_model(tmp.file("pooled_scale.h5"));
  const StoredModel round1 = read_model(tmp.file("round1_scale.h5"));
  for (Eigen::Index j = 0; j < 2; ++j) {
    // The training split holds 90 % of the rows: its sd is within a few % of all first rows'.
    const double r1 = round1.x_standardizer.scale()(j) / sd_first(j);
    const double all = pooled.x_standardizer.scale()(j) / sd_first(j);
    std::printf("x[%ld] scale / sd of the first rows: reference rows %.3f, all pairs %.3f\n", static_cast<long>(j), r1, all);
    EXPECT_NEAR(r1, 1.0, 0.05);
    EXPECT_NEAR(all, std::sqrt(0.5 * (1 + 0.01)), 0.06);  // the pooled sd, ~0.71
    EXPECT_GT(round1.features.scale()(j), 1.3 * pooled.features.scale()(j));
  }
}

}  // namespace
}  // namespace fsbi
