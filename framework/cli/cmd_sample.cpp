#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/posterior.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/score_recentring.hpp"
#include "fsbi/version.hpp"
#include "model_file.hpp"
#include "output_path.hpp"
#include "posterior_file.hpp"
#include "recentring_file.hpp"
#include "sample_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace fsbi::cli {

namespace fs = std::filesystem;

namespace {

// `fsbi sample --recentring-simulations`: pair j simulates with the stream (seed, simulator,
// 2^40 + j), beyond the slots of any simulation file, so that a model trained on pairs of the
// same seed does not see its own training noise again.
constexpr std::uint64_t sample_recentring_first_index = std::uint64_t{1} << 40;

// The preliminary posterior of a recentring pass runs at least this many chains (or all of them,
// if fewer), so that its draws cover every mode the starts reach even when k is small.
constexpr int preliminary_min_chains = 200;

}  // namespace

void add_sampling_options(po::options_description& desc, SamplingCliOptions& o) {
  desc.add_options()
      ("num-samples", po::value(&o.num_samples)->default_value(10000), "posterior samples to draw (chains × draws)")
      ("chains", po::value(&o.options.sampler.chains)->default_value(o.options.sampler.chains), "parallel chains")
      ("method", po::value(&o.method)->default_value("auto"),
       "auto | mala | smc | ula (auto: mala for energy models, ula for vector models)")
      ("warmup", po::value(&o.options.sampler.warmup)->default_value(o.options.sampler.warmup), "adaptation steps per chain")
      ("thin", po::value(&o.options.sampler.thin)->default_value(o.options.sampler.thin),
       "keep every THIN-th step after warm-up (MCMC)")
      ("init", po::value(&o.options.init)->default_value(o.options.init),
       "chain starts: nearest (θ of the training pairs whose x is nearest the observations) | prior")
      ("step-size", po::value(&o.options.sampler.step_size)->default_value(0, "auto"), "sampler step (0: automatic)")
      ("inference-prior", po::value(&o.prior),
       "replace the prior at inference time (must lie within the training prior's support)");
}

void check_sampling_options(const SamplingCliOptions& o) {
  if (o.num_samples < 1) throw UsageError(fmt::format("--num-samples {}: give at least 1", o.num_samples));
  if (const std::string problem = sampler_settings_problem(o.options.sampler); !problem.empty())
    throw UsageError("sampling options: " + problem);
  if (o.method != "auto") {
    try {
      parse_sampler_method(o.method);
    } catch (const std::invalid_argument&) {
      throw UsageError(fmt::format("--method '{}': give auto, mala, smc or ula", o.method));
    }
  }
  if (o.options.init != "nearest" && o.options.init != "prior")
    throw UsageError(fmt::format("--init '{}': give nearest or prior", o.options.init));
}

PosteriorDraws draw_posterior(Posterior& post, const Table& obs, SamplingCliOptions& o, std::uint64_t seed,
                              int threads, bool quiet) {
  if (!o.prior.empty()) post.set_prior(parse_prior(o.prior, post.model().theta_dim()));
  PosteriorOptions opts = o.options;
  opts.sampler.seed = seed;
  opts.sampler.threads = threads;
  opts.sampler.progress = quiet ? ProgressMode::quiet : ProgressMode::automatic;
  opts.sampler.method = o.method == "auto" ? (post.model().is_energy() ? SamplerMethod::mala : SamplerMethod::ula)
                                           : parse_sampler_method(o.method);
  return post.sample(obs, o.num_samples, opts);
}

