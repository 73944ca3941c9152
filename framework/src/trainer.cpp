// Fisher score matching trainer (docs/training.md).
//
// Data flow: θ → u = T⁻¹(θ) (unconstrained) → z = g(u), dz, d2z (network features) and
// x → standardised x; the prior score ∇u log π_u(u) is precomputed per pair. Each step draws a
// mini-batch, splits it into fixed blocks of columns, evaluates the objective and its gradient
// per block in parallel and sums the blocks in a fixed tree (ScoreNetwork::objective_sum_parallel),
// so the result does not depend on the thread count. Adam with warm-up and cosine decay; on a
// stall of the validation loss, back to the best parameters at a lower rate (a few times), then
// early stopping; the best parameters are kept.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/trainer.hpp"

#include "fsbi/prior.hpp"
#include "fsbi/random.hpp"
#include "fsbi/transform.hpp"
#include "fsbi/version.hpp"
#include "h5/h5.hpp"
#include "model_file.hpp"
#include "nn/score_network.hpp"
#include "output_path.hpp"

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <numbers>

namespace fsbi {
namespace fs = std::filesystem;

namespace {

using MatF = nn::Mat<float>;
using VecF = nn::Vec<float>;
constexpr Eigen::Index block_columns = 64;  // fixed: the reduction tree must not depend on threads

// ---- randomness helpers (all f(seed, purpose, counter)) ----------------------------------------

// Stream indices within Stream::training.
constexpr std::uint64_t rng_split = 0, rng_init = 1, rng_epoch_base = 1'000'000,
                        rng_probe_base = 1ull << 40, rng_jitter_base = 1ull << 41,
                        rng_validation = 1ull << 42;
// Ensemble member m > 0 offsets its shuffling and probe streams by m·2^36 (members ≤ 16, so the
// ranges stay apart) and its initialisation seed by m·2^48; member 0 is the single model.
constexpr std::uint64_t member_stream_stride = 1ull << 36, member_seed_stride = 1ull << 48;
constexpr int max_ensemble_members = 16;

std::vector<Eigen::Index> permutation(std::uint64_t seed, std::uint64_t index, Eigen::Index n) {
  std::vector<Eigen::Index> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), Eigen::Index{0});
  CounterRng rng(seed, Stream::training, index);
  for (Eigen::Index i = n - 1; i > 0; --i) {
    const auto j = static_cast<Eigen::Index>(rng.uniform() * static_cast<double>(i + 1));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(std::min(j, i))]);
  }
  return p;
}

MatF rademacher(std::uint64_t seed, std::uint64_t index, Eigen::Index d, Eigen::Index n) {
  MatF v(d, n);
  CounterRng rng(seed, Stream::training, index);
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < d; ++i) v(i, j) = (rng.next_u64() >> 63) ? 1.0f : -1.0f;
  return v;
}

Eigen::MatrixXd normals(std::uint64_t seed, std::uint64_t index, Eigen::Index d, Eigen::Index n) {
  Eigen::MatrixXd e(d, n);
  CounterRng rng(seed, Stream::training, index);
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < d; ++i) e(i, j) = rng.normal();
  return e;
}

// ---- the smoothed prior score for the latent objective -----------------------------------------

// Probabilists' Gauss–Hermite rule (Golub–Welsch): E[f(ξ)], ξ ~ N(0, 1) ≈ Σ w_i f(ξ_i).
struct GaussHermite {
  Eigen::VectorXd nodes, weights;
  explicit GaussHermite(int n) {
    Eigen::MatrixXd j = Eigen::MatrixXd::Zero(n, n);
    for (int i = 1; i < n; ++i) j(i, i - 1) = j(i - 1, i) = std::sqrt(static_cast<double>(i));
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(j);
    nodes = es.eigenvalues();
    weights = es.eigenvectors().row(0).transpose().array().square();
  }
};

