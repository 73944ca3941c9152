#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/simulation.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fsbi::cli {

int cmd_simulate(const Args& args) {
  po::options_description desc("fsbi simulate options");
  std::string simulator, output, prior_spec, on_failure;
  std::uint64_t n = 0, seed = 0, batch = 0;
  int threads = 0;
  double max_rate = 0;
  std::uint32_t max_attempts = 0;
  std::vector<std::string> sim_opts, plugin_path;
  desc.add_options()
      ("simulator,s", po::value(&simulator)->required(), "simulator name (see `fsbi plugins`) or path of a plugin .so")
      ("num-simulations,n", po::value(&n)->required(), "number of simulations N")
      ("output,o", po::value(&output)->required(), "HDF5 file to write (written as FILE.partial, renamed when done)")
      ("seed", po::value(&seed)->default_value(0), "run seed: row i depends only on (seed, i)")
      ("threads,t", po::value(&threads)->default_value(0), "worker threads (0: all cores); results do not depend on it")
      ("batch-size", po::value(&batch)->default_value(0), "simulations per work item (0: automatic); results do not depend on it")
      ("prior", po::value(&prior_spec), "prior spec overriding the simulator's default, e.g. 'uniform(-2, 2)' (docs/priors.md)")
      ("sim-opt", po::value(&sim_opts)->composing(), "simulator option KEY=VALUE (repeatable), e.g. --sim-opt dim=50")
      ("on-failure", po::value(&on_failure)->default_value("drop"), "failed or non-finite simulation: abort | drop | redraw (docs/simulation.md)")
      ("max-failure-rate", po::value(&max_rate)->default_value(1e-3, "0.001"), "abort once failures exceed this fraction of N")
      ("max-attempts", po::value(&max_attempts)->default_value(100), "--on-failure redraw: attempts per simulation slot")
      ("resume", "continue the interrupted run that left FILE.partial (same settings)")
      ("overwrite", "replace FILE if it exists")
      ("quiet,q", "no progress output")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins (repeatable)");
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi simulate --simulator NAME|PATH -n N -o FILE [--seed S] [--threads T] "
                  "[--prior SPEC] [--sim-opt KEY=VALUE ...] [--resume] [--quiet]",
                  desc, vm))
    return exit_ok;
  if (n == 0) throw UsageError("--num-simulations must be at least 1");

  SimulatorOptions options;
  try {
    options = parse_simulator_options(sim_opts);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  SimulationSettings st;
  st.num_simulations = n;
  st.seed = seed;
  st.threads = threads;
  st.batch_size = batch;
  try {
    st.on_failure = parse_failure_policy(on_failure);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  st.max_failure_rate = max_rate;
  st.max_attempts = max_attempts;
  st.resume = vm.count("resume") > 0;
  st.overwrite = vm.count("overwrite") > 0;
  st.progress = vm.count("quiet") ? ProgressMode::quiet : ProgressMode::automatic;

  auto sim = open_simulator(simulator, options, plugin_path);
  std::string source = "--prior";
  if (prior_spec.empty()) {
    if (!sim->default_prior())
      throw UsageError(fmt::format("simulator '{}' declares no default prior; give one with --prior, "
                                   "e.g. --prior 'uniform(-1, 1)'",
                                   sim->name()));
    prior_spec = *sim->default_prior();
    source = "simulator default";
  }
  std::unique_ptr<Prior> prior;
  try {
    prior = parse_prior(prior_spec, sim->parameter_dim());
  } catch (const PriorSpecError& e) {
    if (source == "--prior") throw;
    // Not the user's mistake: the plugin declares a default prior fsbi cannot use.
    throw std::runtime_error(fmt::format("simulator '{}' declares an invalid default prior ({}); "
                                         "give one with --prior",
                                         sim->name(), e.what()));
  }

  const auto r = run_simulations(*sim, *prior, source, st, output);
  if (!vm.count("quiet")) {
    std::printf("wrote %s: %llu rows (theta: %d, x: %d), %llu failed, seed %llu, simulator %s %s, prior %s",
                output.c_str(), static_cast<unsigned long long>(r.rows), sim->parameter_dim(),
                sim->data_dim(), static_cast<unsigned long long>(r.failed),
                static_cast<unsigned long long>(seed), sim->name().c_str(), sim->version().c_str(),
                prior->spec().c_str());
    if (r.resumed_from) std::printf(", resumed at simulation %llu", static_cast<unsigned long long>(r.resumed_from));
    std::printf(", %s\n", format_duration(r.seconds).c_str());
  }
  return exit_ok;
}

}  // namespace fsbi::cli
