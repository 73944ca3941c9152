// sir: sbibm's "sir" task (sbibm/tasks/sir/task.py, SIR(N=1e6, I0=1, R0=0, days=160, saveat=1,
// total_count=1000, summary="subsample")), simulated in float64.
//
//   θ = (β, γ) ∈ R² (contact rate, recovery rate), x ∈ R¹⁰.
//   Prior: β ~ LogNormal(log 0.4, 0.5), γ ~ LogNormal(log 0.125, 0.2), independent.
//   ODE, N = 10⁶, (S, I, R)(0) = (N − 1, 1, 0), t ∈ [0, 160]:
//     dS/dt = −β S I / N,   dI/dt = β S I / N − γ I,   dR/dt = γ I
//   solved with Boost.Numeric.Odeint's Dormand–Prince 5(4) (runge_kutta_dopri5) under a step
//   size controller with absolute and relative tolerance 1e-8 (sbibm: Julia's Tsit5, same
//   tolerances), stepping exactly onto each output time.
//   Summary: I(t_j) at t_j = 0, 17, 34, ..., 153 (every 17th day of sbibm's daily grid);
//   x_j ~ Binomial(1000, clamp(I(t_j)/N, 0, 1)) independently.
//
// Draws: exactly 10 000 uniforms per simulation: for j = 1..10 in order, 1000 uniforms u (one
// fill_uniform of length 1000), x_j = #{u < p_j}. This is an exact Binomial(1000, p_j) draw.
//
// Likelihood score (FSBI_EXT_LIKELIHOOD_SCORE; for checking a trained model, bench/score_error):
// the counts are independent binomials around the deterministic trajectory, so
//   ∇θ log p(x|θ) = Σ_j (x_j/p_j − (1000 − x_j)/(1 − p_j)) ∂p_j/∂θ,   p_j = I(t_j)/N,
// with ∂I/∂β and ∂I/∂γ from the forward sensitivity equations solved alongside the ODE by the
// same stepper and tolerances (for sensitivities s_θ = ∂(S, I)/∂θ: ds_θ/dt = J s_θ + ∂f/∂θ, J the
// Jacobian of (dS/dt, dI/dt) in (S, I); R does not enter). p_j is clamped as in simulate(); the
// score is ±∞ where a count is impossible (x_j > 0 with p_j = 0, or x_j < 1000 with p_j = 1).
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
#include <exception>
#include <span>
#include <stdexcept>
#include <string>

namespace {

namespace odeint = boost::numeric::odeint;

constexpr double kPopulation = 1e6;           // N
constexpr double kTolerance = 1e-8;           // absolute and relative
constexpr int kTrials = 1000;                 // binomial total_count
constexpr std::size_t kOutputs = 10;          // t = 0, 17, ..., 153
constexpr double kOutputSpacing = 17.0;       // days between summary times
constexpr std::size_t kMaxStepsBetweenOutputs = 100000;

using State = std::array<double, 3>;  // (S, I, R)

struct SirSystem {
  double beta, gamma;
  void operator()(const State& u, State& du, double /*t*/) const {
    const double infection = beta * u[0] * u[1] / kPopulation;
    const double recovery = gamma * u[1];
    du[0] = -infection;
    du[1] = infection - recovery;
    du[2] = recovery;
  }
};

// (S, I, R) with the sensitivities ∂S/∂β, ∂I/∂β, ∂S/∂γ, ∂I/∂γ.
using SensitivityState = std::array<double, 7>;

struct SirSensitivitySystem {
  double beta, gamma;
  void operator()(const SensitivityState& u, SensitivityState& du, double /*t*/) const {
    const double s = u[0], i = u[1];
    const double infection = beta * s * i / kPopulation;
    du[0] = -infection;
    du[1] = infection - gamma * i;
    du[2] = gamma * i;
    // Jacobian of (dS/dt, dI/dt) with respect to (S, I).
    const double ds_s = -beta * i / kPopulation, ds_i = -beta * s / kPopulation;
    const double di_s = beta * i / kPopulation, di_i = beta * s / kPopulation - gamma;
    const double si = s * i / kPopulation;  // ∂(infection)/∂β
    du[3] = ds_s * u[3] + ds_i * u[4] - si;  // d/dt ∂S/∂β
    du[4] = di_s * u[3] + di_i * u[4] + si;  // d/dt ∂I/∂β
    du[5] = ds_s * u[5] + ds_i * u[6];       // d/dt ∂S/∂γ
    du[6] = di_s * u[5] + di_i * u[6] - i;   // d/dt ∂I/∂γ
  }
};

std::string describe(double beta, double gamma) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "beta = %.17g, gamma = %.17g", beta, gamma);
  return buf;
}

