// `fsbi check FILE`: posterior predictive check of a posterior file (fsbi run / fsbi sample):
// replicate data sets simulated at posterior draws, and where each observation lies among them
// (docs/diagnostics.md).
#include "cli_common.hpp"
#include "fsbi/plugin.hpp"
#include "fsbi/predictive_check.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "h5/h5.hpp"
#include "output_path.hpp"
#include "posterior_file.hpp"
#include "sample_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace fsbi::cli {

namespace fs = std::filesystem;

namespace {

// The replicates as a netCDF-4 file in ArviZ's InferenceData layout (docs/file-format.md): the draws they
// were simulated at (/posterior, one chain), the checked observations (/observed_data) and the
// replicates (/posterior_predictive), written as OUTPUT.partial and renamed when complete.
void write_predictive_file(const std::string& output, const std::vector<std::string>& parameter_names,
                           const Eigen::MatrixXd& theta, const PredictiveCheck& pc, const Table& obs,
                           const std::vector<std::string>& data_names,
                           std::vector<std::pair<std::string, std::string>> attributes) {
  // Draws whose replicate failed are left out, as in the check.
  const Eigen::MatrixXd kept = theta(Eigen::all, pc.draw);
  PosteriorSamples ps;
  ps.parameter_names = parameter_names;
  ps.chains = 1;
  ps.draws = static_cast<int>(kept.cols());
  ps.theta.assign(kept.data(), kept.data() + kept.size());  // d × m column-major: C order [draw][parameter]
  ps.data_names = data_names;
  ps.observations = obs;
  ps.attributes = std::move(attributes);
  const std::string partial = output + ".partial";
  {
    h5::File f = h5::File::create(partial);
    write_posterior(f, ps);
    write_posterior_predictive(f, pc.replicates, data_names);
    f.close();
  }
  fs::rename(partial, output);
}

}  // namespace

