// Score networks: batched forward passes with forward-mode input tangents, the energy model's
// input-gradient (adjoint) pass and Hessian terms, and the hand-written reverse pass through all
// of them for the parameter gradient. The mathematics and the derivation of every reverse step
// are in docs/score-network.md; the notation here follows it:
//
//   levels l = 0..L−1 are the hidden layers, layer L the linear output.
//   h_l = W_l a_{l−1} + b_l (a_{−1} = [z; x]),  a_l = σ(h_l),  s1/s2/s3 = σ'/σ''/σ''' at h_l
//   T_l  = tangent of h_l (m direction blocks of n columns each), ȧ_l = s1 ⊙ T_l
//   energy: g_l = ∂E/∂a_l, δ_l = s1 ⊙ g_l, G = ∇z E = W_0zᵀ δ_0,
//           Laplacian-type term K = Σ_l colsum(s2 ⊙ g_l ⊙ Q_l), Q_l = Σ_blocks T_l ⊙ T_l
//   a trailing "~" in a comment (h~, T~, ...) is the adjoint ∂objective/∂(·).
//
// Storage per level (Workspace): hc[l] = [h | T], ac[l] = [a | ȧ | g~], bar[l] = [h~ | T~ | δ],
// so each layer's forward, input-adjoint and weight-gradient products are ONE GEMM over all
// primal, tangent and (energy) adjoint columns.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "nn/score_network.hpp"

#include "fsbi/random.hpp"
#include "nn/activations.hpp"
#include "nn/gemm.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fsbi::nn {

using Eigen::Index;

std::string_view to_string(Activation a) {
  switch (a) {
    case Activation::silu: return "silu";
    case Activation::tanh: return "tanh";
    case Activation::elu: return "elu";
    case Activation::softplus: return "softplus";
  }
  return "?";
}
std::string_view to_string(ModelKind k) {
  return k == ModelKind::vector ? "vector" : "energy";
}
std::string_view to_string(Objective o) {
  switch (o) {
    case Objective::ibp: return "ibp";
    case Objective::sliced: return "sliced";
    case Objective::latent: return "latent";
  }
  return "?";
}
Activation parse_activation(std::string_view s) {
  for (Activation a : {Activation::silu, Activation::tanh, Activation::elu, Activation::softplus})
    if (s == to_string(a)) return a;
  throw std::invalid_argument("unknown activation '" + std::string(s) +
                              "': choose silu, tanh, elu or softplus");
}
ModelKind parse_model_kind(std::string_view s) {
  for (ModelKind k : {ModelKind::vector, ModelKind::energy})
    if (s == to_string(k)) return k;
  throw std::invalid_argument("unknown model kind '" + std::string(s) +
                              "': choose vector or energy");
}
Objective parse_objective(std::string_view s) {
  for (Objective o : {Objective::ibp, Objective::sliced, Objective::latent})
    if (s == to_string(o)) return o;
  throw std::invalid_argument("unknown objective '" + std::string(s) +
                              "': choose ibp, sliced or latent");
}

namespace {

// Which input tangents the forward pass carries.
//   axes:  m = d blocks, block j is the direction dz_j e_j (exact divergence / Laplacian)
//   probe: m = 1 block, the direction w = v ⊙ dz (sliced estimate)
enum class Tangents { none, axes, probe };

template <class T>
struct Workspace {
  Mat<T> a0;  // [z; x], (d + k) × n
  Mat<T> w;   // probe direction v ⊙ dz, d × n
  std::vector<Mat<T>> hc, ac, bar, abar, s1, s2, s3, g, q, dtil;
  Mat<T> scratch;   // activation scratch, width × n
  Mat<T> out;       // vector: N (d × n); energy: G = ∇z E (d × n) or E (1 × n)
  Mat<T> outdot;    // vector: r (axes, d × n: r_j = dz_j ∂N_j/∂z_j) or Ẏ (probe, d × n)
  Mat<T> curv;      // energy: K (1 × n)
  Mat<T> out_bar, outdot_bar;  // seeds of the reverse pass (same shapes as out/outdot)
  GemmBuffers<T> gemm;         // packing buffers of every product (nn/gemm.hpp)

