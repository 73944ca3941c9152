// decay_counts — an example fsbi simulator plugin, built out of tree against an installed fsbi.
//
// The model: a radioactive source is watched by a detector that counts decays in consecutive
// time bins, on top of a constant background. Given the counts, what are the source's initial
// activity and its decay rate (equivalently, its half-life)?
//
//   parameters  θ = (log_activity, log_decay_rate)
//               A = exp(θ0)  detected decays per second at t = 0
//               λ = exp(θ1)  decay rate per second (half-life ln 2 / λ)
//   data        x_j = counts in bin j = 0 .. bins-1, bin j covering [j·Δt, (j+1)·Δt)
//               x_j ~ Poisson(μ_j),  μ_j = A ∫ e^{-λt} dt over the bin + b·Δt
//                                      = A e^{-λ t_j} (1 - e^{-λΔt}) / λ + b·Δt
//   options     bins=INT (10), bin_width=FLOAT seconds (1.0), background=FLOAT counts/s (1.0)
//   prior       normal([4, -1], [0.5, 0.5]): A around 55/s, half-life around 1.9 s
//
// It shows everything a plugin usually needs: option validation with helpful messages,
// dimensions that depend on the options, a default prior, a failure reported by throwing, all
// randomness drawn from the host's stream, and the optional analytic likelihood score.
#include <fsbi/sdk.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// log(k!) — exact sum for small k, Stirling's series (error < 1e-12) beyond.
double log_factorial(double k) {
  if (k < 16) {
    double s = 0;
    for (int i = 2; i <= static_cast<int>(k); ++i) s += std::log(static_cast<double>(i));
    return s;
  }
  const double inv = 1 / k, inv2 = inv * inv;
  return k * std::log(k) - k + 0.5 * std::log(2 * std::numbers::pi * k) +
         inv * (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 / 1680)));
}

