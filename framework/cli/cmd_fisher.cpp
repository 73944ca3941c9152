// `fsbi fisher`: Fisher information F(θ) = E_{x|θ}[s sᵀ] from fresh simulations, with a trained
// model's score or a local score fit, Cramér–Rao bounds and Wald intervals (docs/mle.md).
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

namespace {

void print_matrix(const char* title, const Eigen::MatrixXd& m, const std::vector<std::string>& names) {
  std::printf("%s\n  %-16s", title, "");
  for (const auto& n : names) std::printf(" %12.12s", n.c_str());
  std::printf("\n");
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    std::printf("  %-16s", names[static_cast<std::size_t>(i)].c_str());
    for (Eigen::Index j = 0; j < m.cols(); ++j) std::printf(" %12.6g", m(i, j));
    std::printf("\n");
  }
}

}  // namespace

int cmd_fisher(const Args& args) {
  po::options_description desc("fsbi fisher options");
  std::string simulator, theta_text, model_path, mle_path, sigma, features, prior_spec, output;
  std::string estimator = "jacobian";
  std::uint64_t n = 0, local_n = 0, seed = 0;
  double n_obs = 0, ridge = 0;
  int threads = 0;
  std::vector<std::string> sim_opts, plugin_path;
  desc.add_options()
      ("model,m", po::value(&model_path), "trained model (`fsbi train`): F from its amortised score; with --local "
                                          "--features learned, the feature model")
      ("local", "F from a local score fit at theta (local Fisher score matching) instead of a trained model")
      ("estimator", po::value(&estimator)->default_value(estimator),
       "with --model: jacobian (F = -E[ds/dtheta], robust to score errors) | outer (F = E[s s^T])")
      ("simulator,s", po::value(&simulator), "simulator name or plugin path (default with --model: the model's)")
      ("theta", po::value(&theta_text), "parameter point, comma-separated (default with --mle: the estimate)")
      ("num-simulations,n", po::value(&n)->default_value(10000), "fresh simulations at theta for the average of s sᵀ")
      ("local-simulations", po::value(&local_n)->default_value(0), "--local: simulations of the local fit (0: as -n)")
      ("observations", po::value(&n_obs)->default_value(0), "number n of i.i.d. observations for the Cramér–Rao bounds "
                                                           "(default: the MLE file's, else 1)")
      ("mle", po::value(&mle_path), "`fsbi mle` result: print Wald intervals around its estimate")
      ("sigma", po::value(&sigma), "--local: proposal sd in unconstrained coordinates (default: chosen, docs/mle.md)")
      ("features", po::value(&features)->default_value("linear"), "--local: linear | quadratic | learned")
      ("ridge", po::value(&ridge)->default_value(1e-8, "1e-8"), "--local: ridge term of the least-squares fit")
      ("seed", po::value(&seed)->default_value(0), "seed; results do not depend on --threads")
      ("threads,t", po::value(&threads)->default_value(0), "worker threads (0: all cores)")
      ("prior", po::value(&prior_spec), "--local: prior spec overriding the simulator's default (sets the coordinates)")
      ("sim-opt", po::value(&sim_opts)->composing(), "simulator option KEY=VALUE (repeatable)")
      ("plugin-path", po::value(&plugin_path)->composing(), "extra folder to search for plugins (repeatable)")
      ("output,o", po::value(&output), "also write the result: FILE.h5 (/fisher group) or FILE.csv (the matrix F)")
      ("overwrite", "replace OUTPUT if it exists");
  po::variables_map vm;
  if (!parse_args(args,
                  "usage: fsbi fisher (--model FILE | --local [--sigma S] [--features F]) --simulator NAME|PATH "
                  "--theta V [--num-simulations N] [--observations n] [--mle FILE] [--output FILE]",
                  desc, vm))
    return exit_ok;
  const bool local = vm.count("local") > 0;
  LocalFeatures kind = LocalFeatures::linear;
  try {
    kind = parse_local_features(features);
  } catch (const LocalFsmError& e) {
    throw UsageError(e.what());
  }
  if (!local && model_path.empty()) throw UsageError("give --model FILE (amortised score) or --local (local fit)");
  if (local && kind == LocalFeatures::learned && model_path.empty())
    throw UsageError("--local --features learned needs --model FILE");
  if (local && kind != LocalFeatures::learned && !model_path.empty())
    throw UsageError("--model with --local is the feature model of --features learned; drop one of them");
  if (n < 2) throw UsageError("--num-simulations must be at least 2");
  if (n_obs < 0) throw UsageError("--observations must be positive");
  if (!output.empty())
    if (const std::string problem = output_path_problem(output, vm.count("overwrite") > 0); !problem.empty())
      throw std::runtime_error(problem);

  std::optional<ScoreModel> model;
  if (!model_path.empty()) model.emplace(ScoreModel::load(model_path));
  if (simulator.empty()) {
    if (!model) throw UsageError("--local needs --simulator NAME|PATH");
    simulator = model->info().simulator_name;
    if (sim_opts.empty()) sim_opts = split_simulator_options(model->info().simulator_options);
  }
  auto sp = open_simulator_with_prior(simulator, sim_opts, plugin_path, prior_spec);
  const Simulator& sim = *sp.simulator;
  const int d = sim.parameter_dim();

  // An MLE file: its estimate and number of observations.
  std::optional<Eigen::VectorXd> theta_hat;
  if (!mle_path.empty()) {
    h5::File f = h5::File::open(mle_path);
    if (!f.is_group("mle"))
      throw std::runtime_error(fmt::format("{}: no /mle group; write one with `fsbi mle`", mle_path));
    h5::Group g = f.open_group("mle");
    const auto v = g.open_dataset("theta_hat").read_all_double();
    if (static_cast<int>(v.size()) != d)
      throw std::runtime_error(fmt::format("{}: the estimate has {} parameters, simulator '{}' has {}", mle_path,
                                           v.size(), sim.name(), d));
    theta_hat = Eigen::Map<const Eigen::VectorXd>(v.data(), d);
    if (n_obs == 0) n_obs = static_cast<double>(g.attribute_int("num_observations"));
  }
  if (n_obs == 0) n_obs = 1;
  Eigen::VectorXd theta;
  if (vm.count("theta")) theta = parse_parameter_vector(theta_text, "--theta", d);
  else if (theta_hat) theta = *theta_hat;
  else throw UsageError("give the parameter point with --theta (or an MLE file with --mle)");

  FisherEstimate fe;
  std::uint64_t simulations = 0, failed = 0;
  Eigen::VectorXd sigma_used;
  std::vector<std::string> warnings;
  if (local) {
    LocalFsmSettings ls;
    ls.num_parameters = local_n ? local_n : n;
    if (vm.count("sigma")) ls.sigma = parse_parameter_vector(sigma, "--sigma", d, true);
    ls.features = kind;
    ls.model = model ? &*model : nullptr;
    ls.ridge.ridge = ridge;
    ls.seed = seed;
    ls.threads = threads;
    const LocalFisher lf = local_fisher(sim, *sp.prior, theta, ls, n);
    fe = lf.estimate;
    simulations = lf.simulations;
    failed = lf.failed;
    sigma_used = lf.sigma;
    warnings = lf.warnings;
  } else {
    fe = model_fisher(*model, sim, theta, n, seed, threads, &failed, parse_fisher_estimator(estimator));
    simulations = n;
  }
  for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  const Eigen::VectorXd cr = fe.cramer_rao(n_obs);
  const auto& names = sim.parameter_names();

  std::printf("Fisher information per observation at theta = (%s), %s, %llu fresh simulations\n",
              format_values(theta).c_str(),
              local ? fmt::format("local fit ({} features, sigma = ({}))", to_string(kind), format_values(sigma_used)).c_str()
                    : fmt::format("model {}", model_path).c_str(),
              static_cast<unsigned long long>(fe.samples));
  print_matrix("F:", fe.fisher, names);
  print_matrix("Monte-Carlo standard error of F:", fe.standard_error, names);
  std::printf("Cramér–Rao bounds sqrt(diag F⁻¹ / n), n = %g observations:\n", n_obs);
  for (int i = 0; i < d; ++i) std::printf("  %-16s %12.6g\n", names[static_cast<std::size_t>(i)].c_str(), cr[i]);
  constexpr double z95 = 1.959963984540054;
  if (theta_hat) {
    std::printf("95%% Wald intervals around the estimate of %s:\n", mle_path.c_str());
    for (int i = 0; i < d; ++i)
      std::printf("  %-16s %14.6g  [%.6g, %.6g]\n", names[static_cast<std::size_t>(i)].c_str(), (*theta_hat)[i],
                  (*theta_hat)[i] - z95 * cr[i], (*theta_hat)[i] + z95 * cr[i]);
  }

  if (!output.empty()) {
    const std::string ext = fs::path(output).extension().string();
    if (ext == ".csv") {
      Table t = fe.fisher;
      write_table(output, t, names, "/fisher/fisher");
    } else {
      const std::string partial = output + ".partial";
      {
        h5::File f = h5::File::create(partial);
        stamp_fsbi_file(f);
        h5::Group g = f.create_group("fisher");
        g.set_attribute("method", local ? "local" : "model");
        g.set_attribute("model", model_path);
        g.set_attribute("features", local ? std::string(to_string(kind)) : std::string());
        g.set_attribute("simulator_name", sim.name());
        g.set_attribute("simulator_version", sim.version());
        g.set_attribute("simulator_options", format_simulator_options(sim.options()));
        g.set_attribute("prior", sp.prior->spec());
        g.set_attribute("parameter_names", names);
        g.set_attribute("seed", seed);
        g.set_attribute("num_simulations", static_cast<std::int64_t>(simulations));
        g.set_attribute("num_fresh_simulations", static_cast<std::int64_t>(fe.samples));
        g.set_attribute("num_failed", static_cast<std::int64_t>(failed));
        g.set_attribute("num_observations", n_obs);
        g.set_attribute("mle", mle_path);
        h5::write_vector(g, "theta", theta);
        h5::write_matrix(g, "fisher", fe.fisher);
        h5::write_matrix(g, "standard_error", fe.standard_error);
        h5::write_vector(g, "mean_score", fe.mean_score);
        h5::write_vector(g, "cramer_rao", cr);
        if (local) h5::write_vector(g, "sigma", sigma_used);
        if (theta_hat) {
          h5::write_vector(g, "theta_hat", *theta_hat);
          h5::write_vector(g, "wald_lower", *theta_hat - z95 * cr);
          h5::write_vector(g, "wald_upper", *theta_hat + z95 * cr);
        }
        g = h5::Group();
        f.close();
      }
      fs::rename(partial, output);
    }
    std::printf("wrote %s\n", output.c_str());
  }
  return exit_ok;
}

}  // namespace fsbi::cli
