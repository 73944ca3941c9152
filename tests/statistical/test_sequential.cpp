// Sequential Fisher score matching (docs/sequential.md), statistically: on gaussian_linear
// (10 parameters, exact score (x − θ)/0.1, a prior much wider than the posterior) the score learned
// in three rounds, where the posterior is, against amortised models on the same and on ten times
// the budget, and against the rounds' own pairs trained without the proposal's score.
#include "fsbi/plugin.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/sequential.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/trainer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace fsbi {
namespace {

using test::relative_score_error;

// The gaussian_linear score's relative error at the observation itself, where the posterior uses
// the score: θ ~ p(θ | x_o) (the fresh pairs' θ's), x = x_o.
double relative_score_error_at(const ScoreModel& model, const SimulationData& fresh, const std::vector<double>& xo) {
  const Eigen::Index d = fresh.theta.cols(), n = fresh.theta.rows();
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::VectorXd>(xo.data(), d).replicate(1, n);
  return relative_score_error(model, Eigen::Map<const Eigen::MatrixXd>(fresh.theta.data(), d, n), x,
                              test::gaussian_linear_score);
}

TEST(SequentialRounds, ThreeRoundsAreUnbiasedAndAsGoodAsTheSameBudgetOnThePrior) {
  test::TempDir tmp;
  const std::string obs_dir = test::shared_dir() + "/sbibm/gaussian_linear/obs_1/";
  const std::vector<double> xo = test::read_csv_row(obs_dir + "observation.csv");
  ASSERT_EQ(xo.size(), 10u);
  auto sim = open_simulator("gaussian_linear", {}, {test::bundled_plugin_dir()});
  // A prior much wider than the posterior, the situation rounds are for: θ ~ N(0, I) (sbibm's
  // prior has sd 0.32, barely wider than its posterior). The posterior for noise 0.1·I is
  // N(x_o/1.1, (0.1/1.1)·I), sd 0.30.
  const std::string prior_spec = "normal(0, 1)";
  std::shared_ptr<const Prior> prior = parse_prior(prior_spec, 10);

  // Fresh pairs where the posterior is: θ ~ p(θ | x_o), x ~ p(x|θ).
  std::vector<double> centre;
  for (double v : xo) centre.push_back(v / 1.1);
  const std::string posterior_prior = fmt::format("normal([{}], {})", fmt::join(centre, ", "), std::sqrt(0.1 / 1.1));
  const SimulationData fresh = test::simulate_gaussian_linear(tmp.path(), "fresh.h5", posterior_prior, 5000,
                                                              test::announce_seed("fresh pairs", 2));

  constexpr std::uint64_t budget = 3000;
  SequentialInputs in;
  in.simulator = sim.get();
  in.prior = prior;
  in.prior_source = "--prior";
  in.observations = Table(1, 10);
  for (int j = 0; j < 10; ++j) in.observations(0, j) = xo[static_cast<std::size_t>(j)];
  in.simulation.num_simulations = budget;
  in.simulation.seed = test::announce_seed("sequential run", 5);
  in.simulation.progress = ProgressMode::quiet;
  in.training.seed = 5;
  in.training.progress = ProgressMode::quiet;
  in.posterior.sampler.progress = ProgressMode::quiet;
  in.sequential.rounds = 3;
  const SequentialReport rep = run_sequential(in, tmp.file("seq"));
  ASSERT_EQ(rep.rounds.size(), 3u);
  const ScoreModel seq = ScoreModel::load(rep.model), round1 = ScoreModel::load(tmp.file("seq.round1.model.h5"));
  const double e_seq = relative_score_error(seq, fresh), e_round1 = relative_score_error(round1, fresh);
  const double o_seq = relative_score_error_at(seq, fresh, xo), o_round1 = relative_score_error_at(round1, fresh, xo);

  // Amortised models on the same budget and on ten times it.
  auto amortised = [&](std::uint64_t n, std::uint64_t sim_seed, const std::string& name) {
    const SimulationData data =
        test::simulate_gaussian_linear(tmp.path(), name + ".h5", prior_spec, n,
                                       test::announce_seed(name + " simulations", sim_seed));
    TrainingSettings ts;
    ts.seed = 5;
    ts.progress = ProgressMode::quiet;
    train_score_model(data, name + ".h5", ts, tmp.file(name + "_model.h5"));
    return ScoreModel::load(tmp.file(name + "_model.h5"));
  };
  const ScoreModel same = amortised(budget, 6, "same_budget"), big = amortised(10 * budget, 7, "ten_times");
  const double o_same = relative_score_error_at(same, fresh, xo), o_big = relative_score_error_at(big, fresh, xo);
  const double e_same = relative_score_error(same, fresh), e_big = relative_score_error(big, fresh);

  // The same pooled pairs trained as if they came from the prior: what the pooled proposal's
  // score in the objective corrects.
  TrainingSettings ts;
  ts.seed = 5;
  ts.progress = ProgressMode::quiet;
  train_score_model(read_simulations(rep.pooled), rep.pooled, ts, tmp.file("uncorrected_model.h5"));
  const double o_uncorrected = relative_score_error_at(ScoreModel::load(tmp.file("uncorrected_model.h5")), fresh, xo);

  std::printf("relative score error, θ ~ p(θ|x_o), x ~ p(x|θ): 3 rounds × %llu simulations %.4f; round 1 alone "
              "%.4f; amortised on %llu %.4f, on %llu %.4f\n",
              static_cast<unsigned long long>(budget / 3), e_seq, e_round1, static_cast<unsigned long long>(budget),
              e_same, static_cast<unsigned long long>(10 * budget), e_big);
  std::printf("the same at x = x_o:                             3 rounds %.4f; round 1 alone %.4f; amortised on "
              "%llu %.4f, on %llu %.4f; the rounds' pairs without the proposal's score %.4f\n",
              o_seq, o_round1, static_cast<unsigned long long>(budget), o_same,
              static_cast<unsigned long long>(10 * budget), o_big, o_uncorrected);
  // Measured at x = x_o (seeds above, 2026-12-03, the automatic batch and rate: 64 at 4e-3 up to
  // 2047 training pairs, 128 at 2e-3 up to 4095): rounds 0.0116, round 1 alone 0.052, amortised on
  // the same budget 0.0154, on ten times the budget 0.0033, uncorrected 0.036 (earlier figures in
  // docs/sequential.md#what-it-gains-measured). The rounds do not reach the 10× model: the
  // network learns this globally linear score from every pair, wherever it lies, so the error
  // follows the number of pairs (docs/sequential.md#what-it-gains-measured). What must hold:
  // focusing costs nothing against the same budget spent on the prior, the rounds improve on their
  // first round, and the pooled proposal's score is what keeps the pooled pairs unbiased.
  EXPECT_LT(o_seq, 1.3 * o_same);
  EXPECT_LT(o_seq, 0.75 * o_round1);
  EXPECT_GT(o_uncorrected, 2.5 * o_seq);
}

}  // namespace
}  // namespace fsbi
