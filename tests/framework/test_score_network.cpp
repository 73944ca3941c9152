// Score networks: every hand-written derivative against central differences in float64 (STYLE
// point 10: relative tolerance with an absolute floor, worst error printed), objective values
// against a slow per-sample reference, determinism, float32 vs float64, and thread safety.
//
// Inputs are built from u with the box feature map z = √3·tanh(u/2), so dz and d2z are the exact
// derivatives of z(u) and finite differences in u check the chain rule through z, including
// the d2z terms of the divergence.
#include "nn/score_network.hpp"

#include "fsbi/random.hpp"
#include "fsbi/transform.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

namespace fsbi::nn {
namespace {

using Eigen::Index;
using MatD = Mat<double>;
using VecD = Vec<double>;

constexpr double kFdStep = 1e-5;

// Worst relative error |a − b| / max(|b|, floor) over a set of comparisons.
struct Worst {
  Worst(std::string w, double f) : what(std::move(w)), floor(f) {}
  std::string what;
  double floor;
  double err = 0;
  double at_a = 0, at_b = 0;
  std::string where;
  void add(double a, double b, const std::string& loc = "") {
    const double e = std::abs(a - b) / std::max(std::abs(b), floor);
    if (e > err || (err == 0 && where.empty())) {
      err = e;
      at_a = a;
      at_b = b;
      where = loc;
    }
  }
  void report(double tol) const {
    std::cout << "[fd] " << what << ": worst relative error " << err << " (analytic " << at_a
              << ", reference " << at_b << (where.empty() ? "" : ", at " + where) << ")\n";
    EXPECT_LT(err, tol) << what << " at " << where;
  }
};

struct Case {
  ModelKind kind;
  Activation act;
};
std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(to_string(info.param.kind)) + "_" + std::string(to_string(info.param.act));
}

Architecture tiny(ModelKind kind, Activation act, int d = 3, int k = 2) {
  Architecture a;
  a.kind = kind;
  a.theta_dim = d;
  a.x_dim = k;
  a.hidden = {5, 4};
  a.activation = act;
  return a;
}

// Gaussian draws of a given shape from Stream::test.
MatD normal(std::uint64_t seed, std::uint64_t index, Index rows, Index cols, double scale = 1) {
  CounterRng rng(seed, Stream::test, index);
  MatD m(rows, cols);
  for (Index j = 0; j < cols; ++j)
    for (Index i = 0; i < rows; ++i) m(i, j) = scale * rng.normal();
  return m;
}

// A network with every parameter O(0.5) (Glorot init plus noise, biases nonzero), so no
// derivative term is small by accident.
ScoreNetwork<double> make_net(const Architecture& arch, std::uint64_t seed) {
  ScoreNetwork<double> net(arch);
  net.initialize(seed);
  net.parameters() += normal(seed, 1, net.num_parameters(), 1, 0.3);
  return net;
}

struct Features {
  MatD z, dz, d2z;
};
Features box_features(const MatD& u) {
  const double r3 = std::sqrt(3.0);
  const auto t = (u.array() / 2).tanh();
  Features f;
  f.z = (r3 * t).matrix();
  f.dz = (r3 / 2 * (1 - t.square())).matrix();
  f.d2z = (-r3 / 2 * t * (1 - t.square())).matrix();
  return f;
}

struct Problem {
  MatD u;
  BatchInputs<double> batch;
};
Problem make_problem(const Architecture& arch, std::uint64_t seed, Index n) {
  Problem p;
  p.u = normal(seed, 10, arch.theta_dim, n, 1.5);
  Features f = box_features(p.u);
  p.batch.z = f.z;
  p.batch.dz = f.dz;
  p.batch.d2z = f.d2z;
  p.batch.x = normal(seed, 11, arch.x_dim, n);
  p.batch.prior_score = normal(seed, 12, arch.theta_dim, n);
  p.batch.target = normal(seed, 13, arch.theta_dim, n);
  CounterRng rng(seed, Stream::test, 14);
  p.batch.probe.resize(arch.theta_dim, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < arch.theta_dim; ++i) p.batch.probe(i, j) = (rng.next_u64() >> 63) ? 1.0 : -1.0;
  return p;
}

// A batch with f applied to each of its matrices.
template <class T, class F>
auto map_inputs(const BatchInputs<T>& b, F f) {
  BatchInputs<typename decltype(f(b.z))::Scalar> out;
  out.z = f(b.z);
  out.dz = f(b.dz);
  out.d2z = f(b.d2z);
  out.x = f(b.x);
  out.prior_score = f(b.prior_score);
  out.probe = f(b.probe);
  out.target = f(b.target);
  return out;
}
BatchInputs<float> to_float(const BatchInputs<double>& b) {
  return map_inputs(b, [](const MatD& m) { return Mat<float>(m.cast<float>()); });
}


// s_u at unconstrained parameters u (d × n).
MatD score_at(const ScoreNetwork<double>& net, const MatD& u, const MatD& x) {
  const Features f = box_features(u);
  MatD s;
  net.score(f.z, f.dz, x, s);
  return s;
}

// ---- A slow, obviously-correct reference: one sample at a time, plain loops. ----

VecD ref_output(const ScoreNetwork<double>& net, const VecD& z, const VecD& x) {
  const Architecture& arch = net.architecture();
  const double* p = net.parameters().data();
  VecD a(z.size() + x.size());
  a << z, x;
  const int L = static_cast<int>(arch.hidden.size());
  for (int i = 0; i <= L; ++i) {
    const Index in = a.size(), out = i == L ? arch.output_dim() : arch.hidden[i];
    VecD h(out);
    for (Index r = 0; r < out; ++r) {
      double acc = p[out * in + r];  // bias follows W (out × in, column-major)
      for (Index c = 0; c < in; ++c) acc += p[c * out + r] * a(c);
      h(r) = acc;
    }
    p += out * in + out;
    if (i == L) return h;
    for (Index r = 0; r < out; ++r) {
      const double v = h(r);
      switch (arch.activation) {
        case Activation::silu: h(r) = v / (1 + std::exp(-v)); break;
        case Activation::tanh: h(r) = std::tanh(v); break;
        case Activation::elu: h(r) = v > 0 ? v : std::expm1(v); break;
        case Activation::softplus: h(r) = std::log1p(std::exp(v)); break;
      }
    }
    a = h;
  }
  return a;
}

double ref_energy_u(const ScoreNetwork<double>& net, const VecD& u, const VecD& x) {
  MatD um = u;
  return ref_output(net, box_features(um).z.col(0), x)(0);
}

// Reference score s_u(u) for one sample: vector dz ⊙ N, energy −∇u E(z(u)) by central
// differences of the reference energy.
VecD ref_score(const ScoreNetwork<double>& net, const VecD& u, const VecD& x) {
  MatD um = u;
  const Features f = box_features(um);
  if (net.architecture().kind == ModelKind::vector)
    return f.dz.col(0).cwiseProduct(ref_output(net, f.z.col(0), x));
  const double h = 1e-5;
  VecD s(u.size());
  for (Index j = 0; j < u.size(); ++j) {
    VecD up = u, dn = u;
    up(j) += h;
    dn(j) -= h;
    s(j) = -(ref_energy_u(net, up, x) - ref_energy_u(net, dn, x)) / (2 * h);
  }
  return s;
}

// Reference Jacobian ∂s_u/∂u for one sample (vector: FD of the score; energy: −Hessian of E by
// second differences).
MatD ref_jacobian(const ScoreNetwork<double>& net, const VecD& u, const VecD& x) {
  const Index d = u.size();
  MatD J(d, d);
  if (net.architecture().kind == ModelKind::vector) {
    const double h = 1e-5;
    for (Index j = 0; j < d; ++j) {
      VecD up = u, dn = u;
      up(j) += h;
      dn(j) -= h;
      J.col(j) = (ref_score(net, up, x) - ref_score(net, dn, x)) / (2 * h);
    }
    return J;
  }
  const double h = 1e-4;
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j) {
      auto e = [&](double si, double sj) {
        VecD v = u;
        v(i) += si * h;
        v(j) += sj * h;
        return ref_energy_u(net, v, x);
      };
      J(i, j) = -(e(1, 1) - e(1, -1) - e(-1, 1) + e(-1, -1)) / (4 * h * h);
    }
  return J;
}