class Sir {
 public:
  explicit Sir(const fsbi::sdk::Options& /*options*/) {
    for (std::size_t j = 0; j < kOutputs; ++j) times_[j] = kOutputSpacing * static_cast<double>(j);
  }

  fsbi::sdk::Info info() const {
    // mu = log(0.4) and log(0.125) in their shortest round-trip decimal form.
    return {.parameter_names = {"parameter_1", "parameter_2"},
            .data_names = {"data_1", "data_2", "data_3", "data_4", "data_5", "data_6", "data_7",
                           "data_8", "data_9", "data_10"},
            .default_prior = "lognormal([-0.916290731874155, -2.0794415416798357], [0.5, 0.2])"};
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const auto at = solve<SirSensitivitySystem>(theta, SensitivityState{kPopulation - 1, 1, 0, 0, 0, 0, 0});
    score[0] = score[1] = 0;
    for (std::size_t j = 0; j < kOutputs; ++j) {
      const double p = std::clamp(at[j][1] / kPopulation, 0.0, 1.0);
      const double w = (x[j] > 0 ? x[j] / p : 0.0) - (x[j] < kTrials ? (kTrials - x[j]) / (1 - p) : 0.0);
      score[0] += w * at[j][4] / kPopulation;
      score[1] += w * at[j][6] / kPopulation;
    }
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    const auto at = solve<SirSystem>(theta, State{kPopulation - 1, 1, 0});
    for (std::size_t j = 0; j < kOutputs; ++j) {
      const double infected = at[j][1];
      if (!std::isfinite(infected))
        throw std::runtime_error("sir: the ODE solution is not finite at t = " +
                                 std::to_string(static_cast<int>(times_[j])) + " for " +
                                 describe(theta[0], theta[1]));
      const double p = std::clamp(infected / kPopulation, 0.0, 1.0);
      rng.fill_uniform(u_);
      x[j] = static_cast<double>(std::count_if(u_.begin(), u_.end(), [p](double v) { return v < p; }));
    }
  }

 private:
  // The ODE solve simulate() and likelihood_score() share: θ checked for finiteness, `System`
  // integrated from `u` onto the output times; the state at each. odeint's failures are rethrown
  // naming θ.
  template <class System, class Y>
  std::array<Y, kOutputs> solve(std::span<const double> theta, Y u) const {
    const double beta = theta[0], gamma = theta[1];
    if (!std::isfinite(beta) || !std::isfinite(gamma))
      throw std::runtime_error("sir: parameters must be finite, got " + describe(beta, gamma));
    std::array<Y, kOutputs> at{};
    try {
      std::size_t k = 0;
      auto stepper = odeint::make_controlled(kTolerance, kTolerance, odeint::runge_kutta_dopri5<Y>());
      odeint::integrate_times(stepper, System{beta, gamma}, u, times_.begin(), times_.end(), 0.1,
                              [&](const Y& s, double) { at[k++] = s; },
                              odeint::max_step_checker(kMaxStepsBetweenOutputs));
    } catch (const std::exception& e) {
      throw std::runtime_error("sir: the ODE solver failed at " + describe(beta, gamma) + ": " + e.what());
    }
    return at;
  }

  std::array<double, kOutputs> times_{};
  std::array<double, kTrials> u_{};  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(Sir, "sir", "1.0.0",
               "sbibm task sir: epidemic ODE (beta, gamma), binomial counts of the infected at 10 times")
