#include "fsbi/posterior.hpp"

#include "fsbi/random.hpp"
#include "fsbi/simulation.hpp"
#include "h5/h5.hpp"
#include "sampling/starts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

namespace fsbi {
namespace fs = std::filesystem;

namespace {
// How far (in units of the training range's width) a chain may wander past the training pairs
// before it is reported as having left the region the model was trained on.
constexpr double trusted_margin = 0.25;
constexpr std::uint64_t prior_draw_offset = 1ull << 40;  // sampling stream indices for prior draws

void check_observations(const ScoreModel& m, const Table& obs) {
  if (obs.rows() == 0) throw ModelError("no observations given");
  if (obs.cols() != m.x_dim())
    throw ModelError(fmt::format("observations have {} values per row, the model's simulator '{}' produces {}",
                                 obs.cols(), m.info().simulator_name, m.x_dim()));
}
}  // namespace

Posterior Posterior::load(const std::string& path) { return Posterior(ScoreModel::load(path), path); }

void Posterior::set_prior(std::unique_ptr<Prior> prior) {
  if (!prior || prior->dim() != model_.theta_dim())
    throw std::invalid_argument(fmt::format("the inference prior must have {} dimensions", model_.theta_dim()));
  const auto lo = model_.prior().lower_bounds(), hi = model_.prior().upper_bounds();
  const auto nlo = prior->lower_bounds(), nhi = prior->upper_bounds();
  for (Eigen::Index i = 0; i < lo.size(); ++i)
    if (nlo[i] < lo[i] || nhi[i] > hi[i])
      throw std::invalid_argument(fmt::format(
          "prior {} reaches outside the training prior {} in parameter {}: the model knows nothing there; "
          "choose a prior within the training prior's support",
          prior->spec(), model_.prior().spec(), model_.info().parameter_names[static_cast<std::size_t>(i)]));
  prior_ = std::move(prior);
}

void Posterior::set_score_offset(Eigen::VectorXd offset_u) {
  if (offset_u.size() != 0 && offset_u.size() != model_.theta_dim())
    throw std::invalid_argument(fmt::format("score offset has {} values, the model {} parameters", offset_u.size(),
                                            model_.theta_dim()));
  if (!offset_u.allFinite()) throw std::invalid_argument("score offset holds NaN or infinite values");
  offset_u_ = std::move(offset_u);
}

Eigen::MatrixXd Posterior::score(const Eigen::MatrixXd& theta, const Table& observations) const {
  check_observations(model_, observations);
  const auto& tr = model_.transform();
  const Eigen::MatrixXd u = tr.to_unconstrained(theta);
  if (!u.allFinite()) throw ModelError("theta outside the interior of the training prior's support");
  const Eigen::MatrixXd su = target(observations).grad_log_likelihood(u);
  Eigen::MatrixXd s = tr.score_to_theta(u, su);
  for (Eigen::Index j = 0; j < theta.cols(); ++j) {
    std::vector<double> th(theta.col(j).data(), theta.col(j).data() + theta.rows()), g(static_cast<std::size_t>(theta.rows()));
    prior().grad_log_density(th, g);
    s.col(j) += Eigen::Map<const Eigen::VectorXd>(g.data(), theta.rows());
  }
  return s;
}

SamplingTarget Posterior::target(const Table& observations) const {
  check_observations(model_, observations);
  SamplingTarget t;
  t.dim = model_.theta_dim();
  const ScoreModel* m = &model_;
  const Prior* p = &prior();
  // Observations as k × n_obs columns.
  const Eigen::MatrixXd obs = Eigen::Map<const Eigen::MatrixXd>(observations.data(), observations.cols(), observations.rows());
  // One network call per batch: every point paired with every observation.
  auto paired = [obs](const Eigen::MatrixXd& u, Eigen::MatrixXd& ur, Eigen::MatrixXd& xr) {
    const Eigen::Index n = u.cols(), no = obs.cols();
    ur.resize(u.rows(), n * no);
    xr.resize(obs.rows(), n * no);
    for (Eigen::Index i = 0; i < no; ++i) {
      ur.middleCols(i * n, n) = u;
      xr.middleCols(i * n, n) = obs.col(i).replicate(1, n);
    }
  };
  t.log_prior = [m, p](const Eigen::MatrixXd& u) { return m->transform().prior_log_density(*p, u); };
  t.grad_log_prior = [m, p](const Eigen::MatrixXd& u) { return m->transform().prior_score(*p, u); };
  // The score offset, once per observation (zero when none is set).
  const Eigen::VectorXd offset = offset_u_.size() == 0
                                     ? Eigen::VectorXd::Zero(t.dim)
                                     : Eigen::VectorXd(static_cast<double>(obs.cols()) * offset_u_);
  t.grad_log_likelihood = [m, obs, paired, offset](const Eigen::MatrixXd& u) {
    Eigen::MatrixXd ur, xr;
    paired(u, ur, xr);
    const Eigen::MatrixXd s = m->score_u(ur, xr);
    Eigen::MatrixXd sum = -offset.replicate(1, u.cols());
    for (Eigen::Index i = 0; i < obs.cols(); ++i) sum += s.middleCols(i * u.cols(), u.cols());
    return sum;
  };
  if (model_.is_energy())
    t.log_likelihood = [m, obs, paired, offset](const Eigen::MatrixXd& u) {
      Eigen::MatrixXd ur, xr;
      paired(u, ur, xr);
      const Eigen::RowVectorXd e = m->energy_u(ur, xr);
      Eigen::RowVectorXd sum = -(offset.transpose() * u);
      for (Eigen::Index i = 0; i < obs.cols(); ++i) sum -= e.segment(i * u.cols(), u.cols());
      return sum;
    };
  t.sample_prior = [m, p](std::uint64_t seed, Eigen::Index n) {
    Eigen::MatrixXd theta(p->dim(), n);
    for (Eigen::Index c = 0; c < n; ++c) {
      // Redraw (deterministically) the rare draw that rounds onto a box face.
      for (std::uint64_t attempt = 0;; ++attempt) {
        CounterRng rng(seed, Stream::sampling, prior_draw_offset + static_cast<std::uint64_t>(c), attempt);
        p->sample(rng, {theta.col(c).data(), static_cast<std::size_t>(p->dim())});
        if (m->transform().to_unconstrained(theta.col(c)).allFinite() || attempt > 100) break;
      }
    }
    return m->transform().to_unconstrained(theta);
  };
  const auto& info = model_.info();
  if (info.u_min.size() == static_cast<std::size_t>(t.dim)) {
    Eigen::VectorXd lo(t.dim), hi(t.dim);
    for (int i = 0; i < t.dim; ++i) {
      const double w = info.u_max[static_cast<std::size_t>(i)] - info.u_min[static_cast<std::size_t>(i)];
      lo[i] = info.u_min[static_cast<std::size_t>(i)] - trusted_margin * w;
      hi[i] = info.u_max[static_cast<std::size_t>(i)] + trusted_margin * w;
    }
    t.in_trusted_region = [lo, hi](const Eigen::MatrixXd& u) {
      std::vector<bool> ok(static_cast<std::size_t>(u.cols()));
      for (Eigen::Index j = 0; j < u.cols(); ++j)
        ok[static_cast<std::size_t>(j)] = u.col(j).allFinite() && (u.col(j).array() >= lo.array()).all() &&
                                          (u.col(j).array() <= hi.array()).all();
      return ok;
    };
  }
  return t;
}

Eigen::MatrixXd Posterior::nearest_starts(const Table& observations, int chains, const PooledProposal* proposal,
                                          std::string& used) const {
  // The training pairs: in the same file (a run file) or the file the model names.
  std::string source;
  try {
    h5::File f = h5::File::open(path_);
    if (f.exists("simulations")) source = path_;
  } catch (const h5::Error&) {
  }
  std::error_code ec;
  if (source.empty() && fs::exists(model_.info().training_data, ec)) source = model_.info().training_data;
  if (source.empty()) {
    used = fmt::format("prior (training data {} not found for nearest-neighbour starts)", model_.info().training_data);
    return {};
  }
  const SimulationData data = read_simulations(source);
  const Eigen::Index n = data.x.rows(), k = data.x.cols(), d = data.theta.cols();
  if (n == 0 || k != observations.cols() || d != model_.theta_dim()) {
    used = "prior (training data does not match the model)";
    return {};
  }
  // Distances in x standardised by the training spread, summed over the observations.
  const Eigen::Map<const Eigen::MatrixXd> x(data.x.data(), k, n);
  const Eigen::VectorXd mean = x.rowwise().mean();
  Eigen::VectorXd sd = ((x.colwise() - mean).array().square().rowwise().sum() / std::max<Eigen::Index>(1, n - 1)).sqrt();
  for (Eigen::Index i = 0; i < k; ++i)
    if (!(sd[i] > 0)) sd[i] = 1;
  Eigen::VectorXd dist = Eigen::VectorXd::Zero(n);
  for (Eigen::Index i = 0; i < observations.rows(); ++i) {
    const Eigen::VectorXd o = observations.row(i).transpose();
    dist += ((x.colwise() - o).array().colwise() / sd.array()).square().colwise().sum().matrix().transpose();
  }
  std::vector<Eigen::Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Eigen::Index{0});
  const auto take = std::min<Eigen::Index>(n, 4 * static_cast<Eigen::Index>(chains));
  std::partial_sort(order.begin(), order.begin() + take, order.end(),
                    [&](Eigen::Index a, Eigen::Index b) { return dist[a] < dist[b] || (dist[a] == dist[b] && a < b); });
  const Eigen::Map<const Eigen::MatrixXd> theta(data.theta.data(), d, n);
  Eigen::MatrixXd starts(d, chains);
  int filled = 0;
  for (Eigen::Index j = 0; j < take && filled < chains; ++j) {
    const Eigen::MatrixXd u = model_.transform().to_unconstrained(theta.col(order[static_cast<std::size_t>(j)]));
    if (!u.allFinite()) continue;
    starts.col(filled++) = u;
  }
  // Fewer usable pairs than chains: cycle through the ones found.
  if (filled == 0) {
    used = "prior (no usable training pairs)";
    return {};
  }
  // Pairs of a sequential run came from its rounds' proposals, not from the prior: the nearest
  // ones hold θ in proportion to proposal × likelihood, so the starts would carry the earlier
  // rounds' (model-made) mode weights into the posterior. Resampled with weights prior / proposal
  // they hold θ in proportion to prior × likelihood again, as an amortised run's do.
  std::optional<PooledProposal> stored;
  if (!proposal) {
    // Not owned: the model's prior outlives this call and nothing here keeps a copy.
    stored = sampling::read_pooled_proposal(source, std::shared_ptr<const Prior>(std::shared_ptr<const Prior>{}, &model_.prior()));
    if (stored) proposal = &*stored;
  }
  if (proposal && proposal->rounds().size() > 1) {
    if (const Eigen::VectorXd w = sampling::prior_over_proposal(*proposal, starts.leftCols(filled)); w.size() > 0) {
      starts = sampling::systematic_resample(starts.leftCols(filled), w, chains);
      used = fmt::format("nearest ({} training pairs from {}, weighted by prior / proposal)",
                         std::min<Eigen::Index>(filled, chains), source);
      return starts;
    }
  }
  for (int c = filled; c < chains; ++c) starts.col(c) = starts.col(c % filled);
  used = fmt::format("nearest ({} training pairs from {})", std::min<Eigen::Index>(filled, chains), source);
  return starts;
}

