// Benchmark simulator with a set cost: `iterations` rounds of dependent floating-point
// arithmetic per simulation (no clock calls, no sleeping), then x = θ + noise.
#include <fsbi/sdk.hpp>

#include <cmath>

class Busy {
 public:
  static constexpr const char* options_help =
      "iterations=INT  arithmetic rounds per simulation (default 0: a trivial simulator)";
  explicit Busy(const fsbi::sdk::Options& o) : iterations_(o.get_int("iterations", 0, 0, 1'000'000'000)) {}
  fsbi::sdk::Info info() const { return {{"theta"}, {"x"}, "uniform(-1, 1)"}; }
  void simulate(std::span<const double> theta, std::span<double> x, fsbi::sdk::Rng& rng) {
    double acc = theta[0];
    for (long long i = 0; i < iterations_; ++i) acc = acc * 0.999999 + 1e-7 * std::sqrt(acc * acc + 1.0);
    x[0] = theta[0] + 0.1 * rng.normal() + 1e-300 * acc;
  }

 private:
  long long iterations_;
};

FSBI_SIMULATOR(Busy, "busy", "1.0.0", "benchmark simulator with a set cost per call")
