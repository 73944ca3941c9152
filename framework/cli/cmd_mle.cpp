// `fsbi mle`: maximum likelihood by local Fisher score matching (docs/mle.md).
#include "cli_common.hpp"
#include "file_stamp.hpp"
#include "fsbi/local_fsm.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "h5/eigen_datasets.hpp"
#include "h5/h5.hpp"
#include "mle_common.hpp"
#include "output_path.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

namespace fsbi::cli {

namespace fs = std::filesystem;

int cmd_mle(const Args& args) {
  po::options_description desc("fsbi mle options");
  std::string simulator, observation, output, theta0, sigma, features, model_path, optimizer, prior_spec;
  int iterations = 0, average = 0, threads = 0;
  std::uint64_t per_iteration = 0, replicates = 0, seed = 0;
  double learning_rate = 0, ridge = 0;
  std::vector<std::string> sim_opts, plugin_path;
  desc.add_options()
      ("simulator,s", po::value(&simulator)->required(), "simulator name (see `fsbi plugins`) or path of a plugin .so")
      ("observation", po::value(&observation)->required(),
       "observed data: CSV (one row per i.i.d. observation, header optional) or FILE.h5:/dataset")
      ("output,o", po::value(&output)->required(), "HDF5 file to write (/mle: estimate, trajectory, settings)")
      ("theta0", po::value(&theta0), "start, comma-separated (default: the prior's centre)")
      ("sigma", po::value(&sigma),
       "proposal standard deviation in unconstrained coordinates, one value or one per parameter "
       "(default: pilot calibration over a grid, docs/mle.md)")
      ("iterations", po::value(&iterations)->default_value(100), "ascent iterations")
      ("simulations-per-iteration", po::value(&per_iteration)->default_value(1000), "simulations per local fit")
      ("replicates", po::value(&replicates)->default_value(1), "data sets simulated at each proposed parameter")
      ("average", po::value(&average)->default_value(0), "iterates averaged for the estimate (0: the last half)")
      ("features", po::value(&features)->default_value("linear"),
       "local score features: linear | quadratic (adds x², for scale parameters) | learned (--model)")
      ("model", po::value(&model_path), "trained model whose score at theta_t gives the features (--features learned)")
      ("optimizer", po::value(&optimizer)->default_value("adam"), "adam | rmsprop | sgd")
      ("learning-rate", po::value(&learning_rate)->default_value(0.5), "step size in units of sigma")
      ("ridge", po::value(&ridge)->default_value(1e-8, "1e-8"), "ridge term of the least-squares fit (relative)")
      ("seed", po::value(&seed)->default_value(0), "seed; results do not depend on --threads")
      ("threads,t", po::value(&threads)->default_value(0), "worker threads (0: all cores)")
      ("prior", po::value(&prior_spec), "prior spec overriding the simulator's default (sets the coordinates and the start)")
      ("sim-opt", po::value(&sim_opts)->composing(), "simulator option KEY=VALUE (repeatable)")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins (repeatable)")
      ("overwrite", "replace OUTPUT if it exists")
      ("quiet,q", "no progress output");
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi mle --simulator NAME|PATH --observation FILE --output FILE [--theta0 V] [--sigma S] "
                  "[--iterations T] [--simulations-per-iteration M] [--features linear|quadratic|learned --model FILE] "
                  "[--optimizer adam|rmsprop|sgd] [--learning-rate L] [--seed S] [--threads T]",
                  desc, vm))
    return exit_ok;
  if (iterations < 1) throw UsageError("--iterations must be at least 1");
  if (per_iteration < 2) throw UsageError("--simulations-per-iteration must be at least 2");
  if (const std::string problem = output_path_problem(output, vm.count("overwrite") > 0); !problem.empty())
    throw std::runtime_error(problem);
  const bool quiet = vm.count("quiet") > 0;

  MleSettings st;
  try {
    st.features = parse_local_features(features);
    st.optimizer = parse_optimizer(optimizer);
  } catch (const LocalFsmError& e) {
    throw UsageError(e.what());
  }
  if (st.features == LocalFeatures::learned && model_path.empty())
    throw UsageError("--features learned needs --model FILE (a model trained with `fsbi train`)");
  if (st.features != LocalFeatures::learned && !model_path.empty())
    throw UsageError("--model is used by --features learned only");

  auto sp = open_simulator_with_prior(simulator, sim_opts, plugin_path, prior_spec);
  const Simulator& sim = *sp.simulator;
  const int d = sim.parameter_dim();
  std::optional<ScoreModel> model;
  if (!model_path.empty()) {
    model.emplace(ScoreModel::load(model_path));
    st.model = &*model;
  }
  const Table obs = read_table(observation, sim.data_dim(), "observation",
                               fmt::format("simulator '{}' produces {}", sim.name(), sim.data_dim()));
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::MatrixXd>(obs.data(), obs.cols(), obs.rows());

  if (vm.count("theta0")) st.theta0 = parse_parameter_vector(theta0, "--theta0", d);
  if (vm.count("sigma")) st.sigma = parse_parameter_vector(sigma, "--sigma", d, true);
  st.iterations = iterations;
  st.average_last = average;
  st.simulations_per_iteration = per_iteration;
  st.replicates = replicates;
  st.learning_rate = learning_rate;
  st.ridge.ridge = ridge;
  st.seed = seed;
  st.threads = threads;
  const auto& names = sim.parameter_names();
  if (!quiet) {
    st.on_pilot = [&](const PilotRun& p) {
      std::fprintf(stderr, "mle: pilot sigma = (%s): theta = (%s), discrepancy %.4g\n", format_values(p.sigma).c_str(),
                   format_values(p.theta.head(std::min<Eigen::Index>(6, d))).c_str(), p.discrepancy);
    };
    st.on_iteration = [&](int t, const Eigen::VectorXd& th, double g) {
      std::fprintf(stderr, "mle: iteration %d/%d  theta = (%s%s)  |sum S| = %.4g\n", t, iterations,
                   format_values(th.head(std::min<Eigen::Index>(6, d))).c_str(), d > 6 ? ", …" : "", g);
    };
  }
  const MleResult r = maximum_likelihood(sim, *sp.prior, x, st);
  for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());

  constexpr double z95 = 1.959963984540054;
  const Eigen::VectorXd lower = r.theta_hat - z95 * r.standard_error, upper = r.theta_hat + z95 * r.standard_error;
  const std::string partial = output + ".partial";
  {
    h5::File f = h5::File::create(partial);
    stamp_fsbi_file(f);
    h5::Group g = f.create_group("mle");
    g.set_attribute("simulator_name", sim.name());
    g.set_attribute("simulator_version", sim.version());
    g.set_attribute("simulator_options", format_simulator_options(sim.options()));
    g.set_attribute("prior", sp.prior->spec());
    g.set_attribute("prior_source", sp.prior_source);
    g.set_attribute("parameter_names", names);
    g.set_attribute("data_names", sim.data_names());
    g.set_attribute("observation_source", observation);
    g.set_attribute("num_observations", static_cast<std::int64_t>(r.num_observations));
    g.set_attribute("seed", seed);
    g.set_attribute("iterations", static_cast<std::int64_t>(iterations));
    g.set_attribute("average_last", static_cast<std::int64_t>(r.average_last));
    g.set_attribute("simulations_per_iteration", static_cast<std::int64_t>(per_iteration));
    g.set_attribute("replicates", static_cast<std::int64_t>(replicates));
    g.set_attribute("features", std::string(to_string(st.features)));
    g.set_attribute("model", model_path);
    g.set_attribute("optimizer", std::string(to_string(st.optimizer)));
    g.set_attribute("learning_rate", learning_rate);
    g.set_attribute("ridge", ridge);
    g.set_attribute("sigma_source", r.sigma_source);
    g.set_attribute("num_simulations", static_cast<std::int64_t>(r.simulations));
    g.set_attribute("num_failed", static_cast<std::int64_t>(r.failed));
    g.set_attribute("seconds", r.seconds);
    g.set_attribute("warnings", r.warnings);
    h5::write_vector(g, "theta_hat", r.theta_hat);
    h5::write_vector(g, "u_hat", r.u_hat);
    h5::write_vector(g, "sigma", r.sigma);
    h5::write_vector(g, "theta0", r.trajectory.row(0).transpose());
    h5::write_vector(g, "standard_error", r.standard_error);
    h5::write_vector(g, "wald_lower", lower);
    h5::write_vector(g, "wald_upper", upper);
    h5::write_matrix(g, "fisher", r.fisher);
    h5::write_matrix(g, "fisher_standard_error", r.fisher_standard_error);
    h5::write_matrix(g, "trajectory", r.trajectory);
    h5::write_matrix(g, "trajectory_u", r.trajectory_u);
    h5::write_vector(g, "gradient_norm", r.gradient_norm);
    h5::write_matrix(g, "observations", x.transpose());
    if (!r.pilot.empty()) {
      h5::Group p = g.create_group("pilot");
      Eigen::MatrixXd ps(static_cast<Eigen::Index>(r.pilot.size()), d), pt(ps.rows(), d);
      Eigen::VectorXd pd(ps.rows());
      for (Eigen::Index i = 0; i < ps.rows(); ++i) {
        ps.row(i) = r.pilot[static_cast<std::size_t>(i)].sigma.transpose();
        pt.row(i) = r.pilot[static_cast<std::size_t>(i)].theta.transpose();
        pd[i] = r.pilot[static_cast<std::size_t>(i)].discrepancy;
      }
      h5::write_matrix(p, "sigma", ps);
      h5::write_matrix(p, "theta", pt);
      h5::write_vector(p, "discrepancy", pd);
    }
    g = h5::Group();
    f.close();
  }
  fs::rename(partial, output);

  std::printf("maximum-likelihood estimate from %llu observations (%s, %llu simulations, sigma from %s)\n",
              static_cast<unsigned long long>(r.num_observations), std::string(to_string(st.features)).c_str(),
              static_cast<unsigned long long>(r.simulations), r.sigma_source.c_str());
  std::printf("  %-16s %14s %12s %14s %14s\n", "parameter", "estimate", "std.error", "95% lower", "95% upper");
  for (int i = 0; i < d; ++i)
    std::printf("  %-16s %14.6g %12.4g %14.6g %14.6g\n", names[static_cast<std::size_t>(i)].c_str(), r.theta_hat[i],
                r.standard_error[i], lower[i], upper[i]);
  std::printf("wrote %s\n", output.c_str());
  return exit_ok;
}

}  // namespace fsbi::cli
