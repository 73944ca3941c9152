#include "fsbi/score_recentring.hpp"

#include "fsbi/local_fsm.hpp"

#include <fmt/format.h>

#include <cmath>

namespace fsbi {

ScoreRecentring estimate_score_offset(const ScoreModel& model, const Simulator& simulator,
                                      const Eigen::MatrixXd& theta, const ScoreRecentringSettings& settings) {
  const int d = model.theta_dim(), k = model.x_dim();
  if (simulator.parameter_dim() != d || simulator.data_dim() != k)
    throw ScoreRecentringError(fmt::format(
        "simulator '{}' has {} parameters and {} data values, the model {} and {}; recentre with the model's own "
        "simulator ('{}')",
        simulator.name(), simulator.parameter_dim(), simulator.data_dim(), d, k, model.info().simulator_name));
  if (theta.rows() != d)
    throw ScoreRecentringError(fmt::format("the posterior draws have {} parameters, the model {}", theta.rows(), d));
  const Eigen::MatrixXd u_all = model.transform().to_unconstrained(theta);
  for (Eigen::Index j = 0; j < theta.cols(); ++j)
    if (!u_all.col(j).allFinite())
      throw ScoreRecentringError(fmt::format(
          "posterior draw {} lies outside the interior of the training prior's support ({})", j + 1,
          model.info().prior));

  const SimulatedRows rows = simulate_at(simulator, theta, settings.seed, settings.first_index, settings.threads);
  const std::vector<Eigen::Index> ok = ok_column_indices(rows);
  const auto n = static_cast<Eigen::Index>(ok.size());
  if (n < min_recentring_simulations)
    throw ScoreRecentringError(fmt::format(
        "only {} of {} simulations at posterior draws succeeded{}; recentring the score needs at least {}",
        n, theta.cols(), rows.first_error.empty() ? "" : fmt::format(" (first failure: {})", rows.first_error),
        min_recentring_simulations));

  ScoreRecentring out;
  out.failed = rows.failed;
  out.first_error = rows.first_error;
  out.theta = theta(Eigen::all, ok);
  out.x = rows.x(Eigen::all, ok);
  const Eigen::MatrixXd s = model.score_u(u_all(Eigen::all, ok), out.x);
  out.offset_u = s.rowwise().mean();
  const Eigen::MatrixXd centred = s.colwise() - out.offset_u;
  out.standard_error =
      (centred.array().square().rowwise().sum() / static_cast<double>(n - 1) / static_cast<double>(n)).sqrt();
  return out;
}

}  // namespace fsbi
