// Simulation engine throughput: the engine (pipeline + HDF5 writing) against a plain loop that
// calls the same simulator on one thread, for a simulator with a set cost per call.
//
//   bench/simulation_throughput [--cost-us 20] [--n-costly 200000] [--n-trivial 4000000]
//
// Reports (1) the engine's parallel efficiency on 2 threads: plain-loop time / (2 × engine time),
// HDF5 writing included; (2) the engine's per-simulation overhead on one thread for a trivial
// simulator: (engine time − plain-loop time) / N.
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/simulation.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

double plain_loop_seconds(const fsbi::Simulator& sim, const fsbi::Prior& prior, std::uint64_t n,
                          std::uint64_t batch) {
  auto inst = sim.create_instance();
  std::vector<std::uint64_t> idx(batch);
  std::vector<std::uint32_t> att(batch, 0);
  std::vector<double> theta(batch), x(batch);
  std::vector<std::uint8_t> ok(batch);
  double sink = 0;
  const auto t0 = Clock::now();
  for (std::uint64_t first = 0; first < n; first += batch) {
    const std::uint64_t m = std::min(batch, n - first);
    for (std::uint64_t i = 0; i < m; ++i) {
      idx[i] = first + i;
      fsbi::CounterRng rng(1, fsbi::Stream::prior, idx[i], 0);
      prior.sample(rng, {&theta[i], 1});
    }
    inst->simulate(1, {idx.data(), m}, {att.data(), m}, {theta.data(), m}, {x.data(), m}, {ok.data(), m});
    sink += x[0];
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (sink == 12345.678) std::puts("");
  return s;
}

double engine_seconds(const fsbi::Simulator& sim, const fsbi::Prior& prior, std::uint64_t n, int threads,
                      const std::string& dir) {
  fsbi::SimulationSettings st;
  st.num_simulations = n;
  st.seed = 1;
  st.threads = threads;
  st.progress = fsbi::ProgressMode::quiet;
  st.overwrite = true;
  const std::string out = dir + "/bench.h5";
  const auto t0 = Clock::now();
  fsbi::run_simulations(sim, prior, "bench", st, out);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::filesystem::remove(out);
  return s;
}

long long calibrate_iterations(const std::string& plugin, double cost_us) {
  // Time a known iteration count on a plain loop, scale to the target cost.
  const long long probe = 20000;
  auto sim = fsbi::open_simulator(plugin, {{"iterations", std::to_string(probe)}});
  auto prior = fsbi::parse_prior("uniform(-1, 1)", 1);
  const std::uint64_t n = 2000;
  const double s = plain_loop_seconds(*sim, *prior, n, 64);
  return static_cast<long long>(static_cast<double>(probe) * cost_us * 1e-6 / (s / static_cast<double>(n)));
}

}  // namespace

int main(int argc, char** argv) {
  double cost_us = 20;
  std::uint64_t n_costly = 200000, n_trivial = 4000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cost-us")) cost_us = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--n-costly")) n_costly = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--n-trivial")) n_trivial = std::strtoull(argv[i + 1], nullptr, 10);
  }
  const std::string plugin = FSBI_BENCH_PLUGIN;
  const std::string dir = std::filesystem::temp_directory_path().string();
  auto prior = fsbi::parse_prior("uniform(-1, 1)", 1);

  const long long iters = calibrate_iterations(plugin, cost_us);
  auto costly = fsbi::open_simulator(plugin, {{"iterations", std::to_string(iters)}});
  const double plain = plain_loop_seconds(*costly, *prior, n_costly, 64);
  const double e1 = engine_seconds(*costly, *prior, n_costly, 1, dir);
  const double e2 = engine_seconds(*costly, *prior, n_costly, 2, dir);
  fmt::print("costly simulator: {:.2f} us per call (plain loop), N = {}\n", 1e6 * plain / n_costly, n_costly);
  fmt::print("  plain loop, 1 thread : {:8.3f} s  {:10.0f} sim/s\n", plain, n_costly / plain);
  fmt::print("  engine,     1 thread : {:8.3f} s  {:10.0f} sim/s  efficiency {:.1f}%\n", e1, n_costly / e1, 100 * plain / e1);
  fmt::print("  engine,     2 threads: {:8.3f} s  {:10.0f} sim/s  parallel efficiency {:.1f}% of 2x the plain loop\n",
             e2, n_costly / e2, 100 * plain / (2 * e2));

  auto trivial = fsbi::open_simulator(plugin, {{"iterations", "0"}});
  const double tp = plain_loop_seconds(*trivial, *prior, n_trivial, 4096);
  const double t1 = engine_seconds(*trivial, *prior, n_trivial, 1, dir);
  const double t2 = engine_seconds(*trivial, *prior, n_trivial, 2, dir);
  fmt::print("trivial simulator, N = {}\n", n_trivial);
  fmt::print("  plain loop, 1 thread : {:8.3f} s  {:8.3f} us/sim\n", tp, 1e6 * tp / n_trivial);
  fmt::print("  engine,     1 thread : {:8.3f} s  {:8.3f} us/sim  overhead {:.3f} us/sim\n", t1,
             1e6 * t1 / n_trivial, 1e6 * (t1 - tp) / n_trivial);
  fmt::print("  engine,     2 threads: {:8.3f} s  {:8.3f} us/sim\n", t2, 1e6 * t2 / n_trivial);
  return 0;
}
