#include "fsbi/score_model.hpp"

#include "model_file.hpp"
#include "nn/score_network.hpp"

#include <fmt/format.h>

namespace fsbi {

struct ScoreModel::Impl {
  StoredModel stored;
  std::unique_ptr<Prior> prior;
  std::vector<nn::ScoreNetwork<float>> networks;  // the ensemble's members (one for a single model)
  std::string path;

  explicit Impl(StoredModel m, std::string p) : stored(std::move(m)), path(std::move(p)) {
    for (int i = 0; i < stored.members; ++i) {
      networks.emplace_back(stored.architecture);
      const Eigen::Index np = networks.back().num_parameters();
      networks.back().parameters() = stored.parameters.segment(i * np, np);
    }
    prior = parse_prior(stored.info.prior, stored.architecture.theta_dim);
  }

  void check(const Eigen::MatrixXd& a, const Eigen::MatrixXd& x) const {
    const int d = stored.architecture.theta_dim, k = stored.architecture.x_dim;
    if (a.rows() != d)
      throw ModelError(fmt::format("{}: theta has {} rows per sample, the model has {} parameters ({})",
                                   path, a.rows(), d, fmt::join(stored.info.parameter_names, ", ")));
    if (x.rows() != k)
      throw ModelError(fmt::format("{}: x has {} values per sample, the model's simulator '{}' produces {}",
                                   path, x.rows(), stored.info.simulator_name, k));
    if (a.cols() != x.cols())
      throw ModelError(fmt::format("{}: {} theta samples but {} x samples", path, a.cols(), x.cols()));
  }
};

ScoreModel::ScoreModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ScoreModel::~ScoreModel() = default;
ScoreModel::ScoreModel(ScoreModel&&) noexcept = default;
ScoreModel& ScoreModel::operator=(ScoreModel&&) noexcept = default;

ScoreModel ScoreModel::load(const std::string& path) {
  StoredModel m = read_model(path);
  try {
    return ScoreModel(std::make_unique<Impl>(std::move(m), path));
  } catch (const PriorSpecError& e) {
    throw ModelError(fmt::format("{}: /model stores an invalid prior: {}", path, e.what()));
  }
}

int ScoreModel::theta_dim() const { return impl_->stored.architecture.theta_dim; }
int ScoreModel::x_dim() const { return impl_->stored.architecture.x_dim; }
const ModelInfo& ScoreModel::info() const { return impl_->stored.info; }
const Prior& ScoreModel::prior() const { return *impl_->prior; }
const ParameterTransform& ScoreModel::transform() const { return impl_->stored.transform; }
bool ScoreModel::is_energy() const { return impl_->stored.architecture.kind == nn::ModelKind::energy; }

Eigen::MatrixXd ScoreModel::score_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& x) const {
  impl_->check(u, x);
  Eigen::MatrixXd z, dz, d2z;
  impl_->stored.features.apply(u, z, dz, d2z);
  const Eigen::MatrixXf xs = impl_->stored.x_standardizer.apply(x).cast<float>();
  const Eigen::MatrixXf zf = z.cast<float>(), dzf = dz.cast<float>();
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(u.rows(), u.cols());
  Eigen::MatrixXf s;
  for (const auto& net : impl_->networks) {
    net.score(zf, dzf, xs, s);
    sum += s.cast<double>();
  }
  return sum / static_cast<double>(impl_->networks.size());
}

Eigen::MatrixXd ScoreModel::score(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x) const {
  impl_->check(theta, x);
  const Eigen::MatrixXd u = impl_->stored.transform.to_unconstrained(theta);
  if (!u.allFinite())
    throw ModelError(fmt::format("{}: theta outside the interior of the training prior's support ({})",
                                 impl_->path, impl_->stored.info.prior));
  return impl_->stored.transform.score_to_theta(u, score_u(u, x));
}

Eigen::RowVectorXd ScoreModel::energy_u(const Eigen::MatrixXd& u, const Eigen::MatrixXd& x) const {
  if (!is_energy())
    throw ModelError(fmt::format("{}: a vector score model has no energy; train with --model-kind energy",
                                 impl_->path));
  impl_->check(u, x);
  Eigen::MatrixXd z, dz, d2z;
  impl_->stored.features.apply(u, z, dz, d2z);
  const Eigen::MatrixXf zf = z.cast<float>(), xs = impl_->stored.x_standardizer.apply(x).cast<float>();
  Eigen::RowVectorXd sum = Eigen::RowVectorXd::Zero(u.cols());
  Eigen::MatrixXf e;
  for (const auto& net : impl_->networks) {
    net.energy(zf, xs, e);
    sum += e.row(0).cast<double>();
  }
  return sum / static_cast<double>(impl_->networks.size());
}

}  // namespace fsbi
