// two_moons: sbibm's "two_moons" task (sbibm/tasks/two_moons/task.py), simulated in float64.
//
//   θ ∈ R², x ∈ R², prior θ_i ~ U(-1, 1) independently.
//   a ~ U(-π/2, π/2),  r ~ N(0.1, 0.01²),  p = (r cos a + 0.25, r sin a)
//   x0 = p0 - |θ0 + θ1| / √2,  x1 = p1 + (θ1 - θ0) / √2
//
// Exactly two draws per simulation, in this order: one uniform (a), one normal (r).
// Provides the analytic likelihood score ("fsbi.likelihood-score/1") where the likelihood is
// positive. See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <cmath>
#include <numbers>
#include <span>

namespace {

class TwoMoons {
 public:
  explicit TwoMoons(const fsbi::sdk::Options& /*options*/) {}  // no options: any is unknown

  fsbi::sdk::Info info() const {
    return {.parameter_names = {"parameter_1", "parameter_2"},
            .data_names = {"data_1", "data_2"},
            .default_prior = "uniform(-1, 1)"};
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    constexpr double pi = std::numbers::pi;
    constexpr double inv_sqrt2 = 1.0 / std::numbers::sqrt2;
    const double a = rng.uniform(-pi / 2, pi / 2);
    const double r = rng.normal(0.1, 0.01);
    const double p0 = r * std::cos(a) + 0.25;
    const double p1 = r * std::sin(a);
    x[0] = p0 - std::abs(theta[0] + theta[1]) * inv_sqrt2;
    x[1] = p1 + (theta[1] - theta[0]) * inv_sqrt2;
  }

  // With q = x − (0.25 − |θ0 + θ1|/√2, (θ1 − θ0)/√2) = (r cos a, r sin a) and ρ = |q|, the
  // density of x is N(ρ; 0.1, 0.01²) / (π ρ) on the half-plane q0 > 0 (and 0 off it), so
  //   ∇θ log p = (−(ρ − 0.1)/0.01² − 1/ρ) ∇θ ρ,
  //   ∇θ ρ = (q0 σ + q1, q0 σ − q1) / (√2 ρ),  σ = sign(θ0 + θ1) (+1 at θ0 + θ1 = 0).
  // Off the half-plane (data this θ cannot produce) it is the same expression's value.
  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    constexpr double inv_sqrt2 = 1.0 / std::numbers::sqrt2;
    const double sum = theta[0] + theta[1];
    const double sign = sum >= 0 ? 1.0 : -1.0;
    const double q0 = x[0] - 0.25 + std::abs(sum) * inv_sqrt2;
    const double q1 = x[1] - (theta[1] - theta[0]) * inv_sqrt2;
    const double rho = std::hypot(q0, q1);
    const double dlog_drho = -(rho - 0.1) / (0.01 * 0.01) - 1.0 / rho;
    const double k = dlog_drho * inv_sqrt2 / rho;
    score[0] = k * (q0 * sign + q1);
    score[1] = k * (q0 * sign - q1);
  }
};

}  // namespace

FSBI_SIMULATOR(TwoMoons, "two_moons", "1.0.0",
               "sbibm task two_moons: a crescent-shaped bimodal posterior, theta and x in R^2")
