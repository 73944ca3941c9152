// `fsbi compress`: optimal score compression t(x) = s(θ_fid, x) (Alsing & Wandelt 2018) of every
// row of a data table with a trained model (docs/mle.md).
#include "cli_common.hpp"
#include "fsbi/local_fsm.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/table_io.hpp"
#include "mle_common.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace fsbi::cli {

int cmd_compress(const Args& args) {
  po::options_description desc("fsbi compress options");
  std::string model_path, theta_fid, x_src, output;
  desc.add_options()
      ("model,m", po::value(&model_path)->required(), "model file written by `fsbi train`")
      ("theta-fid", po::value(&theta_fid)->required(), "fiducial parameters, comma-separated (inside the model's prior)")
      ("x", po::value(&x_src)->required(), "data: FILE.csv (header optional) or FILE.h5[:/dataset] (default /simulations/x)")
      ("output,o", po::value(&output)->required(), "FILE.csv, or FILE.h5[:/dataset] (default /compressed)");
  po::variables_map vm;
  if (!parse_args(args, "usage: fsbi compress --model FILE --theta-fid V --x FILE --output FILE(.csv|.h5)", desc, vm))
    return exit_ok;
  const ScoreModel model = ScoreModel::load(model_path);
  const auto& info = model.info();
  const Eigen::VectorXd theta = parse_parameter_vector(theta_fid, "--theta-fid", model.theta_dim());
  check_in_support(model.prior(), theta, "--theta-fid");
  const Table x = read_table(x_src, model.x_dim(), "x",
                             fmt::format("the model's simulator '{}' produces {}", info.simulator_name, model.x_dim()),
                             "/simulations/x");
  const Eigen::MatrixXd xs = Eigen::Map<const Eigen::MatrixXd>(x.data(), x.cols(), x.rows());
  const Eigen::MatrixXd t = model.score(theta.replicate(1, xs.cols()), xs);
  const Table out = Eigen::Map<const Table>(t.data(), t.cols(), t.rows());
  std::vector<std::string> names;
  for (const auto& p : info.parameter_names) names.push_back("t_" + p);
  write_table(output, out, names, "/compressed");
  std::printf("wrote %s: score compression t(x) = s(theta_fid, x) of %lld rows to %d values\n", output.c_str(),
              static_cast<long long>(t.cols()), model.theta_dim());
  return exit_ok;
}

}  // namespace fsbi::cli