class ScoreNetworkTest : public testing::TestWithParam<Case> {
 protected:
  std::uint64_t seed(const std::string& what, std::uint64_t s) {
    return test::announce_seed(std::string(testing::UnitTest::GetInstance()->current_test_info()->name()) +
                                   " " + what,
                               s);
  }
};

// The forward pass (N or E, and s_u) against the per-sample reference.
TEST_P(ScoreNetworkTest, ForwardMatchesReference) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2001);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 7);
  MatD out, score;
  if (arch.kind == ModelKind::energy) net.energy(p.batch.z, p.batch.x, out);
  net.score(p.batch.z, p.batch.dz, p.batch.x, score);
  Worst w_out{"network output vs reference", 1e-8}, w_s{"score vs reference", 1e-6};
  for (Index i = 0; i < p.u.cols(); ++i) {
    if (arch.kind == ModelKind::energy) {
      w_out.add(out(0, i), ref_output(net, p.batch.z.col(i), p.batch.x.col(i))(0));
    } else {
      const VecD N = ref_output(net, p.batch.z.col(i), p.batch.x.col(i));
      for (Index j = 0; j < arch.theta_dim; ++j) w_out.add(score(j, i) / p.batch.dz(j, i), N(j));
    }
    const VecD rs = ref_score(net, p.u.col(i), p.batch.x.col(i));
    for (Index j = 0; j < arch.theta_dim; ++j) w_s.add(score(j, i), rs(j));
  }
  w_out.report(1e-12);
  w_s.report(arch.kind == ModelKind::energy ? 1e-6 : 1e-12);
}