  void resize_levels(std::size_t levels) {
    for (auto* v : {&hc, &ac, &bar, &abar, &s1, &s2, &s3, &g, &q, &dtil}) v->resize(levels);
  }
};

template <class T>
Workspace<T>& thread_workspace() {
  // Per thread and per scalar type; objective_sum never re-enters itself on one thread. Memory
  // is kept for the thread's lifetime so a training loop allocates nothing after its first step.
  static thread_local Workspace<T> ws;
  return ws;
}

// Columns [c0, c0 + n) of the caller's matrices; unused members stay null.
template <class T>
struct Inputs {
  const Mat<T>* z = nullptr;
  const Mat<T>* dz = nullptr;
  const Mat<T>* d2z = nullptr;
  const Mat<T>* x = nullptr;
  const Mat<T>* prior_score = nullptr;
  const Mat<T>* probe = nullptr;
  const Mat<T>* target = nullptr;
  Index c0 = 0, n = 0;
  auto cols(const Mat<T>* m) const { return m->middleCols(c0, n); }
};

// Read-only view of the parameters (and optionally a gradient of the same layout).
template <class T>
struct Net {
  const Architecture& arch;
  const std::vector<Index>& off;
  const T* p;
  int L;  // number of hidden layers

  Index rows(int i) const { return i == L ? arch.output_dim() : arch.hidden[i]; }
  Index cols(int i) const {
    return i == 0 ? Index(arch.theta_dim + arch.x_dim) : Index(arch.hidden[i - 1]);
  }
  Eigen::Map<const Mat<T>> W(int i) const { return {p + off[i], rows(i), cols(i)}; }
  Eigen::Map<const Vec<T>> b(int i) const { return {p + off[i] + rows(i) * cols(i), rows(i)}; }
};

template <class T>
struct Grad {
  const Net<T>& net;
  T* p;
  Eigen::Map<Mat<T>> W(int i) const { return {p + net.off[i], net.rows(i), net.cols(i)}; }
  Eigen::Map<Vec<T>> b(int i) const {
    return {p + net.off[i] + net.rows(i) * net.cols(i), net.rows(i)};
  }
};

Index tangent_count(Tangents t, Index d) {
  return t == Tangents::axes ? d : (t == Tangents::probe ? 1 : 0);
}

struct ForwardPlan {
  Tangents tangents = Tangents::none;
  bool s2 = false;       // σ'' needed
  bool s3 = false;       // σ''' needed
  bool adjoint = false;  // energy: ∇z E and (with tangents) K
  bool output = false;   // energy: the output E itself (the vector model always computes N)
};

// Forward pass over columns of `in`. Shapes: see Workspace.
template <class T>
void forward(const Net<T>& net, const Inputs<T>& in, const ForwardPlan& plan, Workspace<T>& ws) {
  const Architecture& arch = net.arch;
  const Index n = in.n, d = arch.theta_dim, k = arch.x_dim;
  const int L = net.L;
  const bool energy = arch.kind == ModelKind::energy;
  const Index m = tangent_count(plan.tangents, d);
  const Index cols_t = n * (1 + m);                            // [primal | tangents]
  const Index cols_all = cols_t + (energy ? n : 0);           // + energy adjoint slot
  ws.resize_levels(L);

  ws.a0.resize(d + k, n);
  ws.a0.topRows(d) = in.cols(in.z);
  if (k > 0) ws.a0.bottomRows(k) = in.cols(in.x);
  if (plan.tangents == Tangents::probe) {
    ws.w.resize(d, n);
    ws.w.array() = in.cols(in.probe).array() * in.cols(in.dz).array();
  }

  for (int l = 0; l < L; ++l) {
    const Index H = net.rows(l);
    Mat<T>& hc = ws.hc[l];
    hc.resize(H, cols_t);
    const auto W = net.W(l);
    if (l == 0) {
      // The GEMM accumulates, so start the primal columns from the bias (no separate pass).
      hc.leftCols(n).colwise() = net.b(l);
      gemm(ws.gemm, hc.leftCols(n), op_n(W), op_n(ws.a0), true);
      if (plan.tangents == Tangents::axes) {
        const auto dz = in.cols(in.dz);
        for (Index j = 0; j < d; ++j) hc.middleCols(n * (1 + j), n).noalias() = W.col(j) * dz.row(j);
      } else if (plan.tangents == Tangents::probe) {
        gemm(ws.gemm, hc.middleCols(n, n), op_n(W.leftCols(d)), op_n(ws.w), false);
      }
    } else {
      // One product over [primal | tangents], then the bias on the primal columns only: cheaper
      // than pre-filling the H x n*m tangent columns with zeros (measured: see bench/README.md).
      gemm(ws.gemm, hc, op_n(W), op_n(ws.ac[l - 1].leftCols(cols_t)), false);
      hc.leftCols(n).colwise() += net.b(l);
    }

    Mat<T>& ac = ws.ac[l];
    ac.resize(H, cols_all);
    activate<T>(arch.activation, hc.leftCols(n), ac.leftCols(n), ws.s1[l], plan.s2 ? &ws.s2[l] : nullptr,
                plan.s3 ? &ws.s3[l] : nullptr, ws.scratch);
    // ȧ = σ'(h) ⊙ T per block; the energy model needs no tangent above its last hidden layer.
    if (!(energy && l == L - 1)) {
      for (Index b = 0; b < m; ++b)
        ac.middleCols(n * (1 + b), n).array() = ws.s1[l].array() * hc.middleCols(n * (1 + b), n).array();
    }
  }

  const Index o = arch.output_dim();
  const auto Wo = net.W(L);
  const Mat<T>& aL = ws.ac[L - 1];
  if (!energy) {
    ws.out.resize(o, n);
    gemm(ws.gemm, ws.out, op_n(Wo), op_n(aL.leftCols(n)), false);
    ws.out.colwise() += net.b(L);
    if (plan.tangents == Tangents::axes) {
      ws.outdot.resize(d, n);
      for (Index j = 0; j < d; ++j)
        ws.outdot.row(j).noalias() = Wo.row(j) * aL.middleCols(n * (1 + j), n);
    } else if (plan.tangents == Tangents::probe) {
      ws.outdot.resize(d, n);
      gemm(ws.gemm, ws.outdot, op_n(Wo), op_n(aL.middleCols(n, n)), false);
    }
    return;
  }

  if (plan.output) {
    ws.out.resize(1, n);
    ws.out.noalias() = Wo * aL.leftCols(n);
    ws.out.array() += net.b(L)(0);
  }
  if (!plan.adjoint) return;
  // Adjoint pass: g_{L−1} = w_o (the output row), δ_l = s1 ⊙ g_l (kept in bar[l]'s last block),
  // g_{l−1} = W_lᵀ δ_l, G = W_0zᵀ δ_0.
  for (int l = L - 1; l >= 0; --l) {
    const Index H = net.rows(l);
    Mat<T>& g = ws.g[l];
    g.resize(H, n);
    if (l == L - 1) {
      g = Wo.row(0).transpose().replicate(1, n);
    } else {
      gemm(ws.gemm, g, op_t(net.W(l + 1)), op_n(ws.bar[l + 1].rightCols(n)), false);
    }
    ws.bar[l].resize(H, cols_all);
    ws.bar[l].rightCols(n).array() = ws.s1[l].array() * g.array();
  }
  ws.out.resize(d, n);
  gemm(ws.gemm, ws.out, op_t(net.W(0).leftCols(d)), op_n(ws.bar[0].rightCols(n)), false);
  if (m > 0) {
    ws.curv.setZero(1, n);
    for (int l = 0; l < L; ++l) {
      Mat<T>& q = ws.q[l];
      q.resize(net.rows(l), n);
      q.array() = ws.hc[l].middleCols(n, n).array().square();
      for (Index b = 1; b < m; ++b) q.array() += ws.hc[l].middleCols(n * (1 + b), n).array().square();
      ws.curv.noalias() += (ws.s2[l].array() * ws.g[l].array() * q.array()).matrix().colwise().sum();
    }
  }
}

// Reverse pass: given the seeds (vector: N~ in out_bar, r~ or Ẏ~ in outdot_bar; energy: G~ in
// out_bar and the constant kappa = ∂objective/∂K per sample), ACCUMULATE the parameter gradient.
template <class T>
void backward(const Net<T>& net, const Inputs<T>& in, Tangents tangents, T kappa, Workspace<T>& ws,
              const Grad<T>& grad) {
  const Architecture& arch = net.arch;
  const Index n = in.n, d = arch.theta_dim;
  const int L = net.L;
  const bool energy = arch.kind == ModelKind::energy;
  const Index m = tangent_count(tangents, d);
  const Index cols_t = n * (1 + m);
  const Index cols_all = cols_t + (energy ? n : 0);

  if (energy) {
    // Adjoint pass reversed, bottom-up: δ~_0 = W_0z G~; g~_l = s1 ⊙ δ~_l + s2 ⊙ c~_l with
    // c~_l = kappa Q_l; h~_l gets g_l ⊙ (s2 ⊙ δ~_l + s3 ⊙ c~_l); δ~_{l+1} = W_{l+1} g~_l.
    // g~_l goes to ac[l]'s last block, h~_l to bar[l]'s first (the top-down pass adds to it);
    // the weight gradient δ_{l+1} g~_lᵀ is fused into the top-down GEMM.
    for (int l = 0; l < L; ++l) {
      Mat<T>& dt = ws.dtil[l];
      dt.resize(net.rows(l), n);
      if (l == 0) {
        gemm(ws.gemm, dt, op_n(net.W(0).leftCols(d)), op_n(ws.out_bar), false);
      } else {
        gemm(ws.gemm, dt, op_n(net.W(l)), op_n(ws.ac[l - 1].rightCols(n)), false);
      }
      auto gt = ws.ac[l].rightCols(n).array();
      auto ht = ws.bar[l].leftCols(n).array();
      if (kappa != T(0) && m > 0) {
        gt = ws.s1[l].array() * dt.array() + kappa * ws.s2[l].array() * ws.q[l].array();
        ht = ws.g[l].array() * (ws.s2[l].array() * dt.array() + kappa * ws.s3[l].array() * ws.q[l].array());
      } else {
        gt = ws.s1[l].array() * dt.array();
        ht = ws.g[l].array() * ws.s2[l].array() * dt.array();
      }
    }
    grad.W(L).row(0).noalias() += ws.ac[L - 1].rightCols(n).rowwise().sum().transpose();
    gemm(ws.gemm, grad.W(0).leftCols(d), op_n(ws.bar[0].rightCols(n)), op_t(ws.out_bar), true);
  } else {
    // Output layer: N = W_o a + b_o and the tangent outputs.
    const auto Wo = net.W(L);
    const Mat<T>& aL = ws.ac[L - 1];
    Mat<T>& ab = ws.abar[L - 1];
    ab.resize(net.rows(L - 1), cols_t);
    gemm(ws.gemm, ab.leftCols(n), op_t(Wo), op_n(ws.out_bar), false);
    gemm(ws.gemm, grad.W(L), op_n(ws.out_bar), op_t(aL.leftCols(n)), true);
    grad.b(L).noalias() += ws.out_bar.rowwise().sum();
    if (tangents == Tangents::axes) {
      for (Index j = 0; j < d; ++j) {
        ab.middleCols(n * (1 + j), n).noalias() = Wo.row(j).transpose() * ws.outdot_bar.row(j);
        grad.W(L).row(j).noalias() += ws.outdot_bar.row(j) * aL.middleCols(n * (1 + j), n).transpose();
      }
    } else if (tangents == Tangents::probe) {
      gemm(ws.gemm, ab.middleCols(n, n), op_t(Wo), op_n(ws.outdot_bar), false);
      gemm(ws.gemm, grad.W(L), op_n(ws.outdot_bar), op_t(aL.middleCols(n, n)), true);
    }
  }

  // Top-down through the primal and tangent passes. At level l, from [a~ | ȧ~] in abar[l]:
  //   T~ = s1 ⊙ ȧ~ (+ energy: 2 kappa s2 ⊙ g ⊙ T),  h~ (+)= s1 ⊙ a~ + Σ_blocks s2 ⊙ T ⊙ ȧ~,
  //   W~_l += [h~ | T~ | δ_l][a_{l−1} | ȧ_{l−1} | g~_{l−1}]ᵀ,  [a~ | ȧ~]_{l−1} = W_lᵀ [h~ | T~].
  for (int l = L - 1; l >= 0; --l) {
    const Index H = net.rows(l);
    Mat<T>& bar = ws.bar[l];
    bar.resize(H, cols_all);  // no-op for the energy model (allocated in forward)
    const Mat<T>& hc = ws.hc[l];
    const auto s1 = ws.s1[l].array();
    // Energy's top level has no downstream a or ȧ: its adjoints are zero.
    const bool from_above = !(energy && l == L - 1);
    // Energy with a Laplacian term: T~ also gets 2 kappa σ''(h) ⊙ g ⊙ T (from K).
    const bool curvature = energy && kappa != T(0) && m > 0;
    if (curvature) {
      ws.scratch.resize(H, n);
      ws.scratch.array() = (T(2) * kappa) * ws.s2[l].array() * ws.g[l].array();
    }
    // Per tangent block, one fused pass: h~ += σ'' ⊙ T ⊙ ȧ~ and T~ = σ' ⊙ ȧ~ (+ the curvature
    // term). Memory-bound, so each array is read once; the blocks are contiguous H·n runs.
    const Index len = H * n;
    T* __restrict hb = bar.data();
    const T* __restrict p1 = ws.s1[l].data();
    const T* __restrict p2 = curvature || from_above ? ws.s2[l].data() : nullptr;
    const T* __restrict sc = curvature ? ws.scratch.data() : nullptr;
    if (from_above) {
      const Mat<T>& ab = ws.abar[l];
      auto ht = bar.leftCols(n).array();
      if (energy) {
        ht += s1 * ab.leftCols(n).array();
      } else {
        ht = s1 * ab.leftCols(n).array();
      }
      for (Index b = 0; b < m; ++b) {
        const T* __restrict Tb = hc.data() + len * (1 + b);
        const T* __restrict atb = ab.data() + len * (1 + b);
        T* __restrict tb = bar.data() + len * (1 + b);
        if (curvature) {
          for (Index i = 0; i < len; ++i) {
            hb[i] += p2[i] * Tb[i] * atb[i];
            tb[i] = p1[i] * atb[i] + sc[i] * Tb[i];
          }
        } else {
          for (Index i = 0; i < len; ++i) {
            hb[i] += p2[i] * Tb[i] * atb[i];
            tb[i] = p1[i] * atb[i];
          }
        }
      }
    } else {
      for (Index b = 0; b < m; ++b) {
        const T* __restrict Tb = hc.data() + len * (1 + b);
        T* __restrict tb = bar.data() + len * (1 + b);
        if (curvature) {
          for (Index i = 0; i < len; ++i) tb[i] = sc[i] * Tb[i];
        } else {
          std::fill(tb, tb + len, T(0));
        }
      }
    }

    grad.b(l).noalias() += bar.leftCols(n).rowwise().sum();
    if (l > 0) {
      gemm(ws.gemm, grad.W(l), op_n(bar), op_t(ws.ac[l - 1].leftCols(cols_all)), true);
      Mat<T>& ab = ws.abar[l - 1];
      ab.resize(net.rows(l - 1), cols_t);
      gemm(ws.gemm, ab, op_t(net.W(l)), op_n(bar.leftCols(cols_t)), false);
    } else {
      auto gW = grad.W(0);
      gemm(ws.gemm, gW, op_n(bar.leftCols(n)), op_t(ws.a0), true);
      if (tangents == Tangents::axes) {
        const auto dz = in.cols(in.dz);
        for (Index j = 0; j < d; ++j)
          gW.col(j).noalias() += bar.middleCols(n * (1 + j), n) * dz.row(j).transpose();
      } else if (tangents == Tangents::probe) {
        gemm(ws.gemm, gW.leftCols(d), op_n(bar.middleCols(n, n)), op_t(ws.w), true);
      }
    }
  }
}

template <class T>
void require_shape(const Mat<T>& m, Index rows, Index cols, const char* what) {
  if (m.rows() != rows || m.cols() != cols) {
    throw std::invalid_argument(std::string("ScoreNetwork: ") + what + " is " +
                                std::to_string(m.rows()) + " x " + std::to_string(m.cols()) +
                                ", expected " + std::to_string(rows) + " x " +
                                std::to_string(cols) + " (features x samples)");
  }
}

// The objective of columns [in.c0, in.c0 + in.n); ACCUMULATES the gradient into grad if not null.
template <class T>
T objective_block(const Net<T>& net, const Inputs<T>& in, Objective objective, T* grad,
                  Workspace<T>& ws) {
  const Architecture& arch = net.arch;
  const bool energy = arch.kind == ModelKind::energy;
  const bool backward_pass = grad != nullptr;
  ForwardPlan plan;
  plan.tangents = objective == Objective::ibp ? Tangents::axes
                  : objective == Objective::sliced ? Tangents::probe
                                                   : Tangents::none;
  plan.adjoint = energy;
  plan.s2 = energy || (backward_pass && plan.tangents != Tangents::none);
  plan.s3 = energy && backward_pass && plan.tangents != Tangents::none;
  forward(net, in, plan, ws);

  const auto dz = in.cols(in.dz).array();
  const Index d = arch.theta_dim, n = in.n;
  T value(0);
  ws.out_bar.resize(d, n);
  ws.outdot_bar.resize(d, n);
  // s (d × n) in scratch-free form: vector s = dz ⊙ N, energy s = −dz ⊙ G.
  const T sign = energy ? T(-1) : T(1);
  const auto s = sign * dz * ws.out.array();
  if (objective == Objective::latent) {
    const auto res = s - in.cols(in.target).array();
    value = res.square().sum();
    if (backward_pass) ws.out_bar.array() = (T(2) * sign) * dz * res;
  } else {
    const auto ps = in.cols(in.prior_score).array();
    const auto d2z = in.cols(in.d2z).array();
    // The d2z part of the divergence (vᵀ(∂s/∂u)v: weighted by v², 1 for ±1 probes).
    value = (s.square() + T(2) * s * ps).sum();
    if (objective == Objective::ibp) {
      value += T(2) * sign * (d2z * ws.out.array()).sum();
      if (backward_pass) ws.out_bar.array() = T(2) * sign * (dz * (s + ps) + d2z);
    } else {
      const auto v2 = in.cols(in.probe).array().square();
      value += T(2) * sign * (v2 * d2z * ws.out.array()).sum();
      if (backward_pass) ws.out_bar.array() = T(2) * sign * (dz * (s + ps) + v2 * d2z);
    }
    if (energy) {
      value -= T(2) * ws.curv.sum();  // 2·(−K)
    } else if (objective == Objective::ibp) {
      value += T(2) * (dz * ws.outdot.array()).sum();  // 2 Σ_j dz_j² ∂N_j/∂z_j
      if (backward_pass) ws.outdot_bar.array() = T(2) * dz;
    } else {
      value += T(2) * (ws.w.array() * ws.outdot.array()).sum();  // 2 wᵀ(∂N/∂z)w
      if (backward_pass) ws.outdot_bar.array() = T(2) * ws.w.array();
    }
  }
  if (backward_pass) {
    const T kappa = (energy && objective != Objective::latent) ? T(-2) : T(0);
    backward(net, in, plan.tangents, kappa, ws, Grad<T>{net, grad});
  }
  return value;
}

}  // namespace

