// Recentring the learned score at the posterior (fsbi/score_recentring.hpp): a score that does not
// depend on x is all error, and its mean over the draws is the offset, exactly; the recentred
// posterior takes n offsets back from n observations; the pairs come from the documented streams; failed
// simulations are dropped and counted; errors by message. Real plugins (gaussian_linear in one
// dimension with a box prior, the nan_sim fixture) and a real model file.
#include "fsbi/local_fsm.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/score_recentring.hpp"
#include "fsbi/trainer.hpp"
#include "h5/h5.hpp"
#include "model_file.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

namespace fsbi {
namespace {

using testing::HasSubstr;

// A score-only (vector) model of gaussian_linear, dim 1, prior uniform(-1, 1), whose network has
// every weight zero and output bias 0.7: its score is the same for every x, g(u) (a constant in
// θ's standardised units, times the box transform's Jacobian in u). The true score has mean zero
// over x, so all of g is error, and the mean of g over the draws is what recentring must find.
class ConstantScore : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = new test::TempDir();
    const SimulationData data = test::simulate_gaussian_linear(dir->path(), "data.h5", "uniform(-1, 1)", 400,
                                                               test::announce_seed("simulation", 3), {{"dim", "1"}});
    TrainingSettings st;
    st.model_kind = "vector";
    st.hidden = {8};
    st.max_epochs = 1;
    st.progress = ProgressMode::quiet;
    train_score_model(data, "data.h5", st, dir->file("trained.h5"));
    StoredModel m = read_model(dir->file("trained.h5"));
    m.parameters.setZero();
    m.parameters[m.parameters.size() - 1] = 0.7f;  // the output layer's bias comes last
    h5::File f = h5::File::create(dir->file("constant.h5"));
    write_model(f, m);
  }
  static void TearDownTestSuite() { delete dir; }
  static inline test::TempDir* dir = nullptr;

  void SetUp() override {
    model = std::make_unique<ScoreModel>(ScoreModel::load(dir->file("constant.h5")));
    sim = open_simulator("gaussian_linear", {{"dim", "1"}}, {test::bundled_plugin_dir()});
    // Draws spread over the box's interior.
    theta.resize(1, 50);
    for (Eigen::Index j = 0; j < 50; ++j) theta(0, j) = -0.95 + 1.9 * static_cast<double>(j) / 49.0;
    const Eigen::MatrixXd u = Eigen::MatrixXd::Zero(1, 3);
    const Eigen::MatrixXd x = (Eigen::MatrixXd(1, 3) << -2.0, 0.1, 3.0).finished();
    const Eigen::MatrixXd s = model->score_u(u, x);
    ASSERT_NE(s(0, 0), 0.0);
    ASSERT_EQ(s(0, 1), s(0, 0));
    ASSERT_EQ(s(0, 2), s(0, 0));
  }
  // g at the columns of th, with the mean and standard error over them.
  Eigen::RowVectorXd g(const Eigen::MatrixXd& th) const {
    return model->score_u(model->transform().to_unconstrained(th), Eigen::MatrixXd::Zero(1, th.cols()));
  }
  static double mean(const Eigen::RowVectorXd& v) { return v.mean(); }
  static double standard_error(const Eigen::RowVectorXd& v) {
    const auto n = static_cast<double>(v.size());
    return std::sqrt((v.array() - v.mean()).square().sum() / (n - 1) / n);
  }
  std::unique_ptr<ScoreModel> model;
  std::shared_ptr<const Simulator> sim;
  Eigen::MatrixXd theta;
};

TEST_F(ConstantScore, OffsetIsTheConstantAndThePairsComeFromTheirStreams) {
  ScoreRecentringSettings st;
  st.seed = test::announce_seed("recentring", 41);
  st.first_index = 1000;
  st.threads = 2;
  const ScoreRecentring r = estimate_score_offset(*model, *sim, theta, st);
  ASSERT_EQ(r.theta.cols(), 50);
  EXPECT_EQ(r.failed, 0u);
  const Eigen::RowVectorXd gs = g(theta);
  std::printf("g over the draws: mean %.6g, standard error %.6g\n", mean(gs), standard_error(gs));
  EXPECT_GT(standard_error(gs), 0.01 * std::abs(mean(gs)));  // g varies: the test sees averaging
  EXPECT_NEAR(r.offset_u(0), mean(gs), 1e-12 * std::abs(mean(gs)));
  EXPECT_NEAR(r.standard_error(0), standard_error(gs), 1e-9 * standard_error(gs));
  EXPECT_EQ(r.theta, theta);
  // Pair j is simulated with the stream (seed, simulator, first_index + j), on any thread count.
  const SimulatedRows rows = simulate_at(*sim, theta, st.seed, st.first_index, 1);
  EXPECT_EQ(r.x, rows.x);
}