// Derivatives of the network output in its input z (the only input derivatives the model
// uses): energy ∇z E (= −s with dz = 1) vs FD of E in z, and for both kinds the diagonal of
// ∂N/∂z (vector) or ∂²E/∂z² (energy) via the divergence with dz = 1, d2z = 0, vs FD of s in z.
TEST_P(ScoreNetworkTest, InputDerivativesMatchCentralDifferences) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2002);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 6);
  const MatD& z = p.batch.z;
  const MatD& x = p.batch.x;
  const Index d = arch.theta_dim, n = z.cols();
  const MatD ones = MatD::Ones(d, n), zeros = MatD::Zero(d, n);
  MatD s0, div;
  net.score(z, ones, x, s0);
  net.divergence(z, ones, zeros, x, div);
  MatD trace_fd = MatD::Zero(1, n);
  Worst w_grad{"∇z E vs FD of E in z", 1e-6};
  for (Index j = 0; j < d; ++j) {
    MatD zu = z, zd = z;
    zu.row(j).array() += kFdStep;
    zd.row(j).array() -= kFdStep;
    MatD su, sd;
    net.score(zu, ones, x, su);
    net.score(zd, ones, x, sd);
    trace_fd += (su.row(j) - sd.row(j)) / (2 * kFdStep);
    if (arch.kind == ModelKind::energy) {
      MatD eu, ed;
      net.energy(zu, x, eu);
      net.energy(zd, x, ed);
      for (Index i = 0; i < n; ++i) w_grad.add(-s0(j, i), (eu(0, i) - ed(0, i)) / (2 * kFdStep));
    }
  }
  Worst w_tr{arch.kind == ModelKind::energy ? "−tr ∇z²E vs FD" : "tr ∂N/∂z vs FD", 1e-6};
  for (Index i = 0; i < n; ++i) w_tr.add(div(0, i), trace_fd(0, i));
  if (arch.kind == ModelKind::energy) w_grad.report(1e-7);
  w_tr.report(1e-7);
}

// ∇u·s_u vs FD of s_u in u (checks the d2z terms of the chain rule through z as well).
TEST_P(ScoreNetworkTest, DivergenceMatchesCentralDifferences) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2003);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 8);
  MatD div;
  net.divergence(p.batch.z, p.batch.dz, p.batch.d2z, p.batch.x, div);
  MatD fd = MatD::Zero(1, p.u.cols());
  for (Index j = 0; j < arch.theta_dim; ++j) {
    MatD uu = p.u, ud = p.u;
    uu.row(j).array() += kFdStep;
    ud.row(j).array() -= kFdStep;
    fd += (score_at(net, uu, p.batch.x).row(j) - score_at(net, ud, p.batch.x).row(j)) / (2 * kFdStep);
  }
  Worst w{"∇u·s vs FD of s in u", 1e-6};
  for (Index i = 0; i < p.u.cols(); ++i) w.add(div(0, i), fd(0, i), "sample " + std::to_string(i));
  w.report(1e-7);
}

