#include "cli_common.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"
#include "posterior_file.hpp"
#include "h5/h5.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace fsbi::cli {

namespace {

void print_columns(const char* what, const MatrixRowMajor& m, const std::vector<std::string>& names) {
  std::printf("  %s:\n    %-16s %12s %12s %12s %12s\n", what, "name", "mean", "sd", "min", "max");
  const auto n = m.rows();
  for (Eigen::Index j = 0; j < m.cols(); ++j) {
    if (n == 0) {
      std::printf("    %-16s %12s\n", names[static_cast<std::size_t>(j)].c_str(), "-");
      continue;
    }
    const double mean = m.col(j).mean();
    const double var = n > 1 ? (m.col(j).array() - mean).square().sum() / static_cast<double>(n - 1) : 0.0;
    std::printf("    %-16s %12.5g %12.5g %12.5g %12.5g\n", names[static_cast<std::size_t>(j)].c_str(), mean,
                std::sqrt(var), m.col(j).minCoeff(), m.col(j).maxCoeff());
  }
}

void print_simulations(const std::string& path, h5::File& file) {
  const SimulationData s = read_simulations(path);
  h5::Group g = file.open_group("simulations");
  std::printf("/simulations (format version %lld, written by fsbi %s)\n",
              static_cast<long long>(file.attribute_int("fsbi_format_version")),
              file.attribute_string("fsbi_version").c_str());
  if (s.status == "running")
    std::printf("  status:     INTERRUPTED run: %lld of %llu simulations done; continue it with "
                "`fsbi simulate ... --resume` and the same settings\n",
                static_cast<long long>(s.index.empty() ? 0 : s.index.back() + 1),
                static_cast<unsigned long long>(s.requested));
  else
    std::printf("  status:     %s\n", s.status.c_str());
  std::printf("  simulator:  %s %s%s\n", s.simulator_name.c_str(), s.simulator_version.c_str(),
              s.simulator_options.empty() ? "" : fmt::format(" ({})", s.simulator_options).c_str());
  std::printf("  prior:      %s (%s)\n", s.prior.c_str(), g.attribute_string("prior_source").c_str());
  std::printf("  seed:       %llu\n", static_cast<unsigned long long>(s.seed));
  std::printf("  rows:       %lld of %llu requested (theta: %zu, x: %zu)\n",
              static_cast<long long>(s.theta.rows()), static_cast<unsigned long long>(s.requested),
              s.parameter_names.size(), s.data_names.size());
  std::printf("  failures:   %llu (%.3g%% of requested; policy %s, budget %g)\n",
              static_cast<unsigned long long>(s.failed),
              s.requested ? 100.0 * static_cast<double>(s.failed) / static_cast<double>(s.requested) : 0.0,
              g.attribute_string("failure_policy").c_str(), g.attribute_double("max_failure_rate"));
  if (s.failed > 0) {
    h5::Group f = g.open_group("failures");
    const auto idx = f.open_dataset("index").read_all_int();
    const auto msg = f.open_dataset("message").read_all_strings();
    const auto th = f.open_dataset("theta").read_all_double();
    const std::size_t d = s.parameter_names.size();
    for (std::size_t i = 0; i < std::min<std::size_t>(s.failed, 5); ++i) {
      std::string t;
      for (std::size_t j = 0; j < d; ++j) t += fmt::format("{}{:.5g}", j ? ", " : "", th[i * d + j]);
      std::printf("    simulation %lld at theta (%s): %s\n", static_cast<long long>(idx[i]), t.c_str(), msg[i].c_str());
    }
    if (s.failed > 5) std::printf("    ... (%llu more in /simulations/failures)\n", static_cast<unsigned long long>(s.failed - 5));
  }
  print_columns("theta", s.theta, s.parameter_names);
  print_columns("x", s.x, s.data_names);
}

void print_model(const std::string& path) {
  const ScoreModel model = ScoreModel::load(path);
  const ModelInfo& i = model.info();
  std::printf("/model\n");
  std::printf("  model:      %s score network, hidden %s, %s%s\n", i.kind.c_str(),
              fmt::format("{}", fmt::join(i.hidden, ",")).c_str(), i.activation.c_str(),
              i.ensemble > 1 ? fmt::format(", ensemble of {}", i.ensemble).c_str() : "");
  std::printf("  objective:  %s%s%s\n", i.objective.c_str(),
              i.objective == "latent" ? fmt::format(" (sigma {})", i.latent_sigma).c_str() : "",
              i.box_weight != "none" ? fmt::format(", box weight {}", i.box_weight).c_str() : "");
  std::printf("  simulator:  %s %s%s\n", i.simulator_name.c_str(), i.simulator_version.c_str(),
              i.simulator_options.empty() ? "" : fmt::format(" ({})", i.simulator_options).c_str());
  std::printf("  prior:      %s\n", i.prior.c_str());
  std::printf("  parameters: %s\n", fmt::format("{}", fmt::join(i.parameter_names, ", ")).c_str());
  std::printf("  data:       %zu values\n", i.data_names.size());
  std::printf("  trained on: %s (%llu training, %llu validation pairs, seed %llu)\n", i.training_data.c_str(),
              static_cast<unsigned long long>(i.num_train), static_cast<unsigned long long>(i.num_validation),
              static_cast<unsigned long long>(i.seed));
  if (!i.training_proposal.empty()) std::printf("  drawn from: %s\n", i.training_proposal.c_str());
  std::printf("  epochs:     %d, best %d with validation loss %.6g%s\n", i.epochs, i.best_epoch, i.best_validation_loss,
              i.batch_size > 0 ? fmt::format(" (batches of {})", i.batch_size).c_str() : "");
}

void print_posterior(h5::File& file) {
  const PosteriorSamples s = read_posterior(file);
  std::printf("/posterior\n");
  for (const auto& [k, v] : s.attributes)
    if (k == "sampler" || k == "init" || k == "seed") std::printf("  %-11s %s\n", (k + ":").c_str(), v.c_str());
  std::printf("  samples:    %d chains × %d draws, %lld observation(s)\n", s.chains, s.draws,
              static_cast<long long>(s.observations.rows()));
  const auto d = s.parameter_names.size();
  const auto n = static_cast<std::size_t>(s.chains) * static_cast<std::size_t>(s.draws);
  std::printf("    %-16s %12s %12s %8s %8s\n", "name", "mean", "sd", "R-hat", "ESS");
  for (std::size_t j = 0; j < d; ++j) {
    double m = 0, v = 0;
    for (std::size_t i = 0; i < n; ++i) m += s.theta[i * d + j];
    m /= static_cast<double>(std::max<std::size_t>(n, 1));
    for (std::size_t i = 0; i < n; ++i) v += (s.theta[i * d + j] - m) * (s.theta[i * d + j] - m);
    v /= static_cast<double>(std::max<std::size_t>(n, 2) - 1);
    std::printf("    %-16s %12.5g %12.5g %8.3f %8.0f\n", s.parameter_names[j].c_str(), m, std::sqrt(v),
                j < s.rhat.size() ? s.rhat[j] : std::nan(""), j < s.ess.size() ? s.ess[j] : std::nan(""));
  }
}

}  // namespace

