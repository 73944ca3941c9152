// bernoulli_glm: sbibm's "bernoulli_glm" task (sbibm/tasks/bernoulli_glm/task.py,
// BernoulliGLM(summary="sufficient")), simulated in float64.
//
//   θ ∈ R¹⁰ (θ0 offset, θ1..θ9 linear filter), x ∈ R¹⁰.
//   Prior: θ ~ N(0, B⁻¹) with precision B: B00 = 0.5, B[1:,1:] = FᵀF, other entries 0, where
//     F = D·D + diag(√(i/9)), i = 0..8, D = I₉ − (ones on the first sub-diagonal).
//   Stimulus: I = numpy's RandomState(42).randn(100) rounded to float32 (T = 100 bins), and the
//     design matrix X (100 × 10): X[t,0] = 1, X[t,j+1] = I[t−j] for t ≥ j, else 0 (j = 0..8).
//   Simulator: ψ = Xθ, z_t = 1/(1 + e^{−ψ_t}), y_t = 1[u_t < z_t], u_t ~ U(0, 1) i.i.d.;
//   x = Xᵀy = (number of spikes, spike-triggered sums sta_0..sta_8).
//
// The stimulus is computed here, not read from a file: numpy's legacy generator is MT19937
// seeded with init_genrand(42) (std::mt19937(42), whose output the C++ standard fixes) and the
// polar Box–Muller method on 53-bit doubles (numpy's legacy_gauss), both reproduced below.
//
// Draws: exactly 100 uniforms per simulation (one fill_uniform of length 100), u_t for t = 0..99.
// Never fails for finite θ (a non-finite θ gives a non-finite x, which fsbi counts as failed).
// Provides the analytic likelihood score ("fsbi.likelihood-score/1"): the model is an
// exponential family in θ with sufficient statistic x, p(x|θ) = h(x)·exp(θᵀx − Σ_t log(1 + e^{ψ_t})),
// so ∇θ log p(x|θ) = x − Xᵀz(θ). See docs/simulators.md.
#include <fsbi/sdk.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>