// One Poisson(mean) variate from the host's stream. Exact in both branches: inversion for small
// means, Hörmann's transformed rejection (PTRS, 1993) for large ones. The number of draws varies
// from call to call, which is fine: each simulation has its own stream, so the result is still a
// pure function of (run seed, simulation index). Never use <random>'s distributions here: their
// algorithms differ between standard libraries, so runs would not reproduce across platforms.
double poisson(double mean, fsbi::sdk::Rng& rng) {
  if (mean <= 0) return 0;
  if (mean < 10) {
    const double u = rng.uniform();
    double k = 0, p = std::exp(-mean), cdf = p;
    while (u > cdf && k < 1000) {
      k += 1;
      p *= mean / k;
      cdf += p;
    }
    return k;
  }
  const double slam = std::sqrt(mean), loglam = std::log(mean);
  const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  const double invalpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const double u = rng.uniform() - 0.5, v = rng.uniform();
    const double us = 0.5 - std::abs(u);
    const double k = std::floor((2 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (std::log(v) + std::log(invalpha) - std::log(a / (us * us) + b) <=
        -mean + k * loglam - log_factorial(k))
      return k;
  }
}

class DecayCounts {
 public:
  // Shown by `fsbi plugins --verbose` and in the message for an unknown option.
  static constexpr const char* options_help =
      "bins=INT          number of counting bins, 1..10000 (default 10)\n"
      "bin_width=FLOAT   bin width in seconds, > 0 (default 1.0)\n"
      "background=FLOAT  background rate in counts per second, >= 0 (default 1.0)";

  // Constructed once on the main thread (for the metadata and the score) and once per worker
  // thread. Validate every option here: throwing OptionError turns into a clear error before any
  // simulation runs. Every option must be read with a get_*() call, so typos are reported.
  explicit DecayCounts(const fsbi::sdk::Options& options)
      : bins_(static_cast<int>(options.get_int("bins", 10, 1, 10000))),
        bin_width_(options.get_double("bin_width", 1.0)),
        background_(options.get_double("background", 1.0)) {
    if (!(bin_width_ > 0) || !std::isfinite(bin_width_))
      throw fsbi::sdk::OptionError("option 'bin_width': must be a positive number of seconds, got " +
                                   options.get_string("bin_width", ""));
    if (!(background_ >= 0) || !std::isfinite(background_))
      throw fsbi::sdk::OptionError("option 'background': must be >= 0 counts per second, got " +
                                   options.get_string("background", ""));
    mean_.resize(static_cast<std::size_t>(bins_));
  }

  // Names (their number gives the dimensions, here depending on `bins`) and the default prior.
  fsbi::sdk::Info info() const {
    fsbi::sdk::Info result{.parameter_names = {"log_activity", "log_decay_rate"},
                           .data_names = {},
                           .default_prior = "normal([4, -1], [0.5, 0.5])"};
    for (int j = 1; j <= bins_; ++j) result.data_names.push_back("counts_" + std::to_string(j));
    return result;
  }

  // One simulation: θ has 2 entries, x has `bins` entries. Called by one thread at a time per
  // object, so the member scratch buffer mean_ needs no lock.
  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    expected_counts(theta, mean_);
    for (int j = 0; j < bins_; ++j) {
      // Throwing marks just this simulation as failed, with this message; the run goes on.
      if (!std::isfinite(mean_[j]) || mean_[j] > 1e15)
        throw std::runtime_error("expected count " + std::to_string(mean_[j]) + " in bin " +
                                 std::to_string(j + 1) +
                                 " is out of range; narrow the prior on log_activity");
      x[j] = poisson(mean_[j], rng);
    }
  }

  // Optional: the analytic score ∇θ log p(x|θ), which fsbi's tests and benchmarks compare a
  // learned score against. log p = Σ_j x_j log μ_j − μ_j − log x_j!, so
  // ∂/∂θ_i log p = Σ_j (x_j/μ_j − 1) ∂μ_j/∂θ_i. It is const and may run on several threads at
  // once, so it uses locals only, never the scratch members.
  void likelihood_score(std::span<const double> theta, std::span<const double> x,
                        std::span<double> score) const {
    const double activity = std::exp(theta[0]), rate = std::exp(theta[1]);
    const double fraction = -std::expm1(-rate * bin_width_);  // 1 - e^{-λΔt}
    score[0] = score[1] = 0;
    for (int j = 0; j < bins_; ++j) {
      const double t0 = j * bin_width_, t1 = t0 + bin_width_;
      const double e0 = std::exp(-rate * t0), e1 = std::exp(-rate * t1);
      const double signal = activity * e0 * fraction / rate;           // ∂μ_j/∂θ0
      const double d_rate = activity * (t1 * e1 - t0 * e0) - signal;  // ∂μ_j/∂θ1 = λ ∂μ_j/∂λ
      const double w = x[j] / (signal + background_ * bin_width_) - 1;
      score[0] += w * signal;
      score[1] += w * d_rate;
    }
  }

 private:
  // μ_j for all bins.
  void expected_counts(std::span<const double> theta, std::span<double> mean) const {
    const double activity = std::exp(theta[0]), rate = std::exp(theta[1]);
    const double fraction = -std::expm1(-rate * bin_width_);  // accurate for small λΔt
    for (int j = 0; j < bins_; ++j)
      mean[j] = activity * std::exp(-rate * j * bin_width_) * fraction / rate +
                background_ * bin_width_;
  }

  int bins_;
  double bin_width_;
  double background_;
  std::vector<double> mean_;  // per-thread scratch
};

}  // namespace

// The one line that makes this a plugin: exports the entry object `fsbi_simulator_entry`.
// Name ([a-z0-9_]+, what `--simulator decay_counts` looks for), version, one-line description.
FSBI_SIMULATOR(DecayCounts, "decay_counts", "1.0.0",
               "radioactive decay: Poisson counts in time bins over a constant background")