// ∇ũ log (π_u ∗ N(0, diag e²))(ũ): the score of the jittered parameters' marginal, which the
// latent regression's optimum contains and the likelihood score does not (docs/training.md).
Eigen::MatrixXd smoothed_prior_score(const Prior& prior, const ParameterTransform& tr,
                                     const Eigen::MatrixXd& ut, const Eigen::VectorXd& e) {
  if (auto g = prior.gaussian_form()) {
    Eigen::MatrixXd c = g->covariance;
    c.diagonal() += e.array().square().matrix();
    const Eigen::LLT<Eigen::MatrixXd> llt(c);
    return -llt.solve(ut.colwise() - g->mean);
  }
  // Box coordinates: u has the standard logistic density σ(u)σ(−u) whatever the box; convolve
  // numerically per coordinate. A uniform prior trained without the transform (u = θ) has the
  // closed form log(Φ((b − ũ)/e) − Φ((a − ũ)/e)).
  static const GaussHermite gh(48);
  const Eigen::VectorXd lo = prior.lower_bounds(), hi = prior.upper_bounds();
  Eigen::MatrixXd out(ut.rows(), ut.cols());
  for (Eigen::Index i = 0; i < ut.rows(); ++i) {
    const CoordinateMap map = tr.maps()[static_cast<std::size_t>(i)];
    if (map == CoordinateMap::identity && std::isfinite(lo[i]) && std::isfinite(hi[i])) {
      for (Eigen::Index j = 0; j < ut.cols(); ++j) {
        const double za = (lo[i] - ut(i, j)) / e[i], zb = (hi[i] - ut(i, j)) / e[i];
        // q = Φ(zb) − Φ(za) (from the nearer tail, without cancellation); dq/dũ =
        // (φ(za) − φ(zb))/e. Where q underflows, the Mills-ratio limit: z/e of the nearer face.
        const double r2 = std::sqrt(2.0);
        const double q = za > 0 ? 0.5 * (std::erfc(za / r2) - std::erfc(zb / r2))
                                : 0.5 * (std::erfc(-zb / r2) - std::erfc(-za / r2));
        const double phi_a = std::exp(-0.5 * za * za), phi_b = std::exp(-0.5 * zb * zb);
        const double dq = (phi_a - phi_b) / (std::sqrt(2.0 * M_PI) * e[i]);
        out(i, j) = q > 1e-280 ? dq / q : (zb < 0 ? zb / e[i] : za / e[i]);
      }
      continue;
    }
    if (map != CoordinateMap::box)
      throw TrainingError("latent objective: unsupported prior for the smoothed prior score (" +
                          prior.spec() + "): use a Gaussian, log-normal or uniform prior");
    for (Eigen::Index j = 0; j < ut.cols(); ++j) {
      double q = 0, dq = 0;
      for (Eigen::Index m = 0; m < gh.nodes.size(); ++m) {
        const double u = ut(i, j) - e[i] * gh.nodes[m];
        const double s = 1.0 / (1.0 + std::exp(-u));
        const double dens = s * (1.0 - s);
        q += gh.weights[m] * dens;
        dq += gh.weights[m] * dens * (1.0 - 2.0 * s);
      }
      out(i, j) = q > 0 ? dq / q : (ut(i, j) > 0 ? -1.0 : 1.0);
    }
  }
  return out;
}

// ---- prepared training arrays ------------------------------------------------------------------

struct Prepared {
  Eigen::MatrixXd u;  // d × n
  MatF z, dz, d2z, x, prior_score;
};

void featurize(const FeatureMap& fm, const Eigen::MatrixXd& u, MatF& z, MatF& dz, MatF& d2z) {
  Eigen::MatrixXd zz, dd, d2;
  fm.apply(u, zz, dd, d2);
  z = zz.cast<float>();
  dz = dd.cast<float>();
  d2z = d2.cast<float>();
}

// The same, with the prior's (or proposal's) score, and --box-weight linear applied.
void featurize(const FeatureMap& fm, const Eigen::MatrixXd& u, Eigen::MatrixXd prior_score, bool box_linear,
               Prepared& p) {
  Eigen::MatrixXd zz, dd, d2;
  fm.apply(u, zz, dd, d2);
  if (box_linear) weigh_box_edges(fm, u, dd, d2, prior_score);
  p.z = zz.cast<float>();
  p.dz = dd.cast<float>();
  p.d2z = d2.cast<float>();
  p.prior_score = prior_score.cast<float>();
}

struct Adam {
  VecF m, v;
  std::int64_t step = 0;
  void init(Eigen::Index n) {
    m = VecF::Zero(n);
    v = VecF::Zero(n);
    step = 0;
  }
  void update(VecF& p, const VecF& g, double lr) {
    constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    ++step;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g.cwiseProduct(g);
    const double c1 = 1 - std::pow(0.9, static_cast<double>(step));
    const double c2 = 1 - std::pow(0.999, static_cast<double>(step));
    const float a = static_cast<float>(lr * std::sqrt(c2) / c1);
    p.array() -= a * m.array() / (v.array().sqrt() + eps);
  }
};

}  // namespace