template <class T>
ScoreNetwork<T>::ScoreNetwork(Architecture arch) : arch_(std::move(arch)) {
  if (arch_.theta_dim < 1)
    throw std::invalid_argument("ScoreNetwork: theta_dim must be at least 1");
  if (arch_.x_dim < 0) throw std::invalid_argument("ScoreNetwork: x_dim must not be negative");
  if (arch_.hidden.empty())
    throw std::invalid_argument("ScoreNetwork: at least one hidden layer is needed");
  for (int h : arch_.hidden)
    if (h < 1) throw std::invalid_argument("ScoreNetwork: hidden widths must be positive");
  const int L = static_cast<int>(arch_.hidden.size());
  Index total = 0;
  for (int i = 0; i <= L; ++i) {
    const Index in = i == 0 ? arch_.theta_dim + arch_.x_dim : arch_.hidden[i - 1];
    const Index out = i == L ? arch_.output_dim() : arch_.hidden[i];
    offsets_.push_back(total);
    total += out * in + out;
  }
  params_.setZero(total);
}

template <class T>
void ScoreNetwork<T>::initialize(std::uint64_t seed) {
  const int L = static_cast<int>(arch_.hidden.size());
  Net<T> net{arch_, offsets_, params_.data(), L};
  for (int i = 0; i <= L; ++i) {
    const Index rows = net.rows(i), cols = net.cols(i);
    const double a = std::sqrt(6.0 / static_cast<double>(rows + cols)) * (i == L ? 0.1 : 1.0);
    CounterRng rng(seed, Stream::training, kInitializationIndex + static_cast<std::uint64_t>(i));
    T* W = params_.data() + offsets_[i];
    for (Index e = 0; e < rows * cols; ++e) W[e] = static_cast<T>(rng.uniform(-a, a));
    std::fill(W + rows * cols, W + rows * cols + rows, T(0));
  }
}