int cmd_info(const Args& args) {
  po::options_description desc("fsbi info options");
  std::string path;
  desc.add_options()("file", po::value(&path)->required(), "fsbi HDF5 file");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_args(args, "usage: fsbi info FILE", desc, vm, &pos)) return exit_ok;

  h5::File file = h5::File::open(path);
  std::printf("%s\n", path.c_str());
  if (!file.has_attribute("fsbi_format"))
    throw std::runtime_error(fmt::format("{}: an HDF5 file, but not one fsbi wrote (no fsbi_format attribute)", path));
  bool known = false;
  if (file.exists("simulations")) {
    print_simulations(path, file);
    known = true;
  }
  if (file.exists("model")) {
    print_model(path);
    known = true;
  }
  if (file.exists("posterior")) {
    print_posterior(file);
    known = true;
  }
  if (file.exists("recentring")) {
    const h5::Group g = file.open_group("recentring");
    const std::vector<double> offset = g.open_dataset("offset_u").read_all_double(),
                              se = g.open_dataset("standard_error").read_all_double();
    double largest = 0;
    for (std::size_t i = 0; i < offset.size() && i < se.size(); ++i)
      if (se[i] > 0) largest = std::max(largest, std::abs(offset[i]) / se[i]);
    std::printf("  /recentring: %llu simulations at posterior draws (%llu failed); score offset taken back per "
                "observation, in u: %s (largest %.3g standard errors)\n",
                static_cast<unsigned long long>(g.attribute_uint("num_requested")),
                static_cast<unsigned long long>(g.attribute_uint("num_failed")),
                fmt::format("{:.3g}", fmt::join(offset, ", ")).c_str(), largest);
  }
  if (!known) {
    std::printf("  groups:");
    for (const auto& c : file.children()) std::printf(" /%s", c.c_str());
    std::printf("\n");
  }
  return exit_ok;
}

}  // namespace fsbi::cli
