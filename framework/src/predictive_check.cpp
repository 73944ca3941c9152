#include "fsbi/predictive_check.hpp"

#include "fsbi/local_fsm.hpp"

#include <Eigen/Cholesky>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace fsbi {

namespace {

// Added to the diagonal of the replicates' correlation matrix: data values that are (nearly)
// linear combinations of others (counts that sum to a total) would make it singular.
constexpr double kCorrelationRidge = 1e-6;

double median(std::vector<double> v) {
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (v.size() % 2 == 1) return *mid;
  return 0.5 * (*mid + *std::max_element(v.begin(), mid));
}

}  // namespace

PredictiveCheck posterior_predictive_check(const Simulator& simulator, const Eigen::MatrixXd& theta,
                                           const Table& observations, const PredictiveCheckSettings& settings) {
  const int d = simulator.parameter_dim(), k = simulator.data_dim();
  if (theta.rows() != d)
    throw PredictiveCheckError(fmt::format("the posterior draws have {} parameters, simulator '{}' has {}",
                                           theta.rows(), simulator.name(), d));
  if (observations.cols() != k)
    throw PredictiveCheckError(fmt::format("the observations have {} data values, simulator '{}' produces {}",
                                           observations.cols(), simulator.name(), k));
  if (observations.rows() == 0) throw PredictiveCheckError("no observations to check");
  if (!observations.allFinite()) throw PredictiveCheckError("the observations hold NaN or infinite values");

  const SimulatedRows rows = simulate_at(simulator, theta, settings.seed, 0, settings.threads);
  PredictiveCheck out;
  out.failed = rows.failed;
  out.first_error = rows.first_error;
  out.draw = ok_column_indices(rows);
  out.replicates = rows.x(Eigen::all, out.draw);
  const Eigen::Index m = out.replicates.cols();
  if (m < 20 || m < k + 2)
    throw PredictiveCheckError(fmt::format(
        "only {} of {} replicate simulations succeeded{}; the check needs at least {} (more posterior draws, "
        "or a simulator that fails less)",
        m, theta.cols(), rows.first_error.empty() ? "" : fmt::format(" (first failure: {})", rows.first_error),
        std::max<Eigen::Index>(20, k + 2)));

  // Standardise each data value over the replicates; constant ones cannot be scaled and are left
  // out of the distance (an observation that differs from the constant is flagged on its own).
  const Eigen::VectorXd mean = out.replicates.rowwise().mean();
  const Eigen::MatrixXd centred = out.replicates.colwise() - mean;
  const Eigen::VectorXd sd = (centred.array().square().rowwise().sum() / static_cast<double>(m - 1)).sqrt();
  std::vector<int> varying;
  for (int i = 0; i < k; ++i) {
    if ((out.replicates.row(i).array() == out.replicates(i, 0)).all()) out.constant.push_back(i);
    else varying.push_back(i);
  }
  const auto kv = static_cast<Eigen::Index>(varying.size());
  const Eigen::MatrixXd z = (centred(varying, Eigen::all).array().colwise() / sd(varying).array()).matrix();
  Eigen::MatrixXd corr = z * z.transpose() / static_cast<double>(m - 1);
  corr.diagonal().array() += kCorrelationRidge;
  const Eigen::LLT<Eigen::MatrixXd> llt(corr);
  if (llt.info() != Eigen::Success)
    throw PredictiveCheckError("the replicates' correlation matrix is not positive definite");
  const auto sq_distance = [&](const Eigen::MatrixXd& zc) -> Eigen::VectorXd {
    if (kv == 0) return Eigen::VectorXd::Zero(zc.cols());
    return llt.matrixL().solve(zc).colwise().squaredNorm().transpose();
  };
  const Eigen::VectorXd rep_d = sq_distance(z);
  out.replicate_median = median(std::vector<double>(rep_d.begin(), rep_d.end()));

  const Eigen::Index n = observations.rows();
  const double inv = 1.0 / static_cast<double>(m + 1);
  out.distance.resize(n);
  out.p_value.resize(n);
  out.marginal_p.resize(k, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const Eigen::VectorXd x = observations.row(i).transpose();
    bool off_constant = false;
    for (const int c : out.constant)
      if (x[c] != out.replicates(c, 0)) {
        off_constant = true;
        out.notes.push_back(fmt::format("observation {}: data value {} is {:g}, but {:g} in every replicate", i + 1,
                                        c + 1, x[c], out.replicates(c, 0)));
      }
    if (off_constant) {
      out.distance[i] = std::numeric_limits<double>::infinity();
      out.p_value[i] = inv;
    } else {
      const Eigen::MatrixXd zo = ((x(varying) - mean(varying)).array() / sd(varying).array()).matrix();
      out.distance[i] = sq_distance(zo)[0];
      out.p_value[i] = static_cast<double>(1 + (rep_d.array() >= out.distance[i]).count()) * inv;
    }
    for (int c = 0; c < k; ++c) {
      const auto below = static_cast<double>((out.replicates.row(c).array() < x[c]).count()) +
                         0.5 * static_cast<double>((out.replicates.row(c).array() == x[c]).count());
      const double beyond = std::min(below, static_cast<double>(m) - below);
      out.marginal_p(c, i) = std::min(1.0, 2.0 * (1.0 + beyond) * inv);
    }
  }
  out.flagged = out.p_value.minCoeff() * static_cast<double>(n) < settings.alarm;
  return out;
}

}  // namespace fsbi
