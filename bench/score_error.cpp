// How far a trained model's score is from the simulator's analytic likelihood score, on fresh
// pairs from the model's prior, and optionally at given θ's with the observation fixed (e.g.
// reference posterior samples). Seconds instead of the minutes of a C2ST, so it is the first
// thing to look at when a task's posterior is poor: bench/README.md ("Posterior quality").
//
//   score_error --model RUN.h5 [--pairs 3000] [--seed 12345] [--plugin-path DIR]
//               [--theta POSTERIOR.csv --observation OBS.csv]
//
// Needs a simulator that provides FSBI_EXT_LIKELIHOOD_SCORE (every bundled sbibm task does).
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/progress.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/table_io.hpp"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <Eigen/Core>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <system_error>
#include <string>
#include <vector>

#include <unistd.h>

namespace po = boost::program_options;
using Eigen::MatrixXd;

namespace {

// Learned and analytic score (d × n) compared: relative MSE, per-pair relative error quantiles,
// and the median relative error by quartile of the analytic score's norm (typical vs tail pairs).
void report(const std::string& what, const MatrixXd& learned, const MatrixXd& truth) {
  const Eigen::Index n = truth.cols();
  const double rel_mse = (learned - truth).squaredNorm() / truth.squaredNorm();
  std::vector<std::pair<double, double>> pairs(static_cast<std::size_t>(n));  // (|s|, relative error)
  for (Eigen::Index i = 0; i < n; ++i) {
    const double norm = truth.col(i).norm();
    pairs[static_cast<std::size_t>(i)] = {norm, (learned.col(i) - truth.col(i)).norm() / std::max(norm, 1e-300)};
  }
  auto quantile = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
  };
  std::vector<double> rel;
  for (const auto& p : pairs) rel.push_back(p.second);
  fmt::print("{} ({} pairs)\n", what, n);
  fmt::print("  relative MSE  E|s_hat - s|^2 / E|s|^2 = {:.4f}\n", rel_mse);
  fmt::print("  per-pair |s_hat - s| / |s|: quartiles {:.3f} {:.3f} {:.3f}\n", quantile(rel, 0.25),
             quantile(rel, 0.5), quantile(rel, 0.75));
  std::sort(pairs.begin(), pairs.end());
  double total = 0;
  for (const auto& p : pairs) total += p.first * p.first;
  double top = 0;
  for (std::size_t i = pairs.size() - pairs.size() / 100; i < pairs.size(); ++i) top += pairs[i].first * pairs[i].first;
  fmt::print("  |s|^2: median {:.4g}, mean {:.4g}, share of the sum in the top 1 % of pairs {:.2f}\n",
             pairs[pairs.size() / 2].first * pairs[pairs.size() / 2].first, total / static_cast<double>(n),
             top / total);
  for (int q = 0; q < 4; ++q) {
    const std::size_t lo = pairs.size() * static_cast<std::size_t>(q) / 4, hi = pairs.size() * static_cast<std::size_t>(q + 1) / 4;
    std::vector<double> r;
    for (std::size_t i = lo; i < hi; ++i) r.push_back(pairs[i].second);
    if (r.empty()) continue;
    fmt::print("  |s| quartile {} (|s| {:.3g}..{:.3g}): median relative error {:.3f}\n", q + 1, pairs[lo].first,
               pairs[hi - 1].first, quantile(r, 0.5));
  }
}

MatrixXd analytic(const fsbi::Simulator& sim, const MatrixXd& theta, const MatrixXd& x) {
  MatrixXd s(theta.rows(), theta.cols());
  sim.likelihood_score({theta.data(), static_cast<std::size_t>(theta.size())},
                       {x.data(), static_cast<std::size_t>(x.size())}, {s.data(), static_cast<std::size_t>(s.size())});
  return s;  // row-major n × d on both sides is column-major d × n
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, theta_path, observation_path, plugin_path;
  std::uint64_t pairs = 3000, seed = 12345;
  po::options_description opts("score_error options");
  opts.add_options()
      ("model,m", po::value(&model_path)->required(), "model file (fsbi train / fsbi run output)")
      ("pairs", po::value(&pairs)->default_value(3000), "fresh prior pairs to compare on (0: none)")
      ("seed", po::value(&seed)->default_value(12345), "seed of the fresh pairs")
      ("theta", po::value(&theta_path), "also compare at these θ (CSV rows) ...")
      ("observation", po::value(&observation_path), "... with x fixed to this observation (CSV, one row)")
      ("plugin-path", po::value(&plugin_path), "extra folder to search for the simulator plugin")
      ("help,h", "show this help");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << "usage: score_error --model FILE [--pairs N] [--theta CSV --observation CSV]\n\n" << opts;
      return 0;
    }
    po::notify(vm);
    if (theta_path.empty() != observation_path.empty())
      throw std::invalid_argument("--theta and --observation go together");

    const fsbi::ScoreModel model = fsbi::ScoreModel::load(model_path);
    const auto& info = model.info();
    const auto sim = fsbi::open_simulator(info.simulator_name,
                                          fsbi::parse_simulator_options(fsbi::split_simulator_options(info.simulator_options)),
                                          plugin_path.empty() ? std::vector<std::string>{} : std::vector{plugin_path});
    if (!sim->has_likelihood_score())
      throw std::invalid_argument(fmt::format("simulator '{}' provides no analytic likelihood score "
                                              "(FSBI_EXT_LIKELIHOOD_SCORE): nothing to compare with",
                                              sim->name()));
    const Eigen::Index d = model.theta_dim(), k = model.x_dim();
    fmt::print("model {}: {} {}, hidden {}, objective {}, simulator {}, prior {}\n", model_path, info.kind,
               info.activation, fmt::join(info.hidden, ","), info.objective, info.simulator_name, info.prior);

    if (pairs > 0) {
      const auto dir = std::filesystem::temp_directory_path() / fmt::format("fsbi-score-error-{}", ::getpid());
      std::filesystem::create_directories(dir);
      struct RemoveOnExit {
        std::filesystem::path p;
        ~RemoveOnExit() {
          std::error_code ec;
          std::filesystem::remove_all(p, ec);
        }
      } cleanup{dir};
      const std::string path = (dir / "fresh.h5").string();
      fsbi::SimulationSettings st;
      st.num_simulations = pairs;
      st.seed = seed;
      st.progress = fsbi::ProgressMode::quiet;
      const auto prior = fsbi::parse_prior(info.prior, static_cast<int>(d));
      fsbi::run_simulations(*sim, *prior, "model's prior", st, path);
      const auto fresh = fsbi::read_simulations(path);
      const MatrixXd th = fresh.theta.transpose(), x = fresh.x.transpose();  // one pair per column
      report(fmt::format("fresh pairs from the model's prior (seed {})", seed), model.score(th, x),
             analytic(*sim, th, x));
    }
    if (!theta_path.empty()) {
      const auto theta = fsbi::read_table(theta_path, d, "theta", fmt::format("the model has {} parameters", d));
      const auto obs = fsbi::read_table(observation_path, k, "observation", fmt::format("the model's x has {} values", k));
      if (obs.rows() != 1) throw std::invalid_argument(observation_path + ": give one observation row");
      const MatrixXd th = theta.transpose();
      const MatrixXd x = obs.transpose().replicate(1, th.cols());
      report(fmt::format("θ from {} with x = {}", theta_path, observation_path), model.score(th, x),
             analytic(*sim, th, x));
    }
  } catch (const std::exception& e) {
    std::cerr << "score_error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
