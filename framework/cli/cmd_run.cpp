// `fsbi run`: simulate → train → sample into one HDF5 file.
//
// Each stage writes its own file next to the output (OUTPUT.simulations.h5, OUTPUT.model.h5) with
// the stage's own resume mechanism, so an interrupted run continues with --resume at the stage it
// was in; the final OUTPUT holds /simulations, /model and the posterior groups, and the stage
// files are removed once it is written.
#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/score_recentring.hpp"
#include "fsbi/sequential.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/trainer.hpp"
#include "output_path.hpp"
#include "recentring_file.hpp"
#include "sample_command.hpp"
#include "sequential_file.hpp"
#include "training_options.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

namespace fsbi::cli {

namespace fs = std::filesystem;

namespace {

// Several i.i.d. observations add the learned score's mean error once per observation, so by
// default a share of the budget goes to recentring the score at the posterior
// (fsbi/score_recentring.hpp, docs/sampling.md "Several observations").
constexpr double default_recentring_share = 0.2;

// The recentring simulations of `n`: `requested` (−1: the default share with several
// observations, none with one or when the share is below the minimum). Throws UsageError for a
// count the run cannot spend.
std::uint64_t recentring_simulations(std::int64_t requested, std::uint64_t n, Eigen::Index observations) {
  if (requested < -1)
    throw UsageError(fmt::format("--recentring-simulations must be 0 (off), at least {}, or -1 (default), not {}",
                                 min_recentring_simulations, requested));
  if (requested == -1) {
    // Too small a budget to spare the minimum: no recentring.
    const auto k = static_cast<std::uint64_t>(default_recentring_share * static_cast<double>(n));
    return observations >= 2 && k >= static_cast<std::uint64_t>(min_recentring_simulations) ? k : 0;
  }
  const auto k = static_cast<std::uint64_t>(requested);
  if (k != 0 && k < static_cast<std::uint64_t>(min_recentring_simulations))
    throw UsageError(fmt::format("--recentring-simulations must be 0 (off) or at least {}, not {}",
                                 min_recentring_simulations, k));
  if (k != 0 && 2 * k > n)
    throw UsageError(fmt::format("--recentring-simulations {} would take more than half of the {} simulations; "
                                 "give at most {} or a larger --num-simulations",
                                 k, n, n / 2));
  return k;
}

// `fsbi run --rounds R` with R > 1: the rounds' stage files (OUTPUT.round<r>.*.h5), then the
// posterior of the last round's model into OUTPUT, whose /simulations pools every round's pairs
// and whose /rounds keeps each round's proposal and model.
int run_rounds(const Simulator* sim, std::shared_ptr<const Prior> prior, const std::string& prior_source, const Table& obs,
               const std::string& observation, const std::string& output, std::uint64_t n, std::uint64_t seed,
               int threads, bool resume, bool quiet, const SequentialSettings& sq, TrainingSettings ts,
               SamplingCliOptions& so, std::uint64_t recentring_k) {
  SequentialInputs in;
  in.simulator = sim;
  in.prior = std::move(prior);
  in.prior_source = prior_source;
  in.observations = obs;
  in.simulation.num_simulations = n - recentring_k;
  in.simulation.seed = seed;
  in.simulation.threads = threads;
  in.simulation.progress = quiet ? ProgressMode::quiet : ProgressMode::automatic;
  ts.seed = seed;
  ts.threads = threads;
  ts.progress = in.simulation.progress;
  in.training = ts;
  in.posterior = so.options;
  in.sampler_method = so.method;
  in.posterior.sampler.progress = quiet ? ProgressMode::quiet : ProgressMode::automatic;
  in.sequential = sq;
  in.resume = resume;
  if (!quiet)
    in.log = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  const SequentialReport rep = run_sequential(in, output);
  if (!quiet) std::printf("[3/3] sampling the posterior for %lld observation(s)\n", static_cast<long long>(obs.rows()));
  Posterior post = Posterior::load(rep.model);
  so.options.training_proposal = rep.proposal;
  std::optional<RecentringPass> recentring;
  const PosteriorDraws draws = draw_recentred(post, *sim, obs, so, seed, threads, quiet, recentring_k,
                                              n - recentring_k, recentring);
  write_posterior_file(output, rep.model, draws, obs, observation, seed, rep.pooled, [&](h5::File& f) {
    write_rounds(f, output, rep);
    if (recentring) write_recentring(f, recentring->estimate, seed, n - recentring_k, recentring->preliminary_chains);
  });
  std::error_code ec;
  for (const auto& f : sequential_stage_files(output, sq.rounds)) fs::remove(f, ec);
  print_summary(draws, quiet);
  if (!quiet)
    std::printf("wrote %s: /simulations (%llu pairs over %d rounds), /rounds,%s /model and %lld posterior samples\n",
                output.c_str(), static_cast<unsigned long long>(n - recentring_k), sq.rounds,
                recentring ? " /recentring," : "", static_cast<long long>(draws.theta.rows()));
  if (!quiet) std::printf("does the posterior reproduce the observation? fsbi check %s\n", output.c_str());
  return exit_ok;
}

}  // namespace

int cmd_run(const Args& args) {
  po::options_description desc("fsbi run options");
  std::string simulator, observation, output, prior_spec;
  std::uint64_t n = 0, seed = 0;
  int threads = 0;
  std::vector<std::string> sim_opts, plugin_path;
  TrainingCliOptions topts;
  TrainingSettings& ts = topts.settings;
  SamplingCliOptions so;
  SequentialSettings sq;
  std::int64_t recentring_requested = -1;
  desc.add_options()
      ("simulator,s", po::value(&simulator)->required(), "simulator name or plugin path")
      ("observation", po::value(&observation)->required(), "observed data (CSV, one row per i.i.d. observation)")
      ("num-simulations,n", po::value(&n)->required(), "simulation budget")
      ("output,o", po::value(&output)->required(), "run file to write: /simulations, /model and the posterior")
      ("seed", po::value(&seed)->default_value(0), "seed of every stage")
      ("threads,t", po::value(&threads)->default_value(0), "threads (0: all cores)")
      ("prior", po::value(&prior_spec), "prior spec overriding the simulator's default")
      ("sim-opt", po::value(&sim_opts)->composing(), "simulator option KEY=VALUE (repeatable)")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins")
      ("resume", "continue an interrupted run at the stage it was in")
      ("overwrite", "replace OUTPUT if it exists")
      ("quiet,q", "no progress output")
      ("rounds", po::value(&sq.rounds)->default_value(sq.rounds),
       "sequential rounds: 1 trains on prior draws (amortised); R > 1 simulates later rounds from proposals "
       "fitted to the posterior (docs/sequential.md)")
      ("first-round-fraction", po::value(&sq.first_round_fraction)->default_value(sq.first_round_fraction),
       "share of the budget drawn from the prior in round 1 (0: equal rounds)")
      ("proposal-components", po::value(&sq.components)->default_value(sq.components),
       "Gaussian-mixture components of each round's proposal")
      ("proposal-widen", po::value(&sq.widen)->default_value(sq.widen),
       "proposal standard deviations × this")
      ("defensive-fraction", po::value(&sq.defensive_fraction)->default_value(sq.defensive_fraction),
       "share of each proposal drawn from the prior")
      ("proposal-samples", po::value(&sq.proposal_samples)->default_value(sq.proposal_samples),
       "posterior samples each proposal is fitted to")
      ("truncated-share", po::value(&sq.truncated_share)->default_value(sq.truncated_share),
       "share of each proposal's focused draws from the prior truncated to the mixture's region (0: the mixture "
       "alone, 1: the truncated prior alone)")
      ("recentring-simulations", po::value(&recentring_requested)->default_value(-1),
       "simulations (out of the budget) at posterior draws that recentre the learned score; -1: a fifth of the "
       "budget with several observations, none with one; 0: off (docs/sampling.md)")
      ("truncation-quantile", po::value(&sq.truncation_quantile)->default_value(sq.truncation_quantile),
       "the region's edge: this quantile of the mixture's log density over the posterior samples");
  topts.add_to(desc);
  add_sampling_options(desc, so);
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi run --simulator NAME|PATH --observation FILE --num-simulations N --output FILE "
                  "[--num-samples M] [--seed S] [--threads T] [...]",
                  desc, vm))
    return exit_ok;
  const bool quiet = vm.count("quiet") > 0, resume = vm.count("resume") > 0;
  // Stage lines go out as they happen, also into a pipe or a log file (they time the stages).
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (const std::string problem = output_path_problem(output, vm.count("overwrite") > 0); !problem.empty())
    throw std::runtime_error(problem);
  std::error_code ec;
  topts.finish(vm);
  check_sampling_options(so);
  if (n < static_cast<std::uint64_t>(min_training_simulations))
    throw UsageError(fmt::format("--num-simulations {}: fsbi run trains on its simulations, which needs at least {}",
                                 n, min_training_simulations));

  // Check everything cheap before the expensive stages.
  SimulatorOptions options;
  try {
    options = parse_simulator_options(sim_opts);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  auto sim = open_simulator(simulator, options, plugin_path);
  const Table obs = read_table(observation, sim->data_dim(), "observation",
                               fmt::format("simulator '{}' produces {}", sim->name(), sim->data_dim()));
  std::string source = "--prior";
  if (prior_spec.empty()) {
    if (!sim->default_prior())
      throw UsageError(fmt::format("simulator '{}' declares no default prior; give one with --prior", sim->name()));
    prior_spec = *sim->default_prior();
    source = "simulator default";
  }
  auto prior = parse_prior(prior_spec, sim->parameter_dim());
  const std::uint64_t recentring_k = recentring_simulations(recentring_requested, n, obs.rows());

  if (sq.rounds != 1) return run_rounds(sim.get(), std::move(prior), source, obs, observation, output, n, seed, threads, resume,
                                        quiet, sq, ts, so, recentring_k);
  const std::uint64_t n_train = n - recentring_k;
  const std::string sims_file = output + ".simulations.h5", model_file = output + ".model.h5";
  // Stage 1: simulations.
  if (fs::exists(sims_file, ec) && resume) {
    if (!quiet) std::printf("[1/3] simulations: reusing %s\n", sims_file.c_str());
  } else {
    if (!quiet) std::printf("[1/3] simulating %llu × %s\n", static_cast<unsigned long long>(n_train), sim->name().c_str());
    SimulationSettings st;
    st.num_simulations = n_train;
    st.seed = seed;
    st.threads = threads;
    st.progress = quiet ? ProgressMode::quiet : ProgressMode::automatic;
    st.resume = resume && fs::exists(partial_path(sims_file), ec);
    st.overwrite = !resume;
    run_simulations(*sim, *prior, source, st, sims_file);
  }
  // Stage 2: training.
  if (fs::exists(model_file, ec) && resume) {
    if (!quiet) std::printf("[2/3] model: reusing %s\n", model_file.c_str());
  } else {
    if (!quiet) std::printf("[2/3] training the %s score model\n", ts.model_kind.c_str());
    ts.seed = seed;
    ts.threads = threads;
    ts.progress = quiet ? ProgressMode::quiet : ProgressMode::automatic;
    ts.resume = resume && fs::exists(model_file + ".checkpoint", ec);
    ts.overwrite = !resume;
    const auto r = train_score_model(sims_file, ts, model_file);
    if (!quiet)
      std::printf("      %d epochs, best validation loss %.6g at epoch %d\n", r.epochs, r.best_validation_loss,
                  r.best_epoch);
  }
  // Stage 3: sampling, then the single run file.
  if (!quiet) std::printf("[3/3] sampling the posterior for %lld observation(s)\n", static_cast<long long>(obs.rows()));
  Posterior post = Posterior::load(model_file);
  std::optional<RecentringPass> recentring;
  const PosteriorDraws draws =
      draw_recentred(post, *sim, obs, so, seed, threads, quiet, recentring_k, n_train, recentring);
  write_posterior_file(output, model_file, draws, obs, observation, seed, sims_file, [&](h5::File& f) {
    if (recentring) write_recentring(f, recentring->estimate, seed, n_train, recentring->preliminary_chains);
  });
  fs::remove(sims_file, ec);
  fs::remove(model_file, ec);
  print_summary(draws, quiet);
  if (!quiet) std::printf("wrote %s: /simulations,%s /model and %lld posterior samples\n", output.c_str(),
                          recentring ? " /recentring," : "", static_cast<long long>(draws.theta.rows()));
  if (!quiet) std::printf("does the posterior reproduce the observation? fsbi check %s\n", output.c_str());
  return exit_ok;
}

}  // namespace fsbi::cli
