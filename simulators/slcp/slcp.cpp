// slcp: sbibm's "slcp" task ("simple likelihood, complex posterior"; sbibm/tasks/slcp/task.py,
// without distractors), simulated in float64.
//
//   θ ∈ R⁵, x ∈ R⁸, prior θ_i ~ U(-3, 3) independently.
//   m = (θ0, θ1),  s1 = θ2²,  s2 = θ3²,  ρ = tanh(θ4)
//   S = [[s1² + 1e-6, ρ s1 s2], [ρ s1 s2, s2² + 1e-6]]
//   x_j ~ N(m, S) i.i.d. for j = 1..4, drawn as x_j = m + L z_j with S = L Lᵀ (Cholesky),
//   output x = (x_1[0], x_1[1], x_2[0], x_2[1], x_3[0], x_3[1], x_4[0], x_4[1]).
//
// Exactly 8 standard-normal draws per simulation (one fill_normal of length 8), in output order:
// z_1[0], z_1[1], z_2[0], ..., z_4[1]. S is positive definite for every finite θ (its Cholesky
// pivot S11 − S01²/S00 ≥ 1e-6), so a simulation never fails; a non-finite θ gives a non-finite x,
// which fsbi counts as a failed simulation.
// Provides the analytic likelihood score ("fsbi.likelihood-score/1"). See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <array>
#include <cmath>
#include <span>

namespace {

constexpr double kJitter = 1e-6;  // sbibm's eps added to the diagonal of S
constexpr int kPoints = 4;

struct Covariance {
  double s1, s2, rho, s00, s01, s11;
};

Covariance covariance(std::span<const double> theta) {
  Covariance c{};
  c.s1 = theta[2] * theta[2];
  c.s2 = theta[3] * theta[3];
  c.rho = std::tanh(theta[4]);
  c.s00 = c.s1 * c.s1 + kJitter;
  c.s01 = c.rho * c.s1 * c.s2;
  c.s11 = c.s2 * c.s2 + kJitter;
  return c;
}

class Slcp {
 public:
  explicit Slcp(const fsbi::sdk::Options& /*options*/) {}  // no options: any is unknown

  fsbi::sdk::Info info() const {
    return {.parameter_names = {"parameter_1", "parameter_2", "parameter_3", "parameter_4",
                                "parameter_5"},
            .data_names = {"data_1", "data_2", "data_3", "data_4", "data_5", "data_6", "data_7",
                           "data_8"},
            .default_prior = "uniform(-3, 3)"};
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    const Covariance c = covariance(theta);
    const double l00 = std::sqrt(c.s00);
    const double l10 = c.s01 / l00;
    const double l11 = std::sqrt(c.s11 - l10 * l10);
    rng.fill_normal(z_);
    for (int j = 0; j < kPoints; ++j) {
      const double z0 = z_[2 * j], z1 = z_[2 * j + 1];
      x[2 * j] = theta[0] + l00 * z0;
      x[2 * j + 1] = theta[1] + l10 * z0 + l11 * z1;
    }
  }

  // log p(x|θ) = Σ_j log N(x_j; m, S). With P = S⁻¹, r_j = x_j − m, R = Σ_j r_j r_jᵀ:
  //   ∂/∂m = P Σ_j r_j,   ∂/∂S = G = ½ (P R P − 4 P)   (S symmetric: S01 counts twice)
  //   dS00/dθ2 = 4θ2³, dS01/dθ2 = 2θ2 ρ s2, dS11/dθ3 = 4θ3³, dS01/dθ3 = 2θ3 ρ s1,
  //   dS01/dθ4 = (1 − ρ²) s1 s2.
  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const Covariance c = covariance(theta);
    const double det = c.s00 * c.s11 - c.s01 * c.s01;
    const double p00 = c.s11 / det, p01 = -c.s01 / det, p11 = c.s00 / det;
    double r0sum = 0, r1sum = 0, r00 = 0, r01 = 0, r11 = 0;
    for (int j = 0; j < kPoints; ++j) {
      const double r0 = x[2 * j] - theta[0], r1 = x[2 * j + 1] - theta[1];
      r0sum += r0;
      r1sum += r1;
      r00 += r0 * r0;
      r01 += r0 * r1;
      r11 += r1 * r1;
    }
    score[0] = p00 * r0sum + p01 * r1sum;
    score[1] = p01 * r0sum + p11 * r1sum;
    // A = P R, then P R P = A P.
    const double a00 = p00 * r00 + p01 * r01, a01 = p00 * r01 + p01 * r11;
    const double a10 = p01 * r00 + p11 * r01, a11 = p01 * r01 + p11 * r11;
    const double g00 = 0.5 * (a00 * p00 + a01 * p01 - kPoints * p00);
    const double g01 = 0.5 * (a00 * p01 + a01 * p11 - kPoints * p01);
    const double g11 = 0.5 * (a10 * p01 + a11 * p11 - kPoints * p11);
    const double t2 = theta[2], t3 = theta[3];
    const double cosh4 = std::cosh(theta[4]);
    const double drho = 1.0 / (cosh4 * cosh4);  // 1 − tanh², without cancellation
    score[2] = g00 * 4 * t2 * t2 * t2 + 2 * g01 * 2 * t2 * c.rho * c.s2;
    score[3] = g11 * 4 * t3 * t3 * t3 + 2 * g01 * 2 * t3 * c.rho * c.s1;
    score[4] = 2 * g01 * drho * c.s1 * c.s2;
  }

 private:
  std::array<double, 2 * kPoints> z_{};  // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(Slcp, "slcp", "1.0.0",
               "sbibm task slcp: 4 Gaussian 2-D points whose mean and covariance depend on theta in R^5, x in R^8")
