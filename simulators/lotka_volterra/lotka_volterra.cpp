// lotka_volterra: sbibm's "lotka_volterra" task (sbibm/tasks/lotka_volterra/task.py,
// LotkaVolterra(days=20, saveat=0.1, summary="subsample")), simulated in float64.
//
//   θ = (α, β, γ, δ) ∈ R⁴, x ∈ R²⁰.
//   Prior: log θ_i ~ N(μ_i, 0.5²) independently, μ = (−0.125, −3, −0.125, −3).
//   ODE, (u, v)(0) = (30, 1) (prey, predators):
//     du/dt = α u − β u v,   dv/dt = −γ v + δ u v
//   solved with Boost.Numeric.Odeint's Dormand–Prince 5(4) (runge_kutta_dopri5) under a step
//   size controller with absolute and relative tolerance 1e-8 (sbibm: Julia's Tsit5, same
//   tolerances), stepping exactly onto each output time.
//   Summary: the solution at t_j = 2.1·j, j = 0..9 (every 21st point of sbibm's 0.1 grid),
//   output order (u(t_0), ..., u(t_9), v(t_0), ..., v(t_9));
//   x_i = clamp(s_i, 1e-10, 1e4)·exp(0.1 ε_i), ε_i ~ N(0, 1), i.e.
//   x_i ~ LogNormal(log clamp(s_i, 1e-10, 1e4), 0.1) independently.
//
// Draws: exactly 20 standard normals per simulation (one fill_normal of length 20), ε_i in
// output order.
//
// Likelihood score (FSBI_EXT_LIKELIHOOD_SCORE; for checking a trained model, bench/score_error):
// with c_i = clamp(s_i, 1e-10, 1e4),
//   ∇θ log p(x|θ) = Σ_i (log x_i − log c_i)/0.1² · ∂ log c_i/∂θ,
// ∂ log c_i/∂θ = (∂s_i/∂θ)/s_i inside the clamp and 0 where it binds. ∂s/∂θ comes from the forward
// sensitivity equations (d/dt ∂(u, v)/∂θ_k = J ∂(u, v)/∂θ_k + ∂f/∂θ_k, J the Jacobian of the
// right-hand side in (u, v)), integrated alongside the ODE by the same stepper and tolerances.
//
// Failures (sbibm writes a NaN row when the solve fails): simulate() throws, so fsbi records the
// simulation as failed with the message — for a non-finite θ, when the solver cannot make
// progress (odeint's step-size or step-count errors; at most 100 000 steps between two output
// times), or when the solution is not finite. See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <boost/numeric/odeint.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>

namespace {

namespace odeint = boost::numeric::odeint;

constexpr double kTolerance = 1e-8;  // absolute and relative
constexpr std::size_t kTimes = 10;   // t = 0, 2.1, ..., 18.9
constexpr double kNoise = 0.1;       // log-normal scale
constexpr double kLow = 1e-10, kHigh = 1e4;  // clamp of the solution before the noise
constexpr std::size_t kMaxStepsBetweenOutputs = 100000;

using State = std::array<double, 2>;  // (prey, predators)

struct LotkaVolterraSystem {
  double alpha, beta, gamma, delta;
  void operator()(const State& s, State& ds, double /*t*/) const {
    ds[0] = alpha * s[0] - beta * s[0] * s[1];
    ds[1] = -gamma * s[1] + delta * s[0] * s[1];
  }
};

// (u, v) and their sensitivities: [2 + 2k] = ∂u/∂θ_k, [3 + 2k] = ∂v/∂θ_k, k = 0..3 (α, β, γ, δ).
using SensitivityState = std::array<double, 10>;

struct LotkaVolterraSensitivitySystem {
  double alpha, beta, gamma, delta;
  void operator()(const SensitivityState& s, SensitivityState& ds, double /*t*/) const {
    const double u = s[0], v = s[1];
    ds[0] = alpha * u - beta * u * v;
    ds[1] = -gamma * v + delta * u * v;
    // Jacobian of the right-hand side in (u, v).
    const double fu_u = alpha - beta * v, fu_v = -beta * u;
    const double fv_u = delta * v, fv_v = -gamma + delta * u;
    // ∂f/∂θ_k: α → (u, 0), β → (−uv, 0), γ → (0, −v), δ → (0, uv).
    const std::array<std::array<double, 2>, 4> direct{{{u, 0.0}, {-u * v, 0.0}, {0.0, -v}, {0.0, u * v}}};
    for (std::size_t k = 0; k < 4; ++k) {
      const double su = s[2 + 2 * k], sv = s[3 + 2 * k];
      ds[2 + 2 * k] = fu_u * su + fu_v * sv + direct[k][0];
      ds[3 + 2 * k] = fv_u * su + fv_v * sv + direct[k][1];
    }
  }
};

std::string describe(std::span<const double> theta) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "alpha = %.17g, beta = %.17g, gamma = %.17g, delta = %.17g", theta[0],
                theta[1], theta[2], theta[3]);
  return buf;
}

