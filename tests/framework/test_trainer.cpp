// Training end to end on real simulations: determinism across thread counts, bit-identical
// reloads, and clear errors. The statistical accuracy checks live in tests/statistical/.
#include "fsbi/plugin.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/trainer.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>

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
  // Wrong dimensions at evaluation.
  const ScoreModel model = ScoreModel::load(tmp.file("m.h5"));
  try {
    model.score(Eigen::MatrixXd::Zero(3, 4), Eigen::MatrixXd::Zero(2, 4));
    FAIL() << "expected an error";
  } catch (const ModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("theta has 3 rows per sample, the model has 2 parameters"));
  }
}

}  // namespace
}  // namespace fsbi