// Per-sample objective of column i, via objective_sum on a one-column batch.
double objective_of(const ScoreNetwork<double>& net, const BatchInputs<double>& b, Index i, Objective o) {
  BatchInputs<double> one;
  one.z = b.z.col(i);
  one.dz = b.dz.col(i);
  one.d2z = b.d2z.col(i);
  one.x = b.x.col(i);
  one.prior_score = b.prior_score.col(i);
  one.probe = b.probe.col(i);
  one.target = b.target.col(i);
  return net.objective_sum(one, o, nullptr);
}

// vᵀ(∂s/∂u)v from the sliced objective vs FD of s in u along v.
TEST_P(ScoreNetworkTest, SlicedEstimateMatchesCentralDifferences) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2004);
  const ScoreNetwork<double> net = make_net(arch, s);
  Problem p = make_problem(arch, s, 8);
  p.batch.prior_score.setZero();  // objective = ‖s‖² + 2 vᵀ(∂s/∂u)v
  const MatD& v = p.batch.probe;
  const MatD s0 = score_at(net, p.u, p.batch.x);
  const MatD su = score_at(net, p.u + kFdStep * v, p.batch.x);
  const MatD sd = score_at(net, p.u - kFdStep * v, p.batch.x);
  Worst w{"vᵀ(∂s/∂u)v vs FD along v", 1e-6};
  for (Index i = 0; i < p.u.cols(); ++i) {
    const double vjv = (objective_of(net, p.batch, i, Objective::sliced) - s0.col(i).squaredNorm()) / 2;
    const double fd = v.col(i).dot((su.col(i) - sd.col(i)) / (2 * kFdStep));
    w.add(vjv, fd, "sample " + std::to_string(i));
  }
  w.report(1e-7);
}

// E_v[vᵀAv] = tr A over Rademacher v, and the average over all 2^d sign vectors is exact.
// The batch's samples repeated once per sign vector v ∈ {±1}^d, with v as the probe: the sliced
// objective summed over it is 2^d times its expectation over Rademacher probes.
BatchInputs<double> with_every_probe(const BatchInputs<double>& b) {
  const Index d = b.z.rows(), n = b.size(), probes = Index(1) << d;
  BatchInputs<double> all;
  auto rep = [&](const MatD& m) { return MatD(m.replicate(1, probes)); };
  all.z = rep(b.z);
  all.dz = rep(b.dz);
  all.d2z = rep(b.d2z);
  all.x = rep(b.x);
  all.prior_score = rep(b.prior_score);
  all.probe.resize(d, n * probes);
  for (Index k = 0; k < probes; ++k)
    for (Index j = 0; j < d; ++j) all.probe.block(j, k * n, 1, n).setConstant(((k >> j) & 1) ? 1.0 : -1.0);
  return all;
}

TEST_P(ScoreNetworkTest, SlicedAverageOverAllProbesIsTheDivergence) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2005);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 5);
  const Index probes = Index(1) << arch.theta_dim;
  const BatchInputs<double> all = with_every_probe(p.batch);
  VecD g_sliced, g_ibp;
  const double sliced = net.objective_sum(all, Objective::sliced, &g_sliced) / double(probes);
  const double ibp = net.objective_sum(p.batch, Objective::ibp, &g_ibp);
  Worst w{"mean over 2^d probes of sliced − ibp objective", 1e-9};
  w.add(sliced, ibp);
  Worst wg{"… and of their gradients", 1e-9};
  for (Index i = 0; i < g_ibp.size(); ++i) wg.add(g_sliced(i) / double(probes), g_ibp(i));
  w.report(1e-12);
  wg.report(1e-11);
}

