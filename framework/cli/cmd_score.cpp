#include "cli_common.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fsbi::cli {

int cmd_score(const Args& args) {
  po::options_description desc("fsbi score options");
  std::string model_path, theta_src, x_src, output;
  bool log_likelihood = false;
  desc.add_options()
      ("model,m", po::value(&model_path)->required(), "model file written by `fsbi train`")
      ("theta", po::value(&theta_src)->required(),
       "parameters: FILE.csv (one row per pair, header optional) or FILE.h5[:/dataset] (default /simulations/theta)")
      ("x", po::value(&x_src)->required(), "data: FILE.csv or FILE.h5[:/dataset] (default /simulations/x)")
      ("output,o", po::value(&output)->required(), "FILE.csv, or FILE.h5[:/dataset] (default /score)")
      ("log-likelihood", po::bool_switch(&log_likelihood),
       "energy models: add a last column log_likelihood, the model's log p(x|theta) up to a function of x "
       "(compare it between rows with the same x only)");
  po::variables_map vm;
  if (!parse_args(args, "usage: fsbi score --model FILE --theta FILE --x FILE --output FILE [--log-likelihood]",
                  desc, vm))
    return exit_ok;
  const ScoreModel model = ScoreModel::load(model_path);
  const auto& info = model.info();
  if (log_likelihood && !model.is_energy())
    throw std::runtime_error(fmt::format(
        "--log-likelihood: {} is a vector score model, which learns the score only, not a log-likelihood; "
        "train an energy model (`fsbi train --model-kind energy`, the default) to get one", model_path));
  const Table theta = read_table(theta_src, model.theta_dim(), "theta",
                                 fmt::format("the model has {} parameters", model.theta_dim()), "/simulations/theta");
  const Table x = read_table(x_src, model.x_dim(), "x",
                             fmt::format("the model's simulator '{}' produces {}", info.simulator_name, model.x_dim()),
                             "/simulations/x");
  if (theta.rows() != x.rows())
    throw std::runtime_error(fmt::format("{} has {} rows but {} has {}; give one theta row per x row", theta_src,
                                         theta.rows(), x_src, x.rows()));
  // Row-major n × d is column-major d × n.
  const Eigen::MatrixXd th = Eigen::Map<const Eigen::MatrixXd>(theta.data(), theta.cols(), theta.rows());
  const Eigen::MatrixXd xs = Eigen::Map<const Eigen::MatrixXd>(x.data(), x.cols(), x.rows());
  for (Eigen::Index j = 0; j < th.cols(); ++j) {
    std::vector<double> col(th.col(j).data(), th.col(j).data() + th.rows());
    if (!model.prior().in_support(col) || !model.transform().to_unconstrained(th.col(j)).allFinite())
      throw std::runtime_error(fmt::format("{}: row {} is outside the interior of the training prior's support ({})",
                                           theta_src, j + 1, info.prior));
  }
  const Eigen::MatrixXd s = model.score(th, xs);
  std::vector<std::string> names;
  for (const auto& p : info.parameter_names) names.push_back("score_" + p);
  Table out(s.cols(), s.rows() + (log_likelihood ? 1 : 0));
  out.leftCols(s.rows()) = s.transpose();
  if (log_likelihood) {
    // −E(u, x) is log p(x | T(u)) + c(x); a likelihood carries no Jacobian, so it is the same
    // function of θ = T(u).
    out.col(s.rows()) = -model.energy_u(model.transform().to_unconstrained(th), xs).transpose();
    names.push_back("log_likelihood");
  }
  write_table(output, out, names, "/score");
  std::printf("wrote %s: Fisher score%s at %lld pairs\n", output.c_str(),
              log_likelihood ? " and log-likelihood (up to a function of x)" : "", static_cast<long long>(s.cols()));
  return exit_ok;
}

}  // namespace fsbi::cli