PosteriorDraws Posterior::sample(const Table& observations, int n, const PosteriorOptions& options) const {
  if (n < 1) throw std::invalid_argument("the number of samples must be at least 1");
  if (options.sampler.chains < 1) throw std::invalid_argument("--chains must be at least 1");
  const SamplingTarget t = target(observations);
  SamplerSettings st = options.sampler;
  // Never more chains than samples asked for; SMC returns its particles in groups of at least 64.
  st.chains = st.method == SamplerMethod::smc ? std::min(st.chains, std::max(1, st.particles / 64))
                                              : std::min(st.chains, n);
  st.draws = (n + st.chains - 1) / st.chains;
  PosteriorDraws out;
  out.method = to_string(st.method);
  Eigen::MatrixXd init;
  if (options.init == "nearest") {
    init = nearest_starts(observations, st.chains, options.training_proposal.get(), out.init);
  } else if (options.init == "prior") {
    out.init = "prior";
  } else {
    throw std::invalid_argument(fmt::format("--init '{}': use nearest or prior", options.init));
  }
  if (init.size() == 0) init = t.sample_prior(st.seed, st.chains);
  out.result = run_sampler(t, init, st);
  const auto& chains = out.result.chains;
  out.chains = static_cast<int>(chains.size());
  out.draws = chains.empty() ? 0 : static_cast<int>(chains.front().rows());
  out.parameter_names = model_.info().parameter_names;
  const Eigen::Index d = model_.theta_dim();
  out.theta.resize(static_cast<Eigen::Index>(out.chains) * out.draws, d);
  for (int c = 0; c < out.chains; ++c) {
    const Eigen::MatrixXd th = model_.transform().to_constrained(chains[static_cast<std::size_t>(c)].transpose());
    out.theta.middleRows(static_cast<Eigen::Index>(c) * out.draws, out.draws) = th.transpose();
  }
  return out;
}

}  // namespace fsbi