// --box-weight linear (fsbi::weigh_box_edges): the unweighted objective on the rewritten inputs is
// the weighted one, Σ_j ω_j s_j² + 2 ∂_j(ω_j s_j) + 2 ω_j s_j q_j with ω = 1/(1 − tanh²(u/2)) on the
// box coordinates and 1 on the other (∂_j by central differences of ω_j s_j in u_j); the sliced
// objective averaged over all 2^d probes agrees with it. Coordinate 1 is an identity map and must
// come out as it went in.
TEST_P(ScoreNetworkTest, BoxEdgeWeightedObjectiveMatchesCentralDifferences) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2008);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 8);
  const Index d = arch.theta_dim, n = p.u.cols();
  VecD mean(3), scale(3);
  mean << 0, 0.2, 0;
  scale << 1, 1.3, 1;
  using fsbi::CoordinateMap;
  const fsbi::FeatureMap fm({CoordinateMap::box, CoordinateMap::identity, CoordinateMap::box}, mean, scale);
  auto omega = [&](Index j, double u) {
    const double t = std::tanh(u / 2);
    return fm.maps()[static_cast<std::size_t>(j)] == CoordinateMap::box ? 1 / (1 - t * t) : 1.0;
  };
  auto score_of = [&](const MatD& u, const MatD& x) {
    MatD z, dz, d2z, sc;
    fm.apply(u, z, dz, d2z);
    net.score(z, dz, x, sc);
    return sc;
  };
  BatchInputs<double> b = p.batch;
  fm.apply(p.u, b.z, b.dz, b.d2z);
  const MatD dz0 = b.dz, d2z0 = b.d2z;
  const MatD s0 = score_of(p.u, b.x);
  fsbi::weigh_box_edges(fm, p.u, b.dz, b.d2z, b.prior_score);
  for (Index i = 0; i < n; ++i) {
    EXPECT_EQ(b.dz(1, i), dz0(1, i));
    EXPECT_EQ(b.d2z(1, i), d2z0(1, i));
    EXPECT_EQ(b.prior_score(1, i), p.batch.prior_score(1, i));
  }
  Worst w{"weighted objective (rewritten inputs) vs FD reference", 1e-6};
  VecD ref(n);
  for (Index i = 0; i < n; ++i) {
    ref(i) = 0;
    for (Index j = 0; j < d; ++j) {
      const double om = omega(j, p.u(j, i));
      ref(i) += om * s0(j, i) * s0(j, i) + 2 * om * s0(j, i) * p.batch.prior_score(j, i);
      MatD uu = p.u.col(i), ud = p.u.col(i);
      uu(j) += kFdStep;
      ud(j) -= kFdStep;
      const double fu = omega(j, uu(j)) * score_of(uu, b.x.col(i))(j, 0);
      const double fl = omega(j, ud(j)) * score_of(ud, b.x.col(i))(j, 0);
      ref(i) += 2 * (fu - fl) / (2 * kFdStep);
    }
    w.add(objective_of(net, b, i, Objective::ibp), ref(i), "sample " + std::to_string(i));
  }
  w.report(1e-6);
  // The sliced objective over every sign vector, on the same rewritten inputs.
  const Index probes = Index(1) << d;
  const BatchInputs<double> all = with_every_probe(b);
  Worst ws{"mean over 2^d probes of the weighted sliced objective vs FD reference", 1e-6};
  ws.add(net.objective_sum(all, Objective::sliced, nullptr) / double(probes), ref.sum());
  ws.report(1e-6);
}

// The gradient of objective_sum in every parameter vs central differences of objective_sum.
TEST_P(ScoreNetworkTest, ObjectiveGradientMatchesCentralDifferences) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act);
  const std::uint64_t s = seed("seed", 2006);
  ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 6);
  for (Objective o : {Objective::ibp, Objective::sliced, Objective::latent}) {
    VecD grad;
    net.objective_sum(p.batch, o, &grad);
    ASSERT_EQ(grad.size(), net.num_parameters());
    Worst w{"∂objective/∂φ (" + std::string(to_string(o)) + ") vs FD", 1e-5};
    for (Index i = 0; i < net.num_parameters(); ++i) {
      const double keep = net.parameters()(i);
      net.parameters()(i) = keep + kFdStep;
      const double up = net.objective_sum(p.batch, o, nullptr);
      net.parameters()(i) = keep - kFdStep;
      const double dn = net.objective_sum(p.batch, o, nullptr);
      net.parameters()(i) = keep;
      w.add(grad(i), (up - dn) / (2 * kFdStep), "parameter " + std::to_string(i));
    }
    w.report(1e-6);
  }
}