void write_posterior_file(const std::string& output, const std::string& model_path, const PosteriorDraws& draws,
                          const Table& obs, const std::string& observation_source, std::uint64_t seed,
                          const std::string& base, const std::function<void(h5::File&)>& extra) {
  const StoredModel model = read_model(model_path);
  PosteriorSamples ps;
  ps.parameter_names = draws.parameter_names;
  ps.chains = draws.chains;
  ps.draws = draws.draws;
  ps.theta.assign(draws.theta.data(), draws.theta.data() + draws.theta.size());
  const auto& r = draws.result;
  if (!r.log_density.empty()) {
    std::vector<double> lp;
    for (const auto& c : r.log_density) lp.insert(lp.end(), c.data(), c.data() + c.size());
    if (lp.size() == static_cast<std::size_t>(ps.chains) * static_cast<std::size_t>(ps.draws))
      ps.stats.emplace_back("lp", lp);
  }
  std::vector<double> acc, step;
  for (int c = 0; c < ps.chains; ++c)
    for (int t = 0; t < ps.draws; ++t) {
      acc.push_back(r.acceptance_rate.empty() ? std::nan("") : r.acceptance_rate[static_cast<std::size_t>(c)]);
      step.push_back(r.step_size.empty() ? std::nan("") : r.step_size[static_cast<std::size_t>(c)]);
    }
  ps.stats.emplace_back("acceptance_rate", acc);
  ps.stats.emplace_back("step_size", step);
  ps.data_names = model.info.data_names;
  ps.observations = obs;
  ps.attributes = {{"sampler", draws.method},
                   {"init", draws.init},
                   {"seed", std::to_string(seed)},
                   {"observation_source", observation_source},
                   {"model", model_path},
                   {"simulator_name", model.info.simulator_name},
                   {"prior", model.info.prior}};
  ps.rhat.assign(r.rhat.data(), r.rhat.data() + r.rhat.size());
  ps.ess.assign(r.ess.data(), r.ess.data() + r.ess.size());
  const std::string partial = output + ".partial";
  {
    if (!base.empty()) fs::copy_file(base, partial, fs::copy_options::overwrite_existing);
    h5::File f = base.empty() ? h5::File::create(partial) : h5::File::open(partial, h5::Access::read_write);
    write_model(f, model);
    write_posterior(f, ps);
    if (extra) extra(f);
    f.close();
  }
  fs::rename(partial, output);
}

PosteriorDraws draw_recentred(Posterior& post, const Simulator& sim, const Table& obs, SamplingCliOptions& so,
                              std::uint64_t seed, int threads, bool quiet, std::uint64_t k, std::uint64_t first_index,
                              std::optional<RecentringPass>& recentring) {
  if (k == 0) return draw_posterior(post, obs, so, seed, threads, quiet);
  // The preliminary posterior only has to supply k draws. Warm-up is most of a chain's cost, so it
  // runs as many chains as k draws need at the final pass's draws per chain, not all of them.
  SamplingCliOptions pre = so;
  const int chains = std::max(1, so.options.sampler.chains);
  const auto per_chain = static_cast<std::uint64_t>(std::max(1, (so.num_samples + chains - 1) / chains));
  pre.options.sampler.chains = static_cast<int>(
      std::clamp<std::uint64_t>((k + per_chain - 1) / per_chain, std::min(chains, preliminary_min_chains), chains));
  pre.num_samples = pre.options.sampler.chains * static_cast<int>(per_chain);
  if (!quiet)
    std::printf("      preliminary posterior (%d chains) for the recentring draws\n", pre.options.sampler.chains);
  const PosteriorDraws draws = draw_posterior(post, obs, pre, seed, threads, quiet);
  // draws.theta is samples × d, row-major: its transpose is d × samples, column-major.
  const Eigen::MatrixXd theta = evenly_spaced_draws(draws.theta.transpose(), k);
  if (!quiet)
    std::printf("      recentring the score: %lld simulations at posterior draws\n", static_cast<long long>(theta.cols()));
  ScoreRecentringSettings st;
  st.seed = seed;
  st.first_index = first_index;
  st.threads = threads;
  try {
    recentring = RecentringPass{estimate_score_offset(post.model(), sim, theta, st), pre.options.sampler.chains};
  } catch (const ScoreRecentringError& e) {
    throw ScoreRecentringError(
        fmt::format("{}; --recentring-simulations 0 samples without recentring (fsbi run: with --resume, the "
                    "simulations and the model are kept)",
                    e.what()));
  }
  const ScoreRecentring& r = recentring->estimate;
  if (!quiet) {
    const Eigen::ArrayXd z = r.offset_u.array() / r.standard_error.array();
    std::printf("      score offset per observation: largest %.3g standard errors (%s); %llu failed\n",
                z.abs().maxCoeff(), fmt::format("{:.2g}", fmt::join(r.offset_u, ", ")).c_str(),
                static_cast<unsigned long long>(r.failed));
    std::printf("      sampling again with the recentred score\n");
  }
  post.set_score_offset(r.offset_u);
  return draw_posterior(post, obs, so, seed, threads, quiet);
}

Eigen::MatrixXd evenly_spaced_draws(const Eigen::Ref<const Eigen::MatrixXd>& samples, std::uint64_t m) {
  const auto total = static_cast<std::uint64_t>(samples.cols());
  m = std::min(m, total);
  Eigen::MatrixXd theta(samples.rows(), static_cast<Eigen::Index>(m));
  for (std::uint64_t j = 0; j < m; ++j)
    theta.col(static_cast<Eigen::Index>(j)) = samples.col(static_cast<Eigen::Index>(j * total / m));
  return theta;
}

std::shared_ptr<const Simulator> open_model_simulator(const ModelInfo& info, std::string simulator,
                                                     const std::vector<std::string>& plugin_path) {
  // The model's simulator options always: `simulator` only says where to find the plugin.
  if (simulator.empty()) simulator = info.simulator_name;
  return open_simulator(simulator, parse_simulator_options(split_simulator_options(info.simulator_options)),
                        plugin_path);
}