template <class T>
void ScoreNetwork<T>::score(const Mat<T>& z, const Mat<T>& dz, const Mat<T>& x, Mat<T>& s_u) const {
  const Index n = z.cols();
  require_shape(z, arch_.theta_dim, n, "z");
  require_shape(dz, arch_.theta_dim, n, "dz");
  require_shape(x, arch_.x_dim, n, "x");
  const int L = static_cast<int>(arch_.hidden.size());
  Net<T> net{arch_, offsets_, params_.data(), L};
  Inputs<T> in{&z, &dz, nullptr, &x, nullptr, nullptr, nullptr, 0, n};
  ForwardPlan plan;
  const bool energy = arch_.kind == ModelKind::energy;
  plan.adjoint = energy;
  plan.output = !energy;
  Workspace<T>& ws = thread_workspace<T>();
  forward(net, in, plan, ws);
  s_u.resize(arch_.theta_dim, n);
  s_u.array() = (energy ? T(-1) : T(1)) * dz.array() * ws.out.array();
}

template <class T>
void ScoreNetwork<T>::energy(const Mat<T>& z, const Mat<T>& x, Mat<T>& e) const {
  if (arch_.kind != ModelKind::energy)
    throw std::logic_error("ScoreNetwork::energy: this is a vector model, which has no energy");
  const Index n = z.cols();
  require_shape(z, arch_.theta_dim, n, "z");
  require_shape(x, arch_.x_dim, n, "x");
  const int L = static_cast<int>(arch_.hidden.size());
  Net<T> net{arch_, offsets_, params_.data(), L};
  Inputs<T> in{&z, nullptr, nullptr, &x, nullptr, nullptr, nullptr, 0, n};
  ForwardPlan plan;
  plan.output = true;
  Workspace<T>& ws = thread_workspace<T>();
  forward(net, in, plan, ws);
  e = ws.out;
}