// objective_sum against the slow reference: per-sample score and FD Jacobian in u.
TEST_P(ScoreNetworkTest, ObjectiveMatchesPerSampleReference) {
  const Architecture arch = tiny(GetParam().kind, GetParam().act, 2, 2);
  const std::uint64_t s = seed("seed", 2007);
  const ScoreNetwork<double> net = make_net(arch, s);
  const Problem p = make_problem(arch, s, 5);
  const BatchInputs<double>& b = p.batch;
  double ref[3] = {0, 0, 0};
  for (Index i = 0; i < p.u.cols(); ++i) {
    const VecD sc = ref_score(net, p.u.col(i), b.x.col(i));
    const MatD J = ref_jacobian(net, p.u.col(i), b.x.col(i));
    const VecD v = b.probe.col(i);
    const double base = sc.squaredNorm() + 2 * sc.dot(b.prior_score.col(i));
    ref[0] += base + 2 * J.trace();
    ref[1] += base + 2 * v.dot(J * v);
    ref[2] += (sc - b.target.col(i)).squaredNorm();
  }
  const Objective objs[3] = {Objective::ibp, Objective::sliced, Objective::latent};
  for (int o = 0; o < 3; ++o) {
    Worst w{"objective_sum (" + std::string(to_string(objs[o])) + ") vs per-sample reference", 1e-3};
    w.add(net.objective_sum(b, objs[o], nullptr), ref[o]);
    w.report(arch.kind == ModelKind::energy ? 1e-5 : 1e-7);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllKindsAndActivations, ScoreNetworkTest,
    testing::Values(Case{ModelKind::vector, Activation::silu}, Case{ModelKind::vector, Activation::tanh},
                    Case{ModelKind::vector, Activation::elu}, Case{ModelKind::vector, Activation::softplus},
                    Case{ModelKind::energy, Activation::silu}, Case{ModelKind::energy, Activation::tanh},
                    Case{ModelKind::energy, Activation::elu}, Case{ModelKind::energy, Activation::softplus}),
    case_name);

// ---- Non-parameterised checks ----

TEST(ScoreNetwork, ParameterLayoutAndInitialisation) {
  const std::uint64_t s = test::announce_seed("ScoreNetwork.ParameterLayoutAndInitialisation", 3001);
  Architecture arch = tiny(ModelKind::vector, Activation::silu, 3, 2);
  ScoreNetwork<double> a(arch), b(arch), c(arch);
  EXPECT_EQ(a.num_parameters(), (5 * 5 + 5) + (4 * 5 + 4) + (3 * 4 + 3));
  a.initialize(s);
  b.initialize(s);
  c.initialize(s + 1);
  EXPECT_EQ(a.parameters(), b.parameters()) << "initialize(seed) must be deterministic";
  EXPECT_NE(a.parameters(), c.parameters());
  // Biases zero, weights within the Glorot bound; the output layer 10× smaller.
  const double* p = a.parameters().data();
  const int shapes[3][2] = {{5, 5}, {4, 5}, {3, 4}};
  for (int l = 0; l < 3; ++l) {
    const int out = shapes[l][0], in = shapes[l][1];
    const double bound = std::sqrt(6.0 / (in + out)) * (l == 2 ? 0.1 : 1.0);
    for (int e = 0; e < out * in; ++e) EXPECT_LE(std::abs(p[e]), bound);
    for (int e = 0; e < out; ++e) EXPECT_EQ(p[out * in + e], 0.0);
    p += out * in + out;
  }
  arch.kind = ModelKind::energy;
  EXPECT_EQ(ScoreNetwork<double>(arch).num_parameters(), (5 * 5 + 5) + (4 * 5 + 4) + (1 * 4 + 1));
}

TEST(ScoreNetwork, FloatAgreesWithDouble) {
  const std::uint64_t s = test::announce_seed("ScoreNetwork.FloatAgreesWithDouble", 3002);
  for (ModelKind kind : {ModelKind::vector, ModelKind::energy}) {
    const Architecture arch = tiny(kind, Activation::silu);
    const ScoreNetwork<double> nd = make_net(arch, s);
    ScoreNetwork<float> nf(arch);
    nf.initialize(s);
    ScoreNetwork<double> nd0(arch);
    nd0.initialize(s);
    EXPECT_LT((nf.parameters().cast<double>() - nd0.parameters()).cwiseAbs().maxCoeff(), 1e-7)
        << "float and double initialise from the same draws";
    nf.parameters() = nd.parameters().cast<float>();
    const Problem p = make_problem(arch, s, 16);
    const BatchInputs<float> bf = to_float(p.batch);
    for (Objective o : {Objective::ibp, Objective::sliced, Objective::latent}) {
      VecD gd;
      Vec<float> gf;
      const double vd = nd.objective_sum(p.batch, o, &gd);
      const double vf = nf.objective_sum(bf, o, &gf);
      Worst w{"float32 vs float64 " + std::string(to_string(kind)) + " " + std::string(to_string(o)) +
                  " (value and gradient)",
              1e-2};
      w.add(vf, vd);
      for (Index i = 0; i < gd.size(); ++i) w.add(gf(i), gd(i), "parameter " + std::to_string(i));
      w.report(1e-3);
    }
  }
}

TEST(ScoreNetwork, ConcurrentCallsMatchSequential) {
  const std::uint64_t s = test::announce_seed("ScoreNetwork.ConcurrentCallsMatchSequential", 3003);
  for (ModelKind kind : {ModelKind::vector, ModelKind::energy}) {
    const Architecture arch = tiny(kind, Activation::tanh);
    const ScoreNetwork<double> net = make_net(arch, s);
    // Different batch sizes too, so the threads' workspaces have different shapes.
    const Problem p1 = make_problem(arch, s, 33), p2 = make_problem(arch, s + 1, 20);
    for (Objective o : {Objective::ibp, Objective::sliced, Objective::latent}) {
      VecD g1, g2, c1, c2;
      const double v1 = net.objective_sum(p1.batch, o, &g1);
      const double v2 = net.objective_sum(p2.batch, o, &g2);
      double w1 = 0, w2 = 0;
      for (int rep = 0; rep < 20; ++rep) {
        std::thread t1([&] { w1 = net.objective_sum(p1.batch, o, &c1); });
        std::thread t2([&] { w2 = net.objective_sum(p2.batch, o, &c2); });
        t1.join();
        t2.join();
        ASSERT_EQ(w1, v1);
        ASSERT_EQ(w2, v2);
        ASSERT_EQ(c1, g1);
        ASSERT_EQ(c2, g2);
      }
    }
  }
}

TEST(ScoreNetwork, ParallelSumIsDeterministicAndMatches) {
  const std::uint64_t s = test::announce_seed("ScoreNetwork.ParallelSumIsDeterministicAndMatches", 3004);
  for (ModelKind kind : {ModelKind::vector, ModelKind::energy}) {
    const Architecture arch = tiny(kind, Activation::silu);
    const ScoreNetwork<double> net = make_net(arch, s);
    const Problem p = make_problem(arch, s, 101);
    for (Objective o : {Objective::ibp, Objective::sliced, Objective::latent}) {
      VecD g, g1, g2;
      const double v = net.objective_sum(p.batch, o, &g);
      double v1, v2;
      {
        tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
        v1 = net.objective_sum_parallel(p.batch, o, &g1, 16);
      }
      {
        tbb::global_control two(tbb::global_control::max_allowed_parallelism, 2);
        v2 = net.objective_sum_parallel(p.batch, o, &g2, 16);
      }
      EXPECT_EQ(v1, v2) << "the sum must not depend on the thread count";
      EXPECT_EQ(g1, g2);
      EXPECT_NEAR(v1, v, 1e-12 * std::abs(v));
      EXPECT_LT((g1 - g).cwiseAbs().maxCoeff(), 1e-12 * (1 + g.cwiseAbs().maxCoeff()));
    }
  }
}

// The trainer's step in float32: objective_sum_parallel over blocks of 64 (the last ragged)
// is, bit for bit, the fixed tree ((b0 + b1) + (b2 + b3)) of objective_sum on each block alone,
// values summed in double; and so are calls made concurrently from several tasks (a waiting
// thread may run another call's task, which must not share the first call's block storage).
TEST(ScoreNetwork, ParallelSumIsTheFixedTreeOfBlockSums) {
  const std::uint64_t s = test::announce_seed("ScoreNetwork.ParallelSumIsTheFixedTreeOfBlockSums", 3005);
  for (ModelKind kind : {ModelKind::vector, ModelKind::energy}) {
    Architecture arch = tiny(kind, Activation::silu);
    arch.hidden = {32, 32};
    ScoreNetwork<float> net(arch);
    net.parameters() = make_net(arch, s).parameters().cast<float>();
    const Problem p = make_problem(arch, s, 200);
    const BatchInputs<float> b = to_float(p.batch);
    double v[4];
    Vec<float> g[4];
    for (Index blk = 0; blk < 4; ++blk) {
      const Index c0 = 64 * blk, c = std::min<Index>(64, 200 - c0);
      v[blk] = net.objective_sum(map_inputs(b, [&](const auto& m) { return m.middleCols(c0, c).eval(); }),
                                 Objective::ibp, &g[blk]);
    }
    const double v_tree = (v[0] + v[1]) + (v[2] + v[3]);
    const Vec<float> g_tree = (g[0] + g[1]) + (g[2] + g[3]);
    for (int threads : {1, 2}) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
      Vec<float> gp;
      EXPECT_EQ(net.objective_sum_parallel(b, Objective::ibp, &gp, 64), v_tree) << threads << " threads";
      EXPECT_TRUE(gp == g_tree) << threads << " threads: largest difference "
                                << (gp - g_tree).cwiseAbs().maxCoeff();
      std::vector<double> values(8);
      std::vector<Vec<float>> grads(8);
      tbb::parallel_for(0, 8, [&](int i) {
        values[static_cast<std::size_t>(i)] =
            net.objective_sum_parallel(b, Objective::ibp, &grads[static_cast<std::size_t>(i)], 64);
      });
      for (std::size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(values[i], v_tree) << "concurrent call " << i;
        EXPECT_TRUE(grads[i] == g_tree) << "concurrent call " << i;
      }
    }
  }
}