int automatic_batch_size(std::int64_t num_train) {
  int batch = automatic_batch_max;
  while (batch > automatic_batch_min && num_train < static_cast<std::int64_t>(min_steps_per_epoch) * batch) batch /= 2;
  return batch;
}

double automatic_learning_rate(int batch_size) {
  return automatic_rate_at_max_batch * automatic_batch_max / batch_size;
}

namespace {

double learning_rate(const TrainingSettings& s, int epoch) {
  if (epoch < s.warmup_epochs) return s.learning_rate * (epoch + 1) / (s.warmup_epochs + 1);
  const double t = static_cast<double>(epoch - s.warmup_epochs) /
                   std::max(1, s.max_epochs - s.warmup_epochs);
  const double lo = s.learning_rate * s.final_lr_fraction;
  return lo + 0.5 * (s.learning_rate - lo) * (1 + std::cos(std::numbers::pi * std::min(1.0, t)));
}

// Objective (sum over the columns) and optionally its gradient: blocks of block_columns samples
// in parallel, summed in a fixed tree (nn::ScoreNetwork::objective_sum_parallel).
struct Partial {
  double loss = 0;
  VecF grad;
};

Partial evaluate(const nn::ScoreNetwork<float>& net, const nn::BatchInputs<float>& b,
                 nn::Objective obj, bool with_grad) {
  Partial p;
  p.loss = net.objective_sum_parallel(b, obj, with_grad ? &p.grad : nullptr, block_columns);
  return p;
}

std::string fingerprint(const TrainingSettings& s, const std::string& data_label, Eigen::Index n) {
  return fmt::format("kind={};objective={};hidden={};ensemble={};activation={};epochs={};batch={};lr={};final={};"
                     "warmup={};val={};patience={};reductions={}x{};clip={};sigma={};box={};seed={};unconstrained={};data={};n={}",
                     s.model_kind, s.objective, fmt::join(s.hidden, ","), s.ensemble, s.activation, s.max_epochs,
                     s.batch_size, s.learning_rate, s.final_lr_fraction, s.warmup_epochs,
                     s.validation_fraction, s.patience, s.lr_reductions, s.lr_reduction_factor, s.clip_norm, s.latent_sigma, s.box_weight, s.seed,
                     s.unconstrained, data_label, n);
}

// Training state that a checkpoint carries.
struct State {
  int next_epoch = 0, best_epoch = -1, since_best = 0;
  int reductions = 0;  // learning-rate reductions taken so far
  double best_loss = std::numeric_limits<double>::infinity();
  VecF params, best_params;
  Adam adam;
  std::vector<double> train_loss, val_loss, lr;
};

void write_floats(h5::Group& g, const char* name, const VecF& v) {
  Eigen::VectorXd d = v.cast<double>();
  h5::Dataset ds = g.create_dataset(name, h5::DType::f32, {static_cast<std::uint64_t>(d.size())});
  ds.write_rows(0, static_cast<std::uint64_t>(d.size()), std::span<const double>(d.data(), d.size()));
}
VecF read_floats(const h5::Group& g, const char* name) {
  const auto v = g.open_dataset(name).read_all_double();
  return Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size())).cast<float>();
}
void write_doubles(h5::Group& g, const char* name, const std::vector<double>& v) {
  h5::Dataset ds = g.create_dataset(name, h5::DType::f64, {v.size()});
  if (!v.empty()) ds.write_rows(0, v.size(), std::span<const double>(v));
}

void save_checkpoint(const std::string& path, const std::string& fp, const State& s) {
  const std::string tmp = path + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.set_attribute("fsbi_format", "fsbi-training-checkpoint");
    h5::Group g = f.create_group("checkpoint");
    g.set_attribute("fingerprint", fp);
    g.set_attribute("next_epoch", static_cast<std::int64_t>(s.next_epoch));
    g.set_attribute("best_epoch", static_cast<std::int64_t>(s.best_epoch));
    g.set_attribute("since_best", static_cast<std::int64_t>(s.since_best));
    g.set_attribute("lr_reductions", static_cast<std::int64_t>(s.reductions));
    g.set_attribute("best_loss", s.best_loss);
    g.set_attribute("adam_step", static_cast<std::int64_t>(s.adam.step));
    write_floats(g, "params", s.params);
    write_floats(g, "best_params", s.best_params);
    write_floats(g, "adam_m", s.adam.m);
    write_floats(g, "adam_v", s.adam.v);
    write_doubles(g, "train_loss", s.train_loss);
    write_doubles(g, "validation_loss", s.val_loss);
    write_doubles(g, "learning_rate", s.lr);
    f.close();
  }
  fs::rename(tmp, path);
}