template <class T>
void ScoreNetwork<T>::divergence(const Mat<T>& z, const Mat<T>& dz, const Mat<T>& d2z, const Mat<T>& x,
                                 Mat<T>& div) const {
  const Index n = z.cols();
  require_shape(z, arch_.theta_dim, n, "z");
  require_shape(dz, arch_.theta_dim, n, "dz");
  require_shape(d2z, arch_.theta_dim, n, "d2z");
  require_shape(x, arch_.x_dim, n, "x");
  const int L = static_cast<int>(arch_.hidden.size());
  Net<T> net{arch_, offsets_, params_.data(), L};
  Inputs<T> in{&z, &dz, &d2z, &x, nullptr, nullptr, nullptr, 0, n};
  ForwardPlan plan;
  const bool energy = arch_.kind == ModelKind::energy;
  plan.tangents = Tangents::axes;
  plan.adjoint = energy;
  plan.s2 = energy;
  Workspace<T>& ws = thread_workspace<T>();
  forward(net, in, plan, ws);
  if (energy) {
    div = -(d2z.array() * ws.out.array()).matrix().colwise().sum() - ws.curv;
  } else {
    div = (d2z.array() * ws.out.array() + dz.array() * ws.outdot.array()).matrix().colwise().sum();
  }
}

namespace {
template <class T>
Inputs<T> check_batch(const Architecture& arch, const BatchInputs<T>& batch, Objective objective) {
  const Index n = batch.size(), d = arch.theta_dim;
  require_shape(batch.z, d, n, "batch.z");
  require_shape(batch.dz, d, n, "batch.dz");
  require_shape(batch.x, arch.x_dim, n, "batch.x");
  Inputs<T> in{&batch.z, &batch.dz, nullptr, &batch.x, nullptr, nullptr, nullptr, 0, n};
  if (objective == Objective::latent) {
    require_shape(batch.target, d, n, "batch.target (latent objective)");
    in.target = &batch.target;
  } else {
    require_shape(batch.d2z, d, n, "batch.d2z");
    require_shape(batch.prior_score, d, n, "batch.prior_score");
    in.d2z = &batch.d2z;
    in.prior_score = &batch.prior_score;
    if (objective == Objective::sliced) {
      require_shape(batch.probe, d, n, "batch.probe (sliced objective)");
      in.probe = &batch.probe;
    }
  }
  return in;
}
}  // namespace