int cmd_check(const Args& args) {
  po::options_description desc("fsbi check options");
  std::string path, observation, simulator, output;
  std::uint64_t replicates = 1000, seed = 0;
  int threads = 0;
  double alarm = 0.01;
  std::vector<std::string> plugin_path;
  desc.add_options()
      ("file", po::value(&path)->required(), "posterior file: a run (fsbi run) or posterior (fsbi sample) file")
      ("replicates,n", po::value(&replicates)->default_value(replicates),
       "replicate data sets, each simulated at one posterior draw (spread over all chains)")
      ("observation", po::value(&observation),
       "check these observations instead of the file's own (CSV, header optional, or FILE.h5:/dataset)")
      ("simulator,s", po::value(&simulator), "simulator name or plugin path (default: the model's; its options are "
                                             "always the model's)")
      ("alarm", po::value(&alarm)->default_value(alarm), "flag the posterior when the smallest p-value times the "
                                                         "number of observations is below this")
      ("output,o", po::value(&output), "write the replicate data sets: FILE.csv (a table) or FILE.h5 (netCDF-4: "
                                        "/posterior_predictive beside the draws and observations)")
      ("overwrite", "replace OUTPUT if it exists")
      ("seed", po::value(&seed)->default_value(seed), "simulation seed; results do not depend on --threads")
      ("threads,t", po::value(&threads)->default_value(threads), "threads (0: all cores)")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins (repeatable)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi check FILE [--replicates M] [--observation FILE] [--output FILE] [--seed S] "
                  "[--threads T]",
                  desc, vm, &pos))
    return exit_ok;
  if (replicates < 20) throw UsageError(fmt::format("--replicates must be at least 20, not {}", replicates));
  if (!(alarm > 0 && alarm < 1)) throw UsageError(fmt::format("--alarm must lie in (0, 1), not {:g}", alarm));
  if (!output.empty()) {
    const std::string ext = fs::path(output).extension().string();
    if (ext != ".csv" && ext != ".h5" && ext != ".hdf5" && ext != ".nc")
      throw UsageError(fmt::format("--output {}: give FILE.csv (a table) or FILE.h5 (netCDF-4)", output));
    if (const std::string problem = output_path_problem(output, vm.count("overwrite") > 0); !problem.empty())
      throw std::runtime_error(problem);
  }

  PosteriorSamples ps;
  {
    h5::File file = h5::File::open(path);
    if (!file.is_group("posterior"))
      throw std::runtime_error(fmt::format("{}: no posterior samples (/posterior); check a file written by `fsbi run` "
                                           "or `fsbi sample`",
                                           path));
    if (!file.is_group("model"))
      throw std::runtime_error(fmt::format("{}: no /model to name the simulator; check a file written by `fsbi run` or "
                                           "`fsbi sample`",
                                           path));
    ps = read_posterior(file);
  }
  const ScoreModel model = ScoreModel::load(path);
  const auto& info = model.info();
  const auto sim = open_model_simulator(info, simulator, plugin_path);
  const auto d = static_cast<Eigen::Index>(ps.parameter_names.size());
  const int k = sim->data_dim();
  if (sim->parameter_dim() != d)
    throw std::runtime_error(fmt::format("{}: the posterior has {} parameters, simulator '{}' has {}", path, d,
                                         sim->name(), sim->parameter_dim()));
  Table obs;
  std::string obs_source = path + " (/observed_data)";
  if (!observation.empty()) {
    obs = read_table(observation, k, "observation", fmt::format("simulator '{}' produces {}", sim->name(), k));
    obs_source = observation;
  } else {
    obs = ps.observations;
    if (obs.rows() == 0)
      throw std::runtime_error(fmt::format("{}: /observed_data holds no observations; give --observation", path));
    if (obs.cols() != k)
      throw std::runtime_error(fmt::format("{}: the observations have {} data values, simulator '{}' produces {}", path,
                                           obs.cols(), sim->name(), k));
  }

  const auto total = static_cast<std::uint64_t>(ps.chains) * static_cast<std::uint64_t>(ps.draws);
  const std::uint64_t m = std::min(replicates, total);
  if (m < 20)
    throw std::runtime_error(fmt::format("{}: holds {} posterior samples; the check needs at least 20", path, total));
  // ps.theta is C order [sample][parameter]: column s of a d × total column-major map.
  const Eigen::Map<const Eigen::MatrixXd> samples(ps.theta.data(), d, static_cast<Eigen::Index>(total));
  const Eigen::MatrixXd theta = evenly_spaced_draws(samples, m);
  PredictiveCheckSettings st;
  st.seed = seed;
  st.threads = threads;
  st.alarm = alarm;
  const PredictiveCheck pc = posterior_predictive_check(*sim, theta, obs, st);

  const auto mr = pc.replicates.cols();
  std::printf("posterior predictive check of %s: %lld replicate data sets of '%s' at posterior draws (seed %llu)\n",
              path.c_str(), static_cast<long long>(mr), sim->name().c_str(), static_cast<unsigned long long>(seed));
  if (pc.failed > 0)
    std::fprintf(stderr, "warning: %llu replicate simulations failed and were left out (first: %s)\n",
                 static_cast<unsigned long long>(pc.failed), pc.first_error.c_str());
  if (!pc.constant.empty()) {
    std::vector<std::string> names;
    for (const int c : pc.constant) names.push_back(sim->data_names()[static_cast<std::size_t>(c)]);
    std::printf("constant in every replicate (left out of the distance): %s\n",
                fmt::format("{}", fmt::join(names, ", ")).c_str());
  }
  std::printf("replicates' own squared distance: median %.4g\n", pc.replicate_median);
  std::printf("  %-12s %14s %10s   %s\n", "observation", "sq. distance", "p", "least typical data value (two-sided p)");
  for (Eigen::Index i = 0; i < obs.rows(); ++i) {
    Eigen::Index worst = 0;
    pc.marginal_p.col(i).minCoeff(&worst);
    std::printf("  %-12lld %14.4g %10.4g   %s = %g (%.4g)\n", static_cast<long long>(i + 1), pc.distance[i],
                pc.p_value[i], sim->data_names()[static_cast<std::size_t>(worst)].c_str(), obs(i, worst),
                pc.marginal_p(worst, i));
  }
  for (const auto& note : pc.notes) std::printf("  %s\n", note.c_str());

  if (!output.empty()) {
    if (fs::path(output).extension() == ".csv") {
      const Table t = pc.replicates.transpose();
      write_table(output, t, sim->data_names(), "/replicates");
    } else {
      write_predictive_file(output, ps.parameter_names, theta, pc, obs, sim->data_names(),
                            {{"posterior_file", path},
                             {"simulator_name", sim->name()},
                             {"replicate_seed", std::to_string(seed)}});
    }
    std::printf("wrote %s: %lld replicate data sets\n", output.c_str(), static_cast<long long>(mr));
  }

  const double n = static_cast<double>(obs.rows());
  if (pc.flagged) {
    std::fprintf(stderr,
                 "fsbi check: the posterior does not reproduce %s: an observation lies beyond nearly all replicate "
                 "data sets (smallest p = %.3g for %lld observation%s, alarm %g). Either the learned score is "
                 "wrong where this posterior is (more simulations or sequential rounds, `fsbi run --rounds 3`, may "
                 "help; see also the sampler's warnings), or the simulator cannot produce data like the observation "
                 "at any parameters (docs/diagnostics.md)\n",
                 obs_source.c_str(), pc.p_value.minCoeff(), static_cast<long long>(obs.rows()),
                 obs.rows() == 1 ? "" : "s", alarm);
    return exit_check_failed;
  }
  if (n / static_cast<double>(mr + 1) >= alarm) {
    std::printf("inconclusive: with %lld replicates and %lld observations no p-value can fall below the alarm; "
                "raise --replicates above %.0f\n",
                static_cast<long long>(mr), static_cast<long long>(obs.rows()), n / alarm);
    return exit_ok;
  }
  std::printf("the posterior reproduces the observation%s (smallest p = %.3g)\n", obs.rows() == 1 ? "" : "s",
              pc.p_value.minCoeff());
  return exit_ok;
}

}  // namespace fsbi::cli
