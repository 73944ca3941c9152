// Activation functions σ of the score networks and their first three derivatives in closed form,
// evaluated in one pass over a batch (docs/score-network.md, "Activations").
//
// Why three: the vector model's divergence contains σ' (tangents) and its gradient in the weights
// σ''; the energy model's score contains σ', its Laplacian σ'', and the Laplacian's gradient in
// the weights σ'''.
//
// ELU (α = 1) is only C¹ at 0: σ'' jumps from 1 (left) to 0 (right). We use the right-hand
// formulas for h > 0 and the left-hand ones for h ≤ 0; the derivatives are exact everywhere
// else, and a pre-activation exactly at 0 has probability zero in training.
#pragma once

#include "nn/score_network.hpp"

#include <Eigen/Core>

namespace fsbi::nn {

// a = σ(h), s1 = σ'(h), and, when not null, s2 = σ''(h), s3 = σ'''(h). All width × n;
// s1/s2/s3 are resized, `a` must already have h's shape. `scratch` is resized as needed.
template <class T>
void activate(Activation act, const Eigen::Ref<const Mat<T>>& h, Eigen::Ref<Mat<T>> a, Mat<T>& s1,
              Mat<T>* s2, Mat<T>* s3, Mat<T>& scratch) {
  const Eigen::Index r = h.rows(), c = h.cols();
  s1.resize(r, c);
  if (s2) s2->resize(r, c);
  if (s3) s3->resize(r, c);
  scratch.resize(r, c);
  const auto x = h.array();
  const T one(1), two(2), three(3), six(6);
  switch (act) {
    case Activation::silu: {
      // σ = x·s, s the logistic; with p = s(1 − s) = s':
      // σ' = s + x p, σ'' = p (2 + x (1 − 2s)), σ''' = p (3 (1 − 2s) + x (1 − 6p)).
      scratch.array() = x.logistic();
      const auto s = scratch.array();
      a.array() = x * s;
      s1.array() = s * (one + x * (one - s));
      if (s2) s2->array() = s * (one - s) * (two + x * (one - two * s));
      if (s3) {
        s3->array() = s * (one - s) *
                      (three * (one - two * s) + x * (one - six * s * (one - s)));
      }
      break;
    }
    case Activation::tanh: {
      // σ = t = tanh x: σ' = 1 − t², σ'' = −2t (1 − t²), σ''' = (1 − t²)(6t² − 2).
      a.array() = x.tanh();
      const auto t = a.array();
      s1.array() = one - t.square();
      if (s2) s2->array() = -two * t * s1.array();
      if (s3) s3->array() = s1.array() * (six * t.square() - two);
      break;
    }
    case Activation::elu: {
      // x > 0: σ = x, σ' = 1, σ'' = σ''' = 0.  x ≤ 0: σ = eˣ − 1, σ' = σ'' = σ''' = eˣ.
      scratch.array() = x.min(T(0)).exp();
      const auto e = scratch.array();
      a.array() = (x > T(0)).select(x, x.min(T(0)).expm1());
      s1.array() = (x > T(0)).select(one, e);
      if (s2) s2->array() = (x > T(0)).select(T(0), e);
      if (s3) s3->array() = (x > T(0)).select(T(0), e);
      break;
    }
    case Activation::softplus: {
      // σ = log(1 + eˣ) = max(x, 0) + log1p(e^−|x|) (no overflow); σ' = s, σ'' = p = s(1 − s),
      // σ''' = p (1 − 2s).
      scratch.array() = x.logistic();
      const auto s = scratch.array();
      a.array() = x.max(T(0)) + (-x.abs()).exp().log1p();
      s1.array() = s;
      if (s2) s2->array() = s * (one - s);
      if (s3) s3->array() = s * (one - s) * (one - two * s);
      break;
    }
  }
}

}  // namespace fsbi::nn