template <class T>
T ScoreNetwork<T>::objective_sum(const BatchInputs<T>& batch, Objective objective, Vec<T>* grad_sum) const {
  Inputs<T> in = check_batch(arch_, batch, objective);
  const int L = static_cast<int>(arch_.hidden.size());
  Net<T> net{arch_, offsets_, params_.data(), L};
  if (grad_sum) grad_sum->setZero(params_.size());
  if (in.n == 0) return T(0);
  return objective_block(net, in, objective, grad_sum ? grad_sum->data() : nullptr,
                         thread_workspace<T>());
}

namespace {
// Per-block values and gradients of objective_sum_parallel, kept per calling thread so that a
// training loop allocates nothing after its first step (freeing and re-allocating these blocks
// on every step made glibc hand pages back to the kernel and fault them in again: up to a
// third of a small step's time on two threads). A thread that waits in one call may run another
// call's top-level task; that call finds the storage busy and uses its own.
template <class T>
struct BlockPartials {
  Mat<T> grads;  // one column per block (the first P rows), columns 64-byte aligned
  std::vector<double> values;
  bool busy = false;
};

// Sums values[b, e) and the first `rows` rows of grads' columns [b, e) (into column b) in a
// fixed binary tree: [b, m) + [m, e) with m = b + (e − b)/2, the split that
// tbb::parallel_deterministic_reduce makes.
template <class T>
double sum_tree(BlockPartials<T>& p, Index b, Index e, Index rows) {
  if (e - b == 1) return p.values[static_cast<std::size_t>(b)];
  const Index m = b + (e - b) / 2;
  const double left = sum_tree(p, b, m, rows);
  const double right = sum_tree(p, m, e, rows);
  if (rows > 0) p.grads.col(b).head(rows) += p.grads.col(m).head(rows);
  return left + right;
}
}  // namespace