void print_summary(const PosteriorDraws& draws, bool quiet) {
  if (quiet) return;
  const auto& t = draws.theta;
  std::printf("%d chains × %d draws (%s, starts: %s)\n", draws.chains, draws.draws, draws.method.c_str(),
              draws.init.c_str());
  std::printf("  %-16s %12s %12s %8s %8s\n", "parameter", "mean", "sd", "R-hat", "ESS");
  for (Eigen::Index j = 0; j < t.cols(); ++j) {
    const double m = t.col(j).mean();
    const double sd = std::sqrt((t.col(j).array() - m).square().sum() / std::max<Eigen::Index>(1, t.rows() - 1));
    const auto& r = draws.result;
    std::printf("  %-16s %12.5g %12.5g %8.3f %8.0f\n", draws.parameter_names[static_cast<std::size_t>(j)].c_str(), m,
                sd, j < r.rhat.size() ? r.rhat[j] : std::nan(""), j < r.ess.size() ? r.ess[j] : std::nan(""));
  }
  for (const auto& w : draws.result.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (!draws.result.escaped.empty())
    std::fprintf(stderr, "warning: %zu chains left the region the model was trained on and were dropped\n",
                 draws.result.escaped.size());
}

int cmd_sample(const Args& args) {
  po::options_description desc("fsbi sample options");
  std::string model, observation, output;
  std::uint64_t seed = 0;
  int threads = 0;
  SamplingCliOptions o;
  std::uint64_t recentring = 0;
  std::string simulator;
  std::vector<std::string> plugin_path;
  desc.add_options()
      ("model,m", po::value(&model)->required(), "model file (`fsbi train`) or run file (`fsbi run`)")
      ("observation", po::value(&observation)->required(),
       "observed data: CSV (one row per i.i.d. observation, header optional) or FILE.h5:/dataset")
      ("output,o", po::value(&output)->required(), "posterior file to write (HDF5, netCDF-4 readable)")
      ("seed", po::value(&seed)->default_value(0), "sampler seed; results do not depend on --threads")
      ("threads,t", po::value(&threads)->default_value(0), "threads (0: all cores)")
      ("overwrite", "replace OUTPUT if it exists")
      ("quiet,q", "no progress output")
      ("recentring-simulations", po::value(&recentring)->default_value(0),
       "run the model's simulator at this many posterior draws and recentre the learned score there before "
       "sampling again (0: off; worth it with several observations, docs/sampling.md)")
      ("simulator,s", po::value(&simulator), "with --recentring-simulations: simulator name or plugin path (default: "
                                             "the model's; its options are always the model's)")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins (repeatable)");
  add_sampling_options(desc, o);
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi sample --model FILE --observation FILE --num-samples N --output FILE [--chains C] "
                  "[--seed S] [--threads T]",
                  desc, vm))
    return exit_ok;
  check_sampling_options(o);
  if (const std::string problem = output_path_problem(output, vm.count("overwrite") > 0); !problem.empty())
    throw std::runtime_error(problem);
  if (recentring != 0 && recentring < static_cast<std::uint64_t>(min_recentring_simulations))
    throw UsageError(fmt::format("--recentring-simulations must be 0 (off) or at least {}, not {}",
                                 min_recentring_simulations, recentring));
  Posterior post = Posterior::load(model);
  const auto& info = post.model().info();
  const Table obs = read_table(observation, post.model().x_dim(), "observation",
                               fmt::format("simulator '{}' produces {}", info.simulator_name, post.model().x_dim()));
  const bool quiet = vm.count("quiet") > 0;
  // The simulator is opened (and its absence reported) before any sampling.
  std::shared_ptr<const Simulator> sim;
  if (recentring > 0) sim = open_model_simulator(info, simulator, plugin_path);
  std::optional<RecentringPass> rec;
  const PosteriorDraws draws = recentring > 0 ? draw_recentred(post, *sim, obs, o, seed, threads, quiet, recentring,
                                                               sample_recentring_first_index, rec)
                                              : draw_posterior(post, obs, o, seed, threads, quiet);
  write_posterior_file(output, model, draws, obs, observation, seed, {}, [&](h5::File& f) {
    if (rec) write_recentring(f, rec->estimate, seed, sample_recentring_first_index, rec->preliminary_chains);
  });
  print_summary(draws, quiet);
  if (!quiet) std::printf("wrote %s: %lld posterior samples\n", output.c_str(), static_cast<long long>(draws.theta.rows()));
  return exit_ok;
}

}  // namespace fsbi::cli
