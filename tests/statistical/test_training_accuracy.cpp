// Statistical checks of Fisher score matching (label: statistical; minutes, not seconds):
// the learned score against the analytic one on gaussian_linear, the boundary bias a box prior
// causes without the unconstrained transform, and the latent objective's Bayes-optimal error.
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


// E‖ŝ − s‖² / E‖s‖² over pairs, with s = (x − θ)/0.1 the exact gaussian_linear score.
double relative_score_error(const ScoreModel& model, const SimulationData& fresh) {
  const Eigen::Index d = fresh.theta.cols(), n = fresh.theta.rows();
  const Eigen::MatrixXd th = Eigen::Map<const Eigen::MatrixXd>(fresh.theta.data(), d, n);
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::MatrixXd>(fresh.x.data(), d, n);
  const Eigen::MatrixXd truth = (x - th) / 0.1;
  const Eigen::MatrixXd learned = model.score(th, x);
  return (learned - truth).squaredNorm() / truth.squaredNorm();
}

TrainingSettings quick_settings(std::uint64_t seed) {
  TrainingSettings st;
  st.seed = test::announce_seed("training", seed);
  st.progress = ProgressMode::quiet;
  return st;
}

// The accuracy check: 10⁴ simulations, learned score on 10⁴ fresh pairs within 5 %.
struct AccuracyCase {
  const char* kind;
  const char* objective;
};
class GaussianLinearAccuracy : public testing::TestWithParam<AccuracyCase> {};

TEST_P(GaussianLinearAccuracy, RelativeScoreErrorBelowFivePercent) {
  test::TempDir tmp;
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "", 10000, test::announce_seed("simulation", 1));
  const auto fresh = test::simulate_gaussian_linear(tmp.path(), "fresh.h5", "", 10000, test::announce_seed("fresh pairs", 2));
  TrainingSettings st = quick_settings(3);
  st.model_kind = GetParam().kind;
  st.objective = GetParam().objective;
  const auto report = train_score_model(train, "train.h5", st, tmp.file("model.h5"));
  const ScoreModel model = ScoreModel::load(tmp.file("model.h5"));
  const double err = relative_score_error(model, fresh);
  std::printf("gaussian_linear %s/%s: relative score error %.4f after %d epochs (best %d)\n", GetParam().kind,
              GetParam().objective, err, report.epochs, report.best_epoch);
  EXPECT_LT(err, 0.05);
}

INSTANTIATE_TEST_SUITE_P(ModelsAndObjectives, GaussianLinearAccuracy,
                         testing::Values(AccuracyCase{"vector", "ibp"}, AccuracyCase{"vector", "sliced"},
                                         AccuracyCase{"energy", "ibp"}, AccuracyCase{"energy", "sliced"}),
                         [](const auto& p) { return std::string(p.param.kind) + "_" + p.param.objective; });

// A box prior: with the unconstrained transform the integration-by-parts identity holds; trained
// directly in θ the boundary term does not vanish and the learned score is biased near the faces.
TEST(TrainerBoxPrior, TransformRemovesTheBoundaryBias) {
  test::TempDir tmp;
  const SimulatorOptions two{{"dim", "2"}};
  const auto train = test::simulate_gaussian_linear(tmp.path(), "train.h5", "uniform(-1, 1)", 10000, test::announce_seed("simulation", 4), two);
  const auto fresh = test::simulate_gaussian_linear(tmp.path(), "fresh.h5", "uniform(-1, 1)", 10000, test::announce_seed("fresh", 5), two);
  TrainingSettings with = quick_settings(6);
  TrainingSettings without = with;
  without.unconstrained = false;
  train_score_model(train, "train.h5", with, tmp.file("with.h5"));
  train_score_model(train, "train.h5", without, tmp.file("without.h5"));
  const double e_with = relative_score_error(ScoreModel::load(tmp.file("with.h5")), fresh);
  const double e_without = relative_score_error(ScoreModel::load(tmp.file("without.h5")), fresh);
  std::printf("box prior: relative score error %.4f with the transform, %.4f trained in theta\n", e_with, e_without);
  EXPECT_LT(e_with, 0.05);
  EXPECT_GT(e_without, 2 * e_with);
}

// The latent-jitter regression on a linear-Gaussian model with a known optimum: x|θ ~ N(θ, Σ_n),
// Σ_n = [[1, .5], [.5, 1]], jitter Σ_ε = 0.4·I, θ ~ N(0, I), 10⁵ pairs. The Bayes-optimal MSE of
// the regression (per element) is tr(Σ_ε⁻¹ (I + Σ_ε⁻¹ + Σ_n⁻¹)⁻¹ Σ_ε⁻¹)/2.
TEST(TrainerLatent, ReachesTheAnalyticOptimumOnALinearGaussianModel) {
  const std::uint64_t seed = test::announce_seed("latent data", 7);
  const Eigen::Index n = 100000;
  Eigen::MatrixXd sn(2, 2);
  sn << 1, 0.5, 0.5, 1;
  const Eigen::MatrixXd l = sn.llt().matrixL();
  SimulationData data;
  data.theta.resize(n, 2);
  data.x.resize(n, 2);
  for (Eigen::Index i = 0; i < n; ++i) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(i));
    // Dynamic-size vectors: GCC 12 misreads fixed 2-vectors under AVX-512 (-Warray-bounds).
    Eigen::VectorXd th(2), eta(2);
    th << rng.normal(), rng.normal();
    eta << rng.normal(), rng.normal();
    data.theta.row(i) = th.transpose();
    data.x.row(i) = (th + l * eta).transpose();
  }
  data.parameter_names = {"a", "b"};
  data.data_names = {"xa", "xb"};
  data.simulator_name = "linear_gaussian";
  data.prior = "normal(0, 1)";
  data.status = "complete";
  test::TempDir tmp;
  TrainingSettings st = quick_settings(8);
  st.objective = "latent";
  // Jitter sd = latent_sigma × the spread of u (≈ 1 here): Σ_ε ≈ 0.4·I.
  st.latent_sigma = std::sqrt(0.4);
  const auto r = train_score_model(data, "memory", st, tmp.file("latent.h5"));
  const Eigen::MatrixXd se_inv = Eigen::MatrixXd::Identity(2, 2) / 0.4;
  const Eigen::MatrixXd post = (Eigen::MatrixXd::Identity(2, 2) + se_inv + sn.inverse()).inverse();
  const double optimum = (se_inv * post * se_inv).trace() / 2;
  const double achieved = r.best_validation_loss / 2;  // per element
  std::printf("latent objective: per-element MSE %.4f, Bayes optimum %.4f\n", achieved, optimum);
  EXPECT_NEAR(achieved, optimum, 0.03 * optimum);
  EXPECT_GE(achieved, optimum * 0.97);  // cannot beat the Bayes error beyond sampling noise
}

}  // namespace
}  // namespace fsbi