template <class T>
double ScoreNetwork<T>::objective_sum_parallel(const BatchInputs<T>& batch, Objective objective,
                                               Vec<T>* grad_sum, Index block_size) const {
  if (block_size < 1) throw std::invalid_argument("objective_sum_parallel: block_size must be positive");
  const Inputs<T> in = check_batch(arch_, batch, objective);
  const int L = static_cast<int>(arch_.hidden.size());
  const Net<T> net{arch_, offsets_, params_.data(), L};
  const Index n = in.n, blocks = (n + block_size - 1) / block_size;
  const Index P = params_.size();
  const bool want_grad = grad_sum != nullptr;
  if (n == 0) {
    if (grad_sum) grad_sum->setZero(P);
    return 0;
  }
  static thread_local BlockPartials<T> kept;
  BlockPartials<T> own;
  BlockPartials<T>& p = kept.busy ? own : kept;
  p.busy = true;
  struct Release {
    bool& busy;
    ~Release() { busy = false; }
  } release{p.busy};
  p.values.assign(static_cast<std::size_t>(blocks), 0.0);
  // Each block's gradient starts 64-byte aligned, as a freshly allocated vector would: the
  // reductions that accumulate into it then add in the same order as objective_sum's.
  const Index stride = (P + 15) / 16 * 16;
  if (want_grad && (p.grads.rows() != stride || p.grads.cols() < blocks)) p.grads.resize(stride, blocks);
  tbb::parallel_for(
      tbb::blocked_range<Index>(0, blocks, 1),
      [&](const tbb::blocked_range<Index>& r) {
        Workspace<T>& ws = thread_workspace<T>();
        for (Index blk = r.begin(); blk != r.end(); ++blk) {
          const Index c0 = blk * block_size;
          Inputs<T> sub = in;
          sub.c0 = c0;
          sub.n = std::min(block_size, n - c0);
          T* g = nullptr;
          if (want_grad) {
            p.grads.col(blk).head(P).setZero();
            g = p.grads.col(blk).data();
          }
          p.values[static_cast<std::size_t>(blk)] = static_cast<double>(objective_block(net, sub, objective, g, ws));
        }
      },
      tbb::simple_partitioner());
  const double total = sum_tree(p, 0, blocks, want_grad ? P : 0);
  if (grad_sum) *grad_sum = p.grads.col(0).head(P);
  return total;
}