class LotkaVolterra {
 public:
  explicit LotkaVolterra(const fsbi::sdk::Options& /*options*/) {
    // 21·j/10: the nearest double to 2.1·j, as on sbibm's grid 0:0.1:20.
    for (std::size_t j = 0; j < kTimes; ++j) times_[j] = static_cast<double>(21 * j) / 10.0;
  }

  fsbi::sdk::Info info() const {
    fsbi::sdk::Info inf;
    for (int i = 1; i <= 4; ++i) inf.parameter_names.push_back("parameter_" + std::to_string(i));
    for (int i = 1; i <= 20; ++i) inf.data_names.push_back("data_" + std::to_string(i));
    inf.default_prior = "lognormal([-0.125, -3, -0.125, -3], 0.5)";
    return inf;
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const auto at = solve<LotkaVolterraSensitivitySystem>(theta, SensitivityState{30.0, 1.0});
    std::fill(score.begin(), score.end(), 0.0);
    for (std::size_t i = 0; i < 2 * kTimes; ++i) {
      const std::size_t j = i % kTimes, species = i / kTimes;  // output order: u(t_0..t_9), v(t_0..t_9)
      const double si = at[j][species];
      if (!(si > kLow && si < kHigh)) continue;  // clamped: log c_i does not depend on θ
      const double w = (std::log(x[i]) - std::log(si)) / (kNoise * kNoise * si);
      for (std::size_t k = 0; k < 4; ++k) score[k] += w * at[j][2 + 2 * k + species];
    }
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    const auto at = solve<LotkaVolterraSystem>(theta, State{30.0, 1.0});
    std::array<double, 2 * kTimes> s{};  // output order: u(t_0..t_9), v(t_0..t_9)
    for (std::size_t j = 0; j < kTimes; ++j) {
      s[j] = at[j][0];
      s[kTimes + j] = at[j][1];
    }
    for (std::size_t i = 0; i < 2 * kTimes; ++i) {
      if (!std::isfinite(s[i]))
        throw std::runtime_error("lotka_volterra: the ODE solution is not finite at t = " +
                                 std::to_string(times_[i % kTimes]) + " for " + describe(theta));
    }
    rng.fill_normal(eps_);
    for (std::size_t i = 0; i < 2 * kTimes; ++i) x[i] = std::clamp(s[i], kLow, kHigh) * std::exp(kNoise * eps_[i]);
  }

 private:
  // The ODE solve simulate() and likelihood_score() share: θ checked for finiteness, `System`
  // integrated from `u` onto the output times; the state at each. odeint's failures are rethrown
  // naming θ.
  template <class System, class Y>
  std::array<Y, kTimes> solve(std::span<const double> theta, Y u) const {
    if (!std::all_of(theta.begin(), theta.end(), [](double t) { return std::isfinite(t); }))
      throw std::runtime_error("lotka_volterra: parameters must be finite, got " + describe(theta));
    std::array<Y, kTimes> at{};
    try {
      std::size_t k = 0;
      auto stepper = odeint::make_controlled(kTolerance, kTolerance, odeint::runge_kutta_dopri5<Y>());
      odeint::integrate_times(stepper, System{theta[0], theta[1], theta[2], theta[3]}, u, times_.begin(),
                              times_.end(), 0.01, [&](const Y& st, double) { at[k++] = st; },
                              odeint::max_step_checker(kMaxStepsBetweenOutputs));
    } catch (const std::exception& e) {
      throw std::runtime_error("lotka_volterra: the ODE solver failed at " + describe(theta) + ": " + e.what());
    }
    return at;
  }

  std::array<double, kTimes> times_{};
  std::array<double, 2 * kTimes> eps_{};  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(LotkaVolterra, "lotka_volterra", "1.0.0",
               "sbibm task lotka_volterra: predator-prey ODE (alpha, beta, gamma, delta), log-normal noisy populations at 10 times")