State load_checkpoint(const std::string& path, const std::string& fp) {
  h5::File f = h5::File::open(path);
  h5::Group g = f.open_group("checkpoint");
  if (g.attribute_string("fingerprint") != fp)
    throw TrainingError(fmt::format(
        "{}: was written by a training run with other settings or data; resume with the original "
        "settings, or delete the checkpoint to start over (stored: {})",
        path, g.attribute_string("fingerprint")));
  State s;
  s.next_epoch = static_cast<int>(g.attribute_int("next_epoch"));
  s.best_epoch = static_cast<int>(g.attribute_int("best_epoch"));
  s.since_best = static_cast<int>(g.attribute_int("since_best"));
  s.reductions = static_cast<int>(g.attribute_int("lr_reductions"));
  s.best_loss = g.attribute_double("best_loss");
  s.adam.step = g.attribute_int("adam_step");
  s.params = read_floats(g, "params");
  s.best_params = read_floats(g, "best_params");
  s.adam.m = read_floats(g, "adam_m");
  s.adam.v = read_floats(g, "adam_v");
  s.train_loss = g.open_dataset("train_loss").read_all_double();
  s.val_loss = g.open_dataset("validation_loss").read_all_double();
  s.lr = g.open_dataset("learning_rate").read_all_double();
  return s;
}

}  // namespace

std::string box_weight_problem(std::string_view box_weight) {
  if (box_weight == "square" || box_weight == "linear") return {};
  return fmt::format("--box-weight '{}': give square or linear", box_weight);
}

TrainingReport train_score_model(const std::string& data_path, const TrainingSettings& settings,
                                 const std::string& output) {
  SimulationData data = read_simulations(data_path);
  if (data.status != "complete")
    throw TrainingError(fmt::format("{}: the simulation run is not complete (status '{}'); finish it "
                                    "with `fsbi simulate ... --resume` first",
                                    data_path, data.status));
  if (data.prior_source.starts_with(sequential_prior_source))
    throw TrainingError(fmt::format("{}: these pairs come from sequential rounds, whose θ's were not drawn from the "
                                    "prior; training on them as if they were would be biased. Their model is the "
                                    "run's /model; to retrain, rerun `fsbi run --rounds ...`",
                                    data_path));
  return train_score_model(data, data_path, settings, output);
}

