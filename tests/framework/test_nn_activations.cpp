// σ', σ'', σ''' of every activation against central differences of the next-lower order, in
// float64 (STYLE point 10), and finiteness of all four in float32 at extreme pre-activations.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "nn/activations.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>

namespace fsbi::nn {
namespace {

constexpr Activation kAll[] = {Activation::silu, Activation::tanh, Activation::elu,
                               Activation::softplus};

struct Values {
  Mat<double> a, s1, s2, s3;
};

Values eval(Activation act, const Mat<double>& h) {
  Values v;
  v.a.resize(h.rows(), h.cols());
  Mat<double> scratch;
  activate<double>(act, h, v.a, v.s1, &v.s2, &v.s3, scratch);
  return v;
}

TEST(NnActivations, DerivativesMatchCentralDifferences) {
  // Points away from ELU's kink at 0 (σ'' jumps there: one-sided formulas, see activations.hpp).
  Mat<double> h(1, 41);
  for (int i = 0; i < h.cols(); ++i) h(0, i) = -6.0 + 0.3 * i + 0.0123;
  const double step = 1e-5, floor = 1e-3, tol = 1e-7;  // floor: FD rounding ~1e-11
  for (Activation act : kAll) {
    const Values v = eval(act, h);
    const Values up = eval(act, (h.array() + step).matrix());
    const Values dn = eval(act, (h.array() - step).matrix());
    double worst[3] = {0, 0, 0};
    for (int i = 0; i < h.cols(); ++i) {
      const double fd[3] = {(up.a(0, i) - dn.a(0, i)) / (2 * step),
                            (up.s1(0, i) - dn.s1(0, i)) / (2 * step),
                            (up.s2(0, i) - dn.s2(0, i)) / (2 * step)};
      const double an[3] = {v.s1(0, i), v.s2(0, i), v.s3(0, i)};
      for (int o = 0; o < 3; ++o) {
        const double err = std::abs(fd[o] - an[o]) / std::max(std::abs(fd[o]), floor);
        worst[o] = std::max(worst[o], err);
      }
    }
    std::cout << "[fd] activation " << to_string(act) << ": worst relative error σ' " << worst[0]
              << ", σ'' " << worst[1] << ", σ''' " << worst[2] << "\n";
    for (double w : worst) EXPECT_LT(w, tol) << to_string(act);
  }
}

TEST(NnActivations, ClosedFormsAtKnownPoints) {
  Mat<double> h(1, 2);
  h << 0.5, -0.5;
  const Values silu = eval(Activation::silu, h);
  const double s = 1 / (1 + std::exp(-0.5));
  EXPECT_NEAR(silu.a(0, 0), 0.5 * s, 1e-15);
  const Values sp = eval(Activation::softplus, h);
  EXPECT_NEAR(sp.a(0, 1), std::log1p(std::exp(-0.5)), 1e-15);
  const Values elu = eval(Activation::elu, h);
  EXPECT_NEAR(elu.a(0, 1), std::expm1(-0.5), 1e-15);
  EXPECT_EQ(elu.s2(0, 0), 0.0);
  EXPECT_NEAR(elu.s2(0, 1), std::exp(-0.5), 1e-15);
}

TEST(NnActivations, FiniteInFloatAtExtremes) {
  Mat<float> h(1, 6);
  h << -200.f, -50.f, -1e-3f, 1e-3f, 50.f, 200.f;
  for (Activation act : kAll) {
    Mat<float> a(h.rows(), h.cols()), s1, s2, s3, scratch;
    activate<float>(act, h, a, s1, &s2, &s3, scratch);
    for (const Mat<float>* m : {&a, &s1, &s2, &s3})
      EXPECT_TRUE(m->allFinite()) << to_string(act) << "\n" << *m;
  }
}

}  // namespace
}  // namespace fsbi::nn