namespace {

constexpr std::size_t kBins = 100;  // T
constexpr std::size_t kDim = 10;    // 1 offset + 9 filter taps
constexpr std::size_t kTaps = kDim - 1;

using Design = std::array<std::array<double, kDim>, kBins>;

// numpy.random.RandomState(42).randn(kBins), each value rounded to float32.
std::array<double, kBins> stimulus() {
  std::mt19937 mt(42);  // the engine only (fully specified by the standard), no <random> distribution
  auto next_double = [&] {  // numpy's legacy_double: 53 random bits in [0, 1)
    const double a = static_cast<double>(mt() >> 5), b = static_cast<double>(mt() >> 6);
    return (a * 67108864.0 + b) / 9007199254740992.0;
  };
  std::array<double, kBins> out{};
  bool has_spare = false;
  double spare = 0;
  for (double& v : out) {
    double g;
    if (has_spare) {
      g = spare;
      has_spare = false;
    } else {
      double x1, x2, r2;
      do {
        x1 = 2.0 * next_double() - 1.0;
        x2 = 2.0 * next_double() - 1.0;
        r2 = x1 * x1 + x2 * x2;
      } while (r2 >= 1.0 || r2 == 0.0);
      const double f = std::sqrt(-2.0 * std::log(r2) / r2);
      spare = f * x1;
      has_spare = true;
      g = f * x2;
    }
    v = static_cast<double>(static_cast<float>(g));
  }
  return out;
}

Design design_matrix() {
  const std::array<double, kBins> stim = stimulus();
  Design x{};
  for (std::size_t t = 0; t < kBins; ++t) {
    x[t][0] = 1.0;
    for (std::size_t j = 0; j < kTaps && j <= t; ++j) x[t][j + 1] = stim[t - j];
  }
  return x;
}

// The prior covariance B⁻¹ = diag(2, (FᵀF)⁻¹) = diag(2, F⁻¹F⁻ᵀ), F lower triangular with
// F_ii = 1 + √(i/9), F_i,i−1 = −2, F_i,i−2 = 1 (D·D plus the diagonal). Each entry (i, j) is
// Σ_k F⁻¹_ik F⁻¹_jk summed in the same order as (j, i), so the matrix is exactly symmetric.
std::string default_prior() {
  std::array<std::array<double, kTaps>, kTaps> f{}, finv{};
  for (std::size_t i = 0; i < kTaps; ++i) {
    f[i][i] = 1.0 + std::sqrt(static_cast<double>(i) / static_cast<double>(kTaps));
    if (i >= 1) f[i][i - 1] = -2.0;
    if (i >= 2) f[i][i - 2] = 1.0;
  }
  for (std::size_t c = 0; c < kTaps; ++c) {  // forward substitution, column c of F⁻¹
    for (std::size_t i = c; i < kTaps; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (std::size_t k = c; k < i; ++k) s -= f[i][k] * finv[k][c];
      finv[i][c] = s / f[i][i];
    }
  }
  std::array<std::array<double, kDim>, kDim> cov{};
  cov[0][0] = 2.0;  // 1 / B00
  for (std::size_t i = 0; i < kTaps; ++i)
    for (std::size_t j = 0; j < kTaps; ++j) {
      double s = 0;
      for (std::size_t k = 0; k < kTaps; ++k) s += finv[i][k] * finv[j][k];
      cov[i + 1][j + 1] = s;
    }
  std::string spec = "mvnormal(0, [";
  for (std::size_t i = 0; i < kDim; ++i) {
    spec += i == 0 ? "[" : ", [";
    for (std::size_t j = 0; j < kDim; ++j) {
      if (j > 0) spec += ", ";
      char buf[32];
      const auto res = std::to_chars(buf, buf + sizeof buf, cov[i][j]);  // shortest round trip
      spec.append(buf, res.ptr);
    }
    spec += ']';
  }
  return spec + "])";
}

class BernoulliGlm {
 public:
  explicit BernoulliGlm(const fsbi::sdk::Options& /*options*/) : x_(design_matrix()) {}

  fsbi::sdk::Info info() const {
    fsbi::sdk::Info inf;
    for (std::size_t i = 1; i <= kDim; ++i) {
      inf.parameter_names.push_back("parameter_" + std::to_string(i));
      inf.data_names.push_back("data_" + std::to_string(i));
    }
    inf.default_prior = default_prior();
    return inf;
  }

  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    rng.fill_uniform(u_);
    for (std::size_t j = 0; j < kDim; ++j) x[j] = 0.0;
    for (std::size_t t = 0; t < kBins; ++t) {
      if (!(u_[t] < rate(theta, t))) continue;  // y_t = 0
      for (std::size_t j = 0; j < kDim; ++j) x[j] += x_[t][j];
    }
  }

  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    for (std::size_t j = 0; j < kDim; ++j) score[j] = x[j];
    for (std::size_t t = 0; t < kBins; ++t) {
      const double z = rate(theta, t);
      for (std::size_t j = 0; j < kDim; ++j) score[j] -= z * x_[t][j];
    }
  }

 private:
  // z_t = logistic(ψ_t), ψ_t = Σ_j X[t,j] θ_j.
  double rate(std::span<const double> theta, std::size_t t) const {
    double psi = 0;
    for (std::size_t j = 0; j < kDim; ++j) psi += x_[t][j] * theta[j];
    return 1.0 / (1.0 + std::exp(-psi));
  }

  Design x_;                          // design matrix, computed once per instance
  std::array<double, kBins> u_{};     // per-instance scratch
};

}  // namespace

FSBI_SIMULATOR(BernoulliGlm, "bernoulli_glm", "1.0.0",
               "sbibm task bernoulli_glm: spike counts of a Bernoulli GLM neuron, sufficient statistics X^T y, theta and x in R^10")