TrainingReport train_score_model(const SimulationData& data, const std::string& data_label,
                                 const TrainingSettings& settings, const std::string& output,
                                 const TrainingProposal* proposal) {
  TrainingSettings st = settings;  // the automatic batch size and rate resolved once the split is known
  const auto t_start = std::chrono::steady_clock::now();
  const Eigen::Index d = data.theta.cols(), k = data.x.cols();
  if (data.theta.rows() != data.x.rows())
    throw TrainingError(fmt::format("{}: {} theta rows but {} x rows", data_label, data.theta.rows(), data.x.rows()));
  if (data.theta.rows() < min_training_simulations)
    throw TrainingError(fmt::format("{}: {} simulations are too few to train on (need at least {})",
                                    data_label, data.theta.rows(), min_training_simulations));
  if (st.batch_size < 0)
    throw TrainingError(fmt::format("--batch-size {}: give a positive size, or 0 for the automatic one", st.batch_size));
  if (st.max_epochs < 1) throw TrainingError("--epochs must be at least 1");
  if (!(st.validation_fraction > 0 && st.validation_fraction < 0.9))
    throw TrainingError("--validation-fraction must be in (0, 0.9)");
  if (!(st.learning_rate >= 0 && std::isfinite(st.learning_rate)))
    throw TrainingError(fmt::format("--learning-rate {}: give a positive rate, or 0 for the automatic one",
                                    st.learning_rate));
  if (const std::string problem = box_weight_problem(st.box_weight); !problem.empty()) throw TrainingError(problem);
  if (st.lr_reductions < 0 || st.lr_reductions > 10)
    throw TrainingError(fmt::format("--lr-reductions {}: give 0 (stop at the first stall) to 10", st.lr_reductions));
  if (!(st.lr_reduction_factor > 0 && st.lr_reduction_factor < 1))
    throw TrainingError(fmt::format("--lr-reduction-factor {}: give a factor in (0, 1), e.g. 0.3",
                                    st.lr_reduction_factor));
  if (st.hidden.empty()) throw TrainingError("--hidden needs at least one layer width");
  if (st.ensemble < 1 || st.ensemble > max_ensemble_members)
    throw TrainingError(fmt::format("--ensemble must be between 1 and {}", max_ensemble_members));
  for (int w : st.hidden)
    if (w < 1) throw TrainingError("--hidden: layer widths must be at least 1");
  if (output.empty()) throw TrainingError("no output file given (--output FILE)");
  if (const std::string problem = output_path_problem(output, st.overwrite); !problem.empty())
    throw TrainingError(problem);
  std::error_code ec;
  const std::string checkpoint = output + ".checkpoint";
  if (fs::exists(checkpoint, ec) && !st.resume)
    throw TrainingError(fmt::format("{} exists: an earlier training run was interrupted; continue it with "
                                    "--resume (same settings) or delete {}",
                                    checkpoint, checkpoint));
  if (st.resume && !fs::exists(checkpoint, ec))
    throw TrainingError(fmt::format("--resume: there is no interrupted training run to continue ({} does not exist)",
                                    checkpoint));

  nn::Architecture arch;
  try {
    arch.kind = nn::parse_model_kind(st.model_kind);
    arch.activation = nn::parse_activation(st.activation);
  } catch (const std::invalid_argument& e) {
    throw TrainingError(e.what());
  }
  arch.theta_dim = static_cast<int>(d);
  arch.x_dim = static_cast<int>(k);
  arch.hidden = st.hidden;
  nn::Objective objective;
  if (st.objective == "auto")
    objective = d <= auto_objective_max_exact_dim ? nn::Objective::ibp : nn::Objective::sliced;
  else
    try {
      objective = nn::parse_objective(st.objective);
    } catch (const std::invalid_argument& e) {
      throw TrainingError(e.what());
    }

  // The box weight applies where the objective has u-coordinates to weigh: not in θ (unconstrained
  // = false, where the weight is the transform's) and not for the latent objective.
  const bool weighed = objective != nn::Objective::latent && st.unconstrained;
  const bool box_linear = weighed && st.box_weight == "linear";
  if (proposal && !st.unconstrained)
    throw TrainingError("training on pairs drawn from a proposal needs the unconstrained coordinates");
  if (proposal && objective == nn::Objective::latent)
    throw TrainingError("the latent objective cannot train on pairs drawn from a proposal: use ibp or sliced");
  if (proposal && !proposal->score_u) throw TrainingError("the training proposal has no score function");
  std::unique_ptr<Prior> prior;
  try {
    prior = parse_prior(data.prior, static_cast<int>(d));
  } catch (const PriorSpecError& e) {
    throw TrainingError(fmt::format("{}: the stored prior cannot be used: {}", data_label, e.what()));
  }
  const ParameterTransform transform =
      st.unconstrained ? ParameterTransform::for_prior(*prior)
                       : ParameterTransform(std::vector<CoordinateMap>(static_cast<std::size_t>(d), CoordinateMap::identity),
                                            prior->lower_bounds(), prior->upper_bounds());

  // θ (n × d row-major) is the same memory as d × n column-major.
  const Eigen::Index n_all = data.theta.rows();
  const Eigen::Map<const Eigen::MatrixXd> theta(data.theta.data(), d, n_all);
  const Eigen::Map<const Eigen::MatrixXd> xall(data.x.data(), k, n_all);
  Eigen::MatrixXd u_all = transform.to_unconstrained(theta);
  std::vector<Eigen::Index> usable;
  for (Eigen::Index j = 0; j < n_all; ++j)
    if (u_all.col(j).allFinite() && xall.col(j).allFinite()) usable.push_back(j);
  if (usable.size() < 20)
    throw TrainingError(fmt::format("{}: fewer than 20 pairs lie strictly inside the prior's support", data_label));

  // Deterministic split.
  const auto n = static_cast<Eigen::Index>(usable.size());
  const auto perm = permutation(st.seed, rng_split, n);
  const Eigen::Index n_val = std::max<Eigen::Index>(1, std::llround(st.validation_fraction * static_cast<double>(n)));
  std::vector<Eigen::Index> val_idx, train_idx;
  for (Eigen::Index i = 0; i < n; ++i)
    (i < n_val ? val_idx : train_idx).push_back(usable[static_cast<std::size_t>(perm[static_cast<std::size_t>(i)])]);
  std::sort(val_idx.begin(), val_idx.end());
  std::sort(train_idx.begin(), train_idx.end());
  const Eigen::Index n_train = static_cast<Eigen::Index>(train_idx.size());
  if (st.batch_size == 0) st.batch_size = automatic_batch_size(n_train);
  if (st.learning_rate == 0) st.learning_rate = automatic_learning_rate(st.batch_size);

  Prepared tr, va;
  tr.u = u_all(Eigen::all, train_idx);
  va.u = u_all(Eigen::all, val_idx);
  // Standardisation: on the training pairs, or on those of the proposal's reference rows.
  std::vector<Eigen::Index> std_idx;
  if (proposal && proposal->standardize_rows > 0)
    for (Eigen::Index j : train_idx)
      if (j < proposal->standardize_rows) std_idx.push_back(j);
  if (std_idx.size() < 20) std_idx = train_idx;
  const FeatureMap features = FeatureMap::fit(transform, u_all(Eigen::all, std_idx));
  const Standardizer xstd = Standardizer::fit(xall(Eigen::all, std_idx));
  tr.x = xstd.apply(xall(Eigen::all, train_idx)).cast<float>();
  va.x = xstd.apply(xall(Eigen::all, val_idx)).cast<float>();

  // Per-coordinate jitter sd for the latent objective: latent_sigma × the spread of u.
  Eigen::VectorXd jitter_sd(d);
  for (Eigen::Index i = 0; i < d; ++i) {
    const double m = tr.u.row(i).mean();
    const double sd = std::sqrt((tr.u.row(i).array() - m).square().sum() / std::max<Eigen::Index>(1, n_train - 1));
    jitter_sd[i] = st.latent_sigma * (sd > 0 ? sd : 1.0);
  }
  if (objective == nn::Objective::latent && !(st.latent_sigma > 0))
    throw TrainingError("--latent-sigma must be positive for the latent objective");

  auto fill_inputs = [&](Prepared& p, std::uint64_t jitter_stream) {
    if (objective == nn::Objective::latent) {
      // Jitter already-simulated pairs in u: ũ = u − ε. The regression target ε/σ² has the
      // score of the smoothed joint as its optimum; subtracting the smoothed prior's score leaves
      // the (smoothed) likelihood score (docs/training.md).
      const Eigen::MatrixXd eps = jitter_sd.asDiagonal() * normals(st.seed, jitter_stream, d, p.u.cols());
      const Eigen::MatrixXd ut = p.u - eps;
      featurize(features, ut, p.z, p.dz, p.d2z);
      const Eigen::MatrixXd target = jitter_sd.array().square().inverse().matrix().asDiagonal() * eps -
                                     smoothed_prior_score(*prior, transform, ut, jitter_sd);
      p.prior_score = target.cast<float>();  // kept in prior_score's slot; becomes BatchInputs::target
    } else {
      Eigen::MatrixXd q;
      if (proposal) {
        q = proposal->score_u(p.u);
        if (q.rows() != p.u.rows() || q.cols() != p.u.cols() || !q.allFinite())
          throw TrainingError(fmt::format("{}: the proposal's score is not finite at every training pair", data_label));
      } else {
        q = transform.prior_score(*prior, p.u);
      }
      featurize(features, p.u, std::move(q), box_linear, p);
    }
  };
  fill_inputs(va, rng_validation);
  if (objective != nn::Objective::latent) fill_inputs(tr, 0);

  auto batch_of = [&](const Prepared& p, const std::vector<Eigen::Index>& cols) {
    nn::BatchInputs<float> b;
    b.z = p.z(Eigen::all, cols);
    b.dz = p.dz(Eigen::all, cols);
    b.d2z = p.d2z(Eigen::all, cols);
    b.x = p.x(Eigen::all, cols);
    if (objective == nn::Objective::latent)
      b.target = p.prior_score(Eigen::all, cols);
    else
      b.prior_score = p.prior_score(Eigen::all, cols);
    return b;
  };

  const int threads = st.threads > 0 ? st.threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));

  // An ensemble trains `members` independent networks (own initialisation and batch order) side by
  // side; the parameters are their concatenation, member-major, and the model's score is the
  // members' mean (docs/training.md#ensembles).
  nn::ScoreNetwork<float> net(arch);
  const Eigen::Index np = net.num_parameters();
  const int members = st.ensemble;
  const std::string fp =
      fingerprint(st, data_label, n_all) + (proposal ? ";proposal=" + proposal->description : std::string());
  State s;
  if (st.resume) {
    s = load_checkpoint(checkpoint, fp);
    if (s.params.size() != np * members)
      throw TrainingError(fmt::format("{}: checkpoint does not match the network", checkpoint));
  } else {
    s.params.resize(np * members);
    for (int m = 0; m < members; ++m) {
      net.initialize((st.seed ^ rng_init) + static_cast<std::uint64_t>(m) * member_seed_stride);
      s.params.segment(m * np, np) = net.parameters();
    }
    s.best_params = s.params;
    s.adam.init(np * members);
  }
  auto member_loss = [&](const VecF& params, const nn::BatchInputs<float>& b) {
    double sum = 0;
    for (int m = 0; m < members; ++m) {
      net.parameters() = params.segment(m * np, np);
      sum += evaluate(net, b, objective, false).loss;
    }
    return sum / members;
  };

  // Validation batch: fixed probes so epochs compare.
  nn::BatchInputs<float> vb;
  {
    std::vector<Eigen::Index> all(static_cast<std::size_t>(va.u.cols()));
    std::iota(all.begin(), all.end(), Eigen::Index{0});
    vb = batch_of(va, all);
    if (objective == nn::Objective::sliced) vb.probe = rademacher(st.seed, rng_validation, d, va.u.cols());
  }

  ProgressReporter progress("training", "epoch", static_cast<std::uint64_t>(st.max_epochs), st.progress);
  progress.set_resumed_from(static_cast<std::uint64_t>(s.next_epoch));
  auto last_checkpoint = std::chrono::steady_clock::now();
  bool stopped_early = false;
  const Eigen::Index bs = std::min<Eigen::Index>(st.batch_size, n_train);
  const auto t_loop = std::chrono::steady_clock::now();
  std::uint64_t samples_seen = 0;

  for (int epoch = s.next_epoch; epoch < st.max_epochs; ++epoch) {
    const double lr = learning_rate(st, epoch) * std::pow(st.lr_reduction_factor, s.reductions);
    if (objective == nn::Objective::latent) fill_inputs(tr, rng_jitter_base + static_cast<std::uint64_t>(epoch));
    std::vector<std::vector<Eigen::Index>> orders;
    for (int m = 0; m < members; ++m)
      orders.push_back(permutation(st.seed,
                                   rng_epoch_base + static_cast<std::uint64_t>(epoch) +
                                       static_cast<std::uint64_t>(m) * member_stream_stride,
                                   n_train));
    double loss_sum = 0;
    const Eigen::Index batches = n_train / bs;  // drop the ragged tail: every step sees bs pairs
    VecF g(np * members);
    for (Eigen::Index bi = 0; bi < batches; ++bi) {
      for (int m = 0; m < members; ++m) {
        const auto& order = orders[static_cast<std::size_t>(m)];
        std::vector<Eigen::Index> cols(order.begin() + bi * bs, order.begin() + (bi + 1) * bs);
        nn::BatchInputs<float> b = batch_of(tr, cols);
        if (objective == nn::Objective::sliced)
          b.probe = rademacher(st.seed,
                               rng_probe_base + static_cast<std::uint64_t>(epoch) * 1'000'003ull +
                                   static_cast<std::uint64_t>(bi) + static_cast<std::uint64_t>(m) * member_stream_stride,
                               d, bs);
        net.parameters() = s.params.segment(m * np, np);
        Partial p = evaluate(net, b, objective, true);
        auto gm = g.segment(m * np, np);
        gm = p.grad / static_cast<float>(bs);
        if (!gm.allFinite() || !std::isfinite(p.loss))
          throw TrainingError(fmt::format(
              "training diverged at epoch {} (non-finite loss or gradient); try a smaller --learning-rate "
              "or --clip-norm 10",
              epoch + 1));
        if (st.clip_norm > 0) {  // per member: each network's gradient is clipped on its own
          const double norm = gm.cast<double>().norm();
          if (norm > st.clip_norm) gm *= static_cast<float>(st.clip_norm / norm);
        }
        loss_sum += p.loss / members;
      }
      s.adam.update(s.params, g, lr);  // element-wise: the same as one Adam per member
    }
    samples_seen += static_cast<std::uint64_t>(batches * bs * members);
    const double train_loss = loss_sum / static_cast<double>(batches * bs);
    const double val_loss = member_loss(s.params, vb) / static_cast<double>(vb.size());
    s.train_loss.push_back(train_loss);
    s.val_loss.push_back(val_loss);
    s.lr.push_back(lr);
    if (val_loss < s.best_loss) {
      s.best_loss = val_loss;
      s.best_epoch = epoch;
      s.best_params = s.params;
      s.since_best = 0;
    } else {
      ++s.since_best;
    }
    s.next_epoch = epoch + 1;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_loop).count();
    progress.update(static_cast<std::uint64_t>(epoch + 1),
                    fmt::format("train {:.5g} validation {:.5g} (best {:.5g} @{}) lr {:.2g} {}/s", train_loss,
                                val_loss, s.best_loss, s.best_epoch + 1, lr,
                                format_count(secs > 0 ? static_cast<double>(samples_seen) / secs : 0.0)));
    if (!std::isfinite(val_loss))
      throw TrainingError(fmt::format("training diverged at epoch {} (validation loss {}); try a smaller "
                                      "--learning-rate or --clip-norm 10",
                                      epoch + 1, val_loss));
    bool stop = false;
    if (s.since_best >= st.patience) {
      if (s.reductions < st.lr_reductions) {  // stalled: go back to the best fit at a lower rate
        ++s.reductions;
        s.params = s.best_params;
        s.since_best = 0;
      } else {
        stop = true;
      }
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count() >=
            st.checkpoint_seconds && !stop &&
        epoch + 1 < st.max_epochs) {
      save_checkpoint(checkpoint, fp, s);
      last_checkpoint = std::chrono::steady_clock::now();
    }
    if (stop) {
      stopped_early = true;
      break;
    }
  }

  StoredModel m;
  m.architecture = arch;
  m.members = members;
  m.parameters = s.best_params;
  m.transform = transform;
  m.features = features;
  m.x_standardizer = xstd;
  ModelInfo& info = m.info;
  info.kind = std::string(nn::to_string(arch.kind));
  info.activation = std::string(nn::to_string(arch.activation));
  info.hidden = arch.hidden;
  info.objective = std::string(nn::to_string(objective));
  info.parameter_names = data.parameter_names;
  info.data_names = data.data_names;
  info.simulator_name = data.simulator_name;
  info.simulator_version = data.simulator_version;
  info.simulator_options = data.simulator_options;
  info.prior = prior->spec();
  info.training_data = data_label;
  if (proposal) info.training_proposal = proposal->description;
  info.seed = st.seed;
  info.batch_size = st.batch_size;
  info.num_train = static_cast<std::uint64_t>(n_train);
  info.num_validation = static_cast<std::uint64_t>(val_idx.size());
  info.epochs = static_cast<int>(s.train_loss.size());
  info.best_epoch = s.best_epoch + 1;
  info.best_validation_loss = s.best_loss;
  info.latent_sigma = objective == nn::Objective::latent ? st.latent_sigma : 0.0;
  info.box_weight = weighed ? st.box_weight : "none";
  for (Eigen::Index i = 0; i < d; ++i) {
    info.u_min.push_back(tr.u.row(i).minCoeff());
    info.u_max.push_back(tr.u.row(i).maxCoeff());
  }
  info.train_loss = s.train_loss;
  info.validation_loss = s.val_loss;
  info.learning_rate = s.lr;

  const std::string partial = output + ".partial";
  {
    h5::File f = h5::File::create(partial);
    write_model(f, m);
    f.close();
  }
  fs::rename(partial, output);
  fs::remove(checkpoint, ec);

  TrainingReport r;
  r.output = output;
  r.objective = info.objective;
  r.epochs = info.epochs;
  r.best_epoch = info.best_epoch;
  r.batch_size = st.batch_size;
  r.learning_rate = st.learning_rate;
  r.best_validation_loss = s.best_loss;
  r.num_train = info.num_train;
  r.num_validation = info.num_validation;
  r.stopped_early = stopped_early;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  progress.finish(fmt::format("best validation loss {:.5g} at epoch {}{}", s.best_loss, info.best_epoch,
                              stopped_early ? " (stopped early)" : ""));
  return r;
}

}  // namespace fsbi