double objective_flops(const Architecture& arch, Objective objective, Index n, bool with_gradient) {
  // Mirrors the products in forward() and backward() above; keep them in step.
  const double N = static_cast<double>(n), d = arch.theta_dim, k = arch.x_dim;
  const bool energy = arch.kind == ModelKind::energy;
  const int L = static_cast<int>(arch.hidden.size());
  const double m = objective == Objective::ibp ? d : (objective == Objective::sliced ? 1 : 0);
  const double o = arch.output_dim();
  auto H = [&](int l) { return static_cast<double>(arch.hidden[l]); };
  const double e = energy ? 1 : 0;
  double f = 0;
  // Forward.
  f += 2 * H(0) * (d + k) * N;                            // h_0
  f += objective == Objective::ibp ? H(0) * N * d         // T_0 (outer products)
                                   : 2 * H(0) * d * N * m;
  for (int l = 1; l < L; ++l) f += 2 * H(l) * H(l - 1) * N * (1 + m);
  if (!energy) {
    f += 2 * o * H(L - 1) * N;                            // N
    f += 2 * d * H(L - 1) * N * (objective == Objective::ibp ? 1 : m);  // r or Ẏ
  } else {
    for (int l = L - 1; l >= 1; --l) f += 2 * H(l - 1) * H(l) * N;      // g_{l−1}
    f += 2 * d * H(0) * N;                                               // G
  }
  if (!with_gradient) return f;
  // Reverse.
  if (energy) {
    f += 2 * H(0) * d * N;                                               // δ~_0
    for (int l = 1; l < L; ++l) f += 2 * H(l) * H(l - 1) * N;            // δ~_l
    f += 2 * H(0) * d * N;                                               // W~_0z += δ_0 G~ᵀ
  } else {
    f += 2 * 2 * o * H(L - 1) * N;                                       // a~, W~_o
    f += (objective == Objective::ibp ? 3 : 4 * m) * d * H(L - 1) * N;  // ȧ~, W~_o (tangents)
  }
  for (int l = L - 1; l >= 1; --l) {
    f += 2 * H(l) * H(l - 1) * N * (1 + m + e);                         // W~_l
    f += 2 * H(l) * H(l - 1) * N * (1 + m);                             // [a~ | ȧ~]_{l−1}
  }
  f += 2 * H(0) * (d + k) * N;                                           // W~_0
  f += 2 * H(0) * d * N * (objective == Objective::ibp ? 1 : m);         // W~_0z from T~_0
  return f;
}

template class ScoreNetwork<float>;
template class ScoreNetwork<double>;

}  // namespace fsbi::nn