TEST(ScoreNetwork, RejectsWrongShapesAndNames) {
  const Architecture arch = tiny(ModelKind::vector, Activation::silu);
  const ScoreNetwork<double> net(arch);
  Problem p = make_problem(arch, 1, 4);
  p.batch.x.resize(1, 4);
  try {
    net.objective_sum(p.batch, Objective::ibp, nullptr);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("batch.x is 1 x 4, expected 2 x 4"), std::string::npos) << e.what();
  }
  MatD e;
  EXPECT_THROW(net.energy(p.batch.z, p.batch.x, e), std::logic_error);
  EXPECT_THROW(parse_activation("relu"), std::invalid_argument);
  EXPECT_EQ(parse_activation("softplus"), Activation::softplus);
  EXPECT_EQ(parse_model_kind("energy"), ModelKind::energy);
  EXPECT_EQ(parse_objective("sliced"), Objective::sliced);
  Architecture bad = arch;
  bad.hidden.clear();
  EXPECT_THROW(ScoreNetwork<double>{bad}, std::invalid_argument);
}

TEST(ScoreNetwork, EmptyBatchIsZero) {
  const ScoreNetwork<double> net(tiny(ModelKind::energy, Activation::silu));
  BatchInputs<double> b;
  b.z.resize(3, 0);
  b.dz.resize(3, 0);
  b.d2z.resize(3, 0);
  b.x.resize(2, 0);
  b.prior_score.resize(3, 0);
  VecD g;
  EXPECT_EQ(net.objective_sum(b, Objective::ibp, &g), 0.0);
  EXPECT_EQ(g.size(), net.num_parameters());
  EXPECT_EQ(g.cwiseAbs().maxCoeff(), 0.0);
}

}  // namespace
}  // namespace fsbi::nn