TEST_F(ConstantScore, RecentredPosteriorTakesTheOffsetOncePerObservation) {
  Posterior post = Posterior::load(dir->file("constant.h5"));
  Table obs(4, 1);
  obs << 0.2, -0.1, 0.4, 0.0;
  Eigen::MatrixXd th(1, 3);
  th << -0.5, 0.1, 0.8;
  const Eigen::MatrixXd before = post.score(th, obs);
  const SamplingTarget t0 = post.target(obs);
  // The offset g(u) of the middle point: there the four observations' 4·g(u) are taken back exactly.
  const double o = g(th)(1);
  post.set_score_offset(Eigen::VectorXd::Constant(1, o));
  EXPECT_EQ(post.score_offset()(0), o);
  const Eigen::MatrixXd after = post.score(th, obs);
  const SamplingTarget t1 = post.target(obs);
  const Eigen::MatrixXd u = post.model().transform().to_unconstrained(th);
  const Eigen::RowVectorXd l0 = t0.grad_log_likelihood(u), l1 = t1.grad_log_likelihood(u);
  for (Eigen::Index j = 0; j < 3; ++j) {
    EXPECT_NEAR(l0(j), 4 * g(th)(j), 1e-12 * std::abs(l0(j))) << "point " << j;
    EXPECT_NEAR(l1(j), l0(j) - 4 * o, 1e-12 * std::abs(l0(j))) << "point " << j;
  }
  EXPECT_NEAR(l1(1), 0.0, 1e-12 * std::abs(l0(1)));
  // In θ: the same difference through the transform (the prior's score is unchanged).
  const Eigen::MatrixXd expected =
      before - post.model().transform().score_to_theta(u, Eigen::MatrixXd::Constant(1, 3, 4 * o));
  EXPECT_LT((after - expected).cwiseAbs().maxCoeff(), 1e-9 * before.cwiseAbs().maxCoeff());
  // A score-only model has no log-likelihood to correct.
  EXPECT_FALSE(t1.log_likelihood);

  EXPECT_THROW(post.set_score_offset(Eigen::VectorXd::Zero(2)), std::invalid_argument);
  EXPECT_THROW(post.set_score_offset(Eigen::VectorXd::Constant(1, std::nan(""))), std::invalid_argument);
  post.set_score_offset({});
  EXPECT_EQ(post.score(th, obs), before);
}

TEST_F(ConstantScore, FailedSimulationsAreDroppedAndCounted) {
  // nan_sim: one parameter, one data value, NaN for θ > nan_above.
  const auto nan_sim = open_simulator(test::fixture_plugin("nan"), {{"nan_above", "0.5"}}, {});
  ScoreRecentringSettings st;
  st.seed = test::announce_seed("recentring", 42);
  const ScoreRecentring r = estimate_score_offset(*model, *nan_sim, theta, st);
  const auto above = (theta.array() > 0.5).count();
  EXPECT_EQ(r.failed, static_cast<std::uint64_t>(above));
  EXPECT_EQ(r.theta.cols(), 50 - above);
  EXPECT_LE(r.theta.maxCoeff(), 0.5);
  const Eigen::RowVectorXd gs = g(r.theta);
  EXPECT_NEAR(r.offset_u(0), mean(gs), 1e-12 * std::abs(mean(gs)));

  const auto all_nan = open_simulator(test::fixture_plugin("nan"), {{"nan_above", "-2"}}, {});
  try {
    estimate_score_offset(*model, *all_nan, theta, st);
    FAIL() << "expected an error";
  } catch (const ScoreRecentringError& e) {
    EXPECT_THAT(e.what(), HasSubstr("only 0 of 50 simulations at posterior draws succeeded (first failure:"));
    EXPECT_THAT(e.what(), HasSubstr("recentring the score needs at least 20"));
  }
}

TEST_F(ConstantScore, ClearErrors) {
  ScoreRecentringSettings st;
  Eigen::MatrixXd outside = theta;
  outside(0, 7) = 1.5;
  try {
    estimate_score_offset(*model, *sim, outside, st);
    FAIL() << "expected an error";
  } catch (const ScoreRecentringError& e) {
    EXPECT_THAT(e.what(), HasSubstr("posterior draw 8 lies outside the interior of the training prior's support"));
  }
  try {
    estimate_score_offset(*model, *sim, Eigen::MatrixXd::Zero(2, 30), st);
    FAIL() << "expected an error";
  } catch (const ScoreRecentringError& e) {
    EXPECT_THAT(e.what(), HasSubstr("the posterior draws have 2 parameters, the model 1"));
  }
  const auto wide = open_simulator("gaussian_linear", {{"dim", "2"}}, {test::bundled_plugin_dir()});
  try {
    estimate_score_offset(*model, *wide, theta, st);
    FAIL() << "expected an error";
  } catch (const ScoreRecentringError& e) {
    EXPECT_THAT(e.what(), HasSubstr("simulator 'gaussian_linear' has 2 parameters and 2 data values, the model 1 and 1"));
  }
}

}  // namespace
}  // namespace fsbi
