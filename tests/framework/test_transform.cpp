// Tests of the training coordinates (fsbi/transform.hpp): θ ↔ u round trips up to the box faces,
// every derivative (dθ/du, ∇u log|det|, prior scores, dz, d²z) against float64 central
// differences, normalisation of the transformed prior, the change of variables against samples
// drawn from the prior, robustness for large |u|, score conversion, and the fitted
// standardisation. Each check prints its worst error.
//
// Finite differences: five-point central stencil, step h = 1e-3·max(1, |u|), error measured as
// |fd − exact| / max(|exact|, floor); the stated tolerance is well above truncation (~h⁴) plus
// rounding (~ε/h) error.
// Monte-Carlo checks allow 5 standard errors with fixed, printed seeds.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "fsbi/transform.hpp"

#include "fsbi/prior.hpp"
#include "fsbi/random.hpp"
#include "test_support.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSigmas = 5.0;
constexpr double kSqrt3 = std::numbers::sqrt3;

// Grid of u values for derivative checks (moderate: FD in the far tails measures rounding).
const std::vector<double> kGrid = {-6.0, -3.1, -1.3, -0.2, 0.0, 0.4, 1.0, 2.5, 4.7, 6.0};

// A 3-coordinate transform with one map of each kind.
ParameterTransform mixed_transform() {
  Eigen::VectorXd low(3), high(3);
  low << -1.0, 0.0, -kInf;
  high << 3.0, kInf, kInf;
  return ParameterTransform({CoordinateMap::box, CoordinateMap::positive, CoordinateMap::identity}, low, high);
}

// d × kGrid.size() with every row the grid (shifted per row so rows differ).
Eigen::MatrixXd grid_matrix(int d) {
  Eigen::MatrixXd u(d, static_cast<Eigen::Index>(kGrid.size()));
  for (int i = 0; i < d; ++i) {
    for (std::size_t j = 0; j < kGrid.size(); ++j) u(i, static_cast<Eigen::Index>(j)) = kGrid[j] + 0.13 * i;
  }
  return u;
}

double step(double u, double rel = 1e-3) { return rel * std::max(1.0, std::abs(u)); }

double rel_err(double fd, double exact, double floor) { return std::abs(fd - exact) / std::max(std::abs(exact), floor); }

// Five-point central difference (f(−2h) − 8f(−h) + 8f(h) − f(2h))/(12h): truncation error
// h⁴·f⁽⁵⁾/30, rounding ~ε·|f|/h.
template <class Value, class Eval>
Value five_point(const Eval& at_offset, const Eigen::ArrayXXd& h) {
  return (at_offset(-2.0) - 8.0 * at_offset(-1.0) + 8.0 * at_offset(1.0) - at_offset(2.0)) / (12.0 * h);
}

// Derivative of a per-sample scalar f (1 × n) with respect to row i of u, at every column:
// returns d × n.
Eigen::MatrixXd fd_gradient(const std::function<Eigen::RowVectorXd(const Eigen::MatrixXd&)>& f,
                            const Eigen::MatrixXd& u, double rel_step = 1e-3) {
  Eigen::MatrixXd g(u.rows(), u.cols());
  for (Eigen::Index i = 0; i < u.rows(); ++i) {
    const Eigen::ArrayXXd h = u.row(i).unaryExpr([&](double v) { return step(v, rel_step); }).array();
    const auto at = [&](double k) -> Eigen::ArrayXXd {
      Eigen::MatrixXd v = u;
      v.row(i).array() += k * h;
      return f(v).array();
    };
    g.row(i) = five_point<Eigen::ArrayXXd>(at, h).matrix();
  }
  return g;
}

// Derivative of an elementwise map F (d × n → d × n).
Eigen::MatrixXd fd_elementwise(const std::function<Eigen::MatrixXd(const Eigen::MatrixXd&)>& f,
                               const Eigen::MatrixXd& u) {
  const Eigen::ArrayXXd h = u.unaryExpr([](double v) { return step(v); }).array();
  const auto at = [&](double k) -> Eigen::ArrayXXd { return f((u.array() + k * h).matrix()).array(); };
  return five_point<Eigen::ArrayXXd>(at, h).matrix();
}

// Worst rel_err over a matrix, printed; returns it.
double worst(const char* what, const Eigen::MatrixXd& fd, const Eigen::MatrixXd& exact, double floor) {
  double w = 0.0;
  for (Eigen::Index i = 0; i < fd.rows(); ++i) {
    for (Eigen::Index j = 0; j < fd.cols(); ++j) w = std::max(w, rel_err(fd(i, j), exact(i, j), floor));
  }
  std::printf("[worst] %-48s %.2e\n", what, w);
  return w;
}

Eigen::MatrixXd column(std::initializer_list<double> values) {
  Eigen::MatrixXd m(static_cast<Eigen::Index>(values.size()), 1);
  Eigen::Index i = 0;
  for (double v : values) m(i++, 0) = v;
  return m;
}

// ∫ f over [lo, hi] by composite Simpson with n (even) intervals.
double simpson(const std::function<double(double)>& f, double lo, double hi, int n) {
  const double h = (hi - lo) / n;
  double acc = f(lo) + f(hi);
  for (int k = 1; k < n; ++k) acc += (k % 2 == 1 ? 4.0 : 2.0) * f(lo + k * h);
  return acc * h / 3.0;
}

// exp(prior_log_density) of a 1-D transform at a scalar u.
double density_u(const ParameterTransform& t, const Prior& prior, double u) {
  return std::exp(t.prior_log_density(prior, column({u}))[0]);
}

// ---- Names and construction -----------------------------------------------------------------

TEST(CoordinateMap, NamesRoundTrip) {
  for (CoordinateMap m : {CoordinateMap::identity, CoordinateMap::box, CoordinateMap::positive}) {
    EXPECT_EQ(parse_coordinate_map(to_string(m)), m);
  }
  EXPECT_EQ(to_string(CoordinateMap::box), "box");
  try {
    parse_coordinate_map("logit");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("'logit'"));
    EXPECT_THAT(e.what(), HasSubstr("identity, box or positive"));
  }
}

TEST(ParameterTransform, ForPrior) {
  const auto uniform = parse_prior("uniform([-1, 2], [3, 2.5])", 2);
  const ParameterTransform tu = ParameterTransform::for_prior(*uniform);
  ASSERT_EQ(tu.dim(), 2);
  EXPECT_EQ(tu.maps()[0], CoordinateMap::box);
  EXPECT_EQ(tu.maps()[1], CoordinateMap::box);
  EXPECT_EQ(tu.low()[1], 2.0);
  EXPECT_EQ(tu.high()[1], 2.5);

  const auto lognormal = parse_prior("lognormal(0, 1)", 3);
  const ParameterTransform tl = ParameterTransform::for_prior(*lognormal);
  ASSERT_EQ(tl.dim(), 3);
  for (CoordinateMap m : tl.maps()) EXPECT_EQ(m, CoordinateMap::positive);

  for (const char* spec : {"normal(0, 1)", "mvnormal([0, 1], [[1, 0.5], [0.5, 2]])"}) {
    const auto p = parse_prior(spec, 2);
    const ParameterTransform t = ParameterTransform::for_prior(*p);
    ASSERT_EQ(t.dim(), 2) << spec;
    for (CoordinateMap m : t.maps()) EXPECT_EQ(m, CoordinateMap::identity) << spec;
  }
}

TEST(ParameterTransform, ConstructorValidates) {
  Eigen::VectorXd low(2), high(2);
  low << 0.0, 1.0;
  high << 1.0, 1.0;  // second box is empty
  try {
    ParameterTransform({CoordinateMap::box, CoordinateMap::box}, low, high);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("box coordinate 1"));
  }
  high[1] = kInf;
  EXPECT_THROW(ParameterTransform({CoordinateMap::box, CoordinateMap::box}, low, high), std::invalid_argument);
  try {
    ParameterTransform({CoordinateMap::box}, low, high);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("1 coordinate maps but low has 2"));
  }
  // Without boxes the bounds may be omitted.
  const ParameterTransform t({CoordinateMap::identity, CoordinateMap::positive}, Eigen::VectorXd(), Eigen::VectorXd());
  EXPECT_EQ(t.low()[0], -kInf);
  EXPECT_EQ(t.low()[1], 0.0);
  EXPECT_EQ(t.high()[1], kInf);
  EXPECT_THROW(ParameterTransform({CoordinateMap::box}, Eigen::VectorXd(), Eigen::VectorXd()), std::invalid_argument);
}

TEST(ParameterTransform, ShapesValidated) {
  const ParameterTransform t = mixed_transform();
  const Eigen::MatrixXd wrong = Eigen::MatrixXd::Zero(2, 4);
  const Eigen::MatrixXd u = Eigen::MatrixXd::Zero(3, 4);
  try {
    (void)t.to_constrained(wrong);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("u has 2 rows but the transform has dimension 3"));
  }
  EXPECT_THROW((void)t.to_unconstrained(wrong), std::invalid_argument);
  EXPECT_THROW((void)t.jacobian(wrong), std::invalid_argument);
  EXPECT_THROW((void)t.log_abs_det_jacobian(wrong), std::invalid_argument);
  EXPECT_THROW((void)t.grad_log_abs_det_jacobian(wrong), std::invalid_argument);
  try {
    (void)t.score_to_u(u, Eigen::MatrixXd::Zero(3, 5));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("u is 3x4 but score_theta is 3x5"));
  }
  EXPECT_THROW((void)t.score_to_theta(u, Eigen::MatrixXd::Zero(2, 4)), std::invalid_argument);
  const auto prior = parse_prior("normal(0, 1)", 2);
  try {
    (void)t.prior_log_density(*prior, u);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("the prior has dimension 2 but the transform has dimension 3"));
  }
  EXPECT_THROW((void)t.prior_score(*prior, u), std::invalid_argument);
}

// ---- Round trips ----------------------------------------------------------------------------

TEST(ParameterTransform, RoundTripThetaUTheta) {
  // Boxes of different widths and offsets; θ at fractions of the width including 1 ulp from a face.
  struct Box {
    double a, b;
  };
  const std::vector<Box> boxes = {{-1.0, 3.0}, {0.0, 1.0}, {2.0, 2.5}, {-1e3, -999.0}, {-5e5, 1e6}};
  const std::vector<double> fractions = {1e-300, 1e-15, 1e-12, 1e-6, 0.3, 0.5, 0.9, 1 - 1e-6, 1 - 1e-12};
  double worst_box = 0.0;
  for (const Box& box : boxes) {
    Eigen::VectorXd low(1), high(1);
    low << box.a;
    high << box.b;
    const ParameterTransform t({CoordinateMap::box}, low, high);
    std::vector<double> thetas;
    for (double f : fractions) thetas.push_back(box.a + f * (box.b - box.a));
    thetas.push_back(std::nextafter(box.a, box.b));
    thetas.push_back(std::nextafter(box.b, box.a));
    for (double theta : thetas) {
      if (!(theta > box.a && theta < box.b)) continue;  // a fraction that rounded onto a face
      const Eigen::MatrixXd u = t.to_unconstrained(column({theta}));
      ASSERT_TRUE(std::isfinite(u(0, 0))) << "theta " << theta << " in [" << box.a << ", " << box.b << "]";
      const double back = t.to_constrained(u)(0, 0);
      // Within a couple of ulps of the larger face magnitude.
      const double scale = std::max(std::abs(box.a), std::abs(box.b));
      const double err = std::abs(back - theta) / (scale * std::numeric_limits<double>::epsilon());
      worst_box = std::max(worst_box, err);
      EXPECT_LE(err, 2.0) << "theta " << theta << " back " << back;
      EXPECT_TRUE(back >= box.a && back <= box.b);
    }
    // Faces map to ∓inf and back onto the face exactly.
    const Eigen::MatrixXd faces = t.to_unconstrained((Eigen::MatrixXd(1, 2) << box.a, box.b).finished());
    EXPECT_EQ(faces(0, 0), -kInf);
    EXPECT_EQ(faces(0, 1), kInf);
    const Eigen::MatrixXd back = t.to_constrained(faces);
    EXPECT_EQ(back(0, 0), box.a);
    EXPECT_EQ(back(0, 1), box.b);
  }
  std::printf("[worst] %-48s %.2f ulp of max(|a|,|b|)\n", "box θ→u→θ", worst_box);

  // Positive: u = log θ over the whole double range.
  const ParameterTransform tp({CoordinateMap::positive}, Eigen::VectorXd::Zero(1), Eigen::VectorXd::Constant(1, kInf));
  double worst_pos = 0.0;
  for (double theta : {1e-300, 1e-10, 0.5, 1.0, 3e5, 1e300}) {
    const double back = tp.to_constrained(tp.to_unconstrained(column({theta})))(0, 0);
    worst_pos = std::max(worst_pos, std::abs(back - theta) / theta);
  }
  std::printf("[worst] %-48s %.2e (relative)\n", "positive θ→u→θ", worst_pos);
  EXPECT_LE(worst_pos, 1e-12);
  EXPECT_EQ(tp.to_unconstrained(column({0.0}))(0, 0), -kInf);

  // Identity: exact.
  const ParameterTransform ti({CoordinateMap::identity}, Eigen::VectorXd(), Eigen::VectorXd());
  for (double theta : {-1e300, -2.5, 0.0, 7.0}) EXPECT_EQ(ti.to_constrained(ti.to_unconstrained(column({theta})))(0, 0), theta);
}

TEST(ParameterTransform, RoundTripUThetaU) {
  const ParameterTransform t = mixed_transform();
  Eigen::MatrixXd u(3, 7);
  u << -8, -4, -1, 0, 0.5, 3, 8,  //
      -8, -4, -1, 0, 0.5, 3, 8,   //
      -8, -4, -1, 0, 0.5, 3, 8;
  const Eigen::MatrixXd back = t.to_unconstrained(t.to_constrained(u));
  const double err = (back - u).cwiseAbs().maxCoeff();
  std::printf("[worst] %-48s %.2e (absolute, |u| <= 8)\n", "u→θ→u", err);
  EXPECT_LE(err, 1e-11);
  // θ lies in its box.
  const Eigen::MatrixXd theta = t.to_constrained(u);
  EXPECT_TRUE((theta.row(0).array() > -1.0).all() && (theta.row(0).array() < 3.0).all());
  EXPECT_TRUE((theta.row(1).array() > 0.0).all());
  EXPECT_TRUE(theta.row(2) == u.row(2));
}

// ---- Derivatives against finite differences -------------------------------------------------

TEST(ParameterTransform, JacobianMatchesFiniteDifferences) {
  const ParameterTransform t = mixed_transform();
  const Eigen::MatrixXd u = grid_matrix(3);
  const Eigen::MatrixXd fd = fd_elementwise([&](const Eigen::MatrixXd& v) { return t.to_constrained(v); }, u);
  EXPECT_LE(worst("dθ/du vs FD (rel, floor 1e-6)", fd, t.jacobian(u), 1e-6), 1e-6);
  // Closed forms.
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    const double s = 1.0 / (1.0 + std::exp(-u(0, j)));
    EXPECT_NEAR(t.jacobian(u)(0, j), 4.0 * s * (1.0 - s), 1e-14);
    EXPECT_NEAR(t.jacobian(u)(1, j), std::exp(u(1, j)), 1e-14 * std::exp(u(1, j)));
    EXPECT_EQ(t.jacobian(u)(2, j), 1.0);
  }
}

TEST(ParameterTransform, LogDetMatchesJacobianAndItsGradientFiniteDifferences) {
  const ParameterTransform t = mixed_transform();
  const Eigen::MatrixXd u = grid_matrix(3);
  // log|det| is the sum of log dθ_i/du_i.
  const Eigen::RowVectorXd direct = t.jacobian(u).array().log().matrix().colwise().sum();
  const double err = (t.log_abs_det_jacobian(u) - direct).cwiseAbs().maxCoeff();
  std::printf("[worst] %-48s %.2e (absolute)\n", "log|det| vs Σ log dθ/du", err);
  EXPECT_LE(err, 1e-12);
  const Eigen::MatrixXd fd =
      fd_gradient([&](const Eigen::MatrixXd& v) { return t.log_abs_det_jacobian(v); }, u);
  const Eigen::MatrixXd exact = t.grad_log_abs_det_jacobian(u);
  EXPECT_LE(worst("∇u log|det| vs FD (rel, floor 1e-3)", fd, exact, 1e-3), 1e-7);
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    EXPECT_NEAR(exact(0, j), 1.0 - 2.0 / (1.0 + std::exp(-u(0, j))), 1e-15);
    EXPECT_EQ(exact(1, j), 1.0);
    EXPECT_EQ(exact(2, j), 0.0);
  }
}

TEST(FeatureMap, DerivativesMatchFiniteDifferences) {
  const ParameterTransform t = mixed_transform();
  Eigen::VectorXd mean(3), scale(3);
  mean << 0.0, -0.4, 1.7;
  scale << 1.0, 0.6, 2.3;
  const FeatureMap fm(t.maps(), mean, scale);
  const Eigen::MatrixXd u = grid_matrix(3);
  Eigen::MatrixXd z, dz, d2z;
  fm.apply(u, z, dz, d2z);
  const auto z_of = [&](const Eigen::MatrixXd& v) {
    Eigen::MatrixXd a, b, c;
    fm.apply(v, a, b, c);
    return a;
  };
  const auto dz_of = [&](const Eigen::MatrixXd& v) {
    Eigen::MatrixXd a, b, c;
    fm.apply(v, a, b, c);
    return b;
  };
  EXPECT_LE(worst("dz vs FD (rel, floor 1e-3)", fd_elementwise(z_of, u), dz, 1e-3), 1e-7);
  EXPECT_LE(worst("d2z vs FD of dz (rel, floor 1e-3)", fd_elementwise(dz_of, u), d2z, 1e-3), 1e-7);
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    EXPECT_NEAR(z(0, j), kSqrt3 * std::tanh(u(0, j) / 2), 1e-15);
    // z = √3·(2σ(u) − 1): the box-standardised θ.
    const double theta = t.to_constrained(u)(0, j);
    EXPECT_NEAR(z(0, j), kSqrt3 * (2.0 * (theta + 1.0) / 4.0 - 1.0), 1e-14);
    EXPECT_NEAR(z(1, j), (u(1, j) + 0.4) / 0.6, 1e-14);
    EXPECT_NEAR(z(2, j), (u(2, j) - 1.7) / 2.3, 1e-14);
    EXPECT_NEAR(dz(1, j), 1.0 / 0.6, 1e-15);
    EXPECT_EQ(d2z(1, j), 0.0);
    EXPECT_EQ(d2z(2, j), 0.0);
  }
}

// Prior scores against central differences of prior_log_density in u.
TEST(ParameterTransform, PriorScoreMatchesFiniteDifferences) {
  struct Case {
    const char* spec;
    int dim;
  };
  const std::vector<Case> cases = {{"uniform([-1, 2], [3, 2.5])", 2},
                                   {"normal([0, 1], [1, 0.5])", 2},
                                   {"mvnormal([0, 1], [[1, 0.5], [0.5, 2]])", 2},
                                   {"lognormal([-0.9, 0.3], [0.5, 1.2])", 2}};
  for (const Case& c : cases) {
    const auto prior = parse_prior(c.spec, c.dim);
    const ParameterTransform t = ParameterTransform::for_prior(*prior);
    const Eigen::MatrixXd u = grid_matrix(c.dim);
    const Eigen::MatrixXd fd = fd_gradient([&](const Eigen::MatrixXd& v) { return t.prior_log_density(*prior, v); }, u);
    const Eigen::MatrixXd exact = t.prior_score(*prior, u);
    const std::string what = "prior score vs FD: " + std::string(prior->kind());
    EXPECT_LE(worst(what.c_str(), fd, exact, 1e-2), 1e-7) << c.spec;
  }
  // A Gaussian prior seen through a box (the generic path: π(T(u))·|dθ/du| with T nonlinear).
  const auto normal = parse_prior("normal(0.5, 2)", 1);
  const ParameterTransform tb({CoordinateMap::box}, Eigen::VectorXd::Constant(1, -1.0), Eigen::VectorXd::Constant(1, 3.0));
  const Eigen::MatrixXd u = grid_matrix(1);
  const Eigen::MatrixXd fd = fd_gradient([&](const Eigen::MatrixXd& v) { return tb.prior_log_density(*normal, v); }, u);
  EXPECT_LE(worst("prior score vs FD: normal through a box", fd, tb.prior_score(*normal, u), 1e-2), 1e-7);
}

TEST(ParameterTransform, PriorScoreClosedForms) {
  // Box: 1 − 2σ(u). Log-normal: u ~ N(μ, σ²) exactly, so −(u − μ)/σ².
  const auto uniform = parse_prior("uniform(-1, 3)", 1);
  const ParameterTransform tu = ParameterTransform::for_prior(*uniform);
  const auto lognormal = parse_prior("lognormal([-0.9, 0.3], [0.5, 1.2])", 2);
  const ParameterTransform tl = ParameterTransform::for_prior(*lognormal);
  const Eigen::MatrixXd u1 = grid_matrix(1);
  const Eigen::MatrixXd u2 = grid_matrix(2);
  const Eigen::MatrixXd su = tu.prior_score(*uniform, u1);
  const Eigen::MatrixXd sl = tl.prior_score(*lognormal, u2);
  double worst_box = 0.0, worst_ln = 0.0;
  const double mu[2] = {-0.9, 0.3}, sigma[2] = {0.5, 1.2};
  for (Eigen::Index j = 0; j < u1.cols(); ++j) {
    worst_box = std::max(worst_box, std::abs(su(0, j) - (1.0 - 2.0 / (1.0 + std::exp(-u1(0, j))))));
    for (int i = 0; i < 2; ++i) {
      const double exact = -(u2(i, j) - mu[i]) / (sigma[i] * sigma[i]);
      worst_ln = std::max(worst_ln, std::abs(sl(i, j) - exact) / std::max(1.0, std::abs(exact)));
    }
  }
  std::printf("[worst] %-48s %.2e\n", "box prior score vs 1 − 2σ(u)", worst_box);
  std::printf("[worst] %-48s %.2e\n", "lognormal prior score vs −(u − μ)/σ²", worst_ln);
  EXPECT_LE(worst_box, 1e-15);
  EXPECT_LE(worst_ln, 1e-13);
  // And the log-density is the normal one: log N(u; μ, σ²).
  const Eigen::RowVectorXd lp = tl.prior_log_density(*lognormal, u2);
  for (Eigen::Index j = 0; j < u2.cols(); ++j) {
    double exact = 0.0;
    for (int i = 0; i < 2; ++i) {
      const double z = (u2(i, j) - mu[i]) / sigma[i];
      exact += -0.5 * z * z - std::log(sigma[i]) - 0.5 * std::log(2.0 * std::numbers::pi);
    }
    EXPECT_NEAR(lp[j], exact, 1e-12);
  }
  // The box's log-density: log σ(u) + log σ(−u), whatever the width.
  const Eigen::RowVectorXd lb = tu.prior_log_density(*uniform, u1);
  for (Eigen::Index j = 0; j < u1.cols(); ++j) {
    const double s = 1.0 / (1.0 + std::exp(-u1(0, j)));
    EXPECT_NEAR(lb[j], std::log(s) + std::log1p(-s), 1e-12);
  }
}

// ---- The transformed prior is a density, and the right one ----------------------------------

TEST(ParameterTransform, TransformedPriorIntegratesToOne) {
  const auto box = parse_prior("uniform(-1, 3)", 1);
  const ParameterTransform tb = ParameterTransform::for_prior(*box);
  const double box_mass = simpson([&](double u) { return density_u(tb, *box, u); }, -80.0, 80.0, 32000);

  const auto lognormal = parse_prior("lognormal(-0.9, 0.5)", 1);
  const ParameterTransform tl = ParameterTransform::for_prior(*lognormal);
  const double ln_mass = simpson([&](double u) { return density_u(tl, *lognormal, u); }, -0.9 - 7.0, -0.9 + 7.0, 4000);

  // N(0.5, 2²) through the box [-1, 3]: the mass of the box, Φ(1.25) − Φ(−0.75).
  const auto normal = parse_prior("normal(0.5, 2)", 1);
  const double nb_mass = simpson([&](double u) { return density_u(tb, *normal, u); }, -80.0, 80.0, 32000);
  const double nb_exact = 0.5 * (std::erfc(-1.25 / std::numbers::sqrt2) - std::erfc(0.75 / std::numbers::sqrt2));

  std::printf("[worst] ∫π_u du − 1: box %.2e, lognormal %.2e; normal-through-box − Φ-mass %.2e\n", box_mass - 1,
              ln_mass - 1, nb_mass - nb_exact);
  EXPECT_NEAR(box_mass, 1.0, 1e-6);
  EXPECT_NEAR(ln_mass, 1.0, 1e-6);
  EXPECT_NEAR(nb_mass, nb_exact, 1e-6);
}

// Samples θ ~ π mapped to u must follow exp(prior_log_density): moments and a histogram.
void check_change_of_variables(const char* spec, std::uint64_t seed, double mean_u, double var_u, double kurt_u,
                               double lo, double hi) {
  const auto prior = parse_prior(spec, 1);
  const ParameterTransform t = ParameterTransform::for_prior(*prior);
  constexpr int kN = 200000;
  Eigen::MatrixXd theta(1, kN);
  for (int k = 0; k < kN; ++k) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(k));
    prior->sample(rng, std::span<double>(theta.col(k).data(), 1));
  }
  const Eigen::MatrixXd u = t.to_unconstrained(theta);
  ASSERT_TRUE(u.allFinite()) << spec;
  const double m = u.mean();
  const double v = (u.array() - m).square().sum() / (kN - 1);
  const double se_mean = std::sqrt(var_u / kN);
  const double se_var = var_u * std::sqrt((kurt_u - 1.0) / kN);
  std::printf("%s: mean(u) off by %.2f SE, var(u) off by %.2f SE\n", spec, (m - mean_u) / se_mean,
              (v - var_u) / se_var);
  EXPECT_LE(std::abs(m - mean_u), kSigmas * se_mean) << spec;
  EXPECT_LE(std::abs(v - var_u), kSigmas * se_var) << spec;

  // Histogram on [lo, hi] in 40 bins; expected bin mass from ∫ exp(prior_log_density).
  constexpr int kBins = 40;
  const double width = (hi - lo) / kBins;
  std::vector<int> counts(kBins, 0);
  for (int k = 0; k < kN; ++k) {
    const int b = static_cast<int>(std::floor((u(0, k) - lo) / width));
    if (b >= 0 && b < kBins) ++counts[static_cast<std::size_t>(b)];
  }
  double worst_z = 0.0;
  for (int b = 0; b < kBins; ++b) {
    const double p = simpson([&](double x) { return density_u(t, *prior, x); }, lo + b * width, lo + (b + 1) * width, 20);
    const double expected = kN * p;
    const double sd = std::sqrt(kN * p * (1.0 - p));
    const double z = (counts[static_cast<std::size_t>(b)] - expected) / std::max(sd, 1.0);
    worst_z = std::max(worst_z, std::abs(z));
    EXPECT_LE(std::abs(z), kSigmas) << spec << " bin " << b << ": " << counts[static_cast<std::size_t>(b)]
                                    << " vs " << expected;
  }
  std::printf("%s: histogram of u, worst bin %.2f SE\n", spec, worst_z);
}

TEST(ParameterTransform, ChangeOfVariablesMatchesSamples) {
  // Uniform → standard logistic: mean 0, variance π²/3, kurtosis 4.2.
  check_change_of_variables("uniform(-1, 3)", test::announce_seed("Transform.ChangeOfVariables.box", 301), 0.0,
                            std::numbers::pi * std::numbers::pi / 3.0, 4.2, -8.0, 8.0);
  // Log-normal → N(μ, σ²): kurtosis 3.
  check_change_of_variables("lognormal(-0.9, 0.5)", test::announce_seed("Transform.ChangeOfVariables.lognormal", 302),
                            -0.9, 0.25, 3.0, -2.9, 1.1);
}

TEST(FeatureMap, BoxFeatureIsStandardisedUnderTheUniformPrior) {
  // z = √3·tanh(u/2) = √3·(2(θ − a)/(b − a) − 1) ~ U(−√3, √3): mean 0, variance 1, kurtosis 1.8.
  const std::uint64_t seed = test::announce_seed("Transform.BoxFeature", 303);
  const auto prior = parse_prior("uniform(2, 2.5)", 1);
  const ParameterTransform t = ParameterTransform::for_prior(*prior);
  constexpr int kN = 100000;
  Eigen::MatrixXd theta(1, kN);
  for (int k = 0; k < kN; ++k) {
    CounterRng rng(seed, Stream::test, static_cast<std::uint64_t>(k));
    prior->sample(rng, std::span<double>(theta.col(k).data(), 1));
  }
  const Eigen::MatrixXd u = t.to_unconstrained(theta);
  const FeatureMap fm = FeatureMap::fit(t, u);
  Eigen::MatrixXd z, dz, d2z;
  fm.apply(u, z, dz, d2z);
  const double m = z.mean();
  const double v = (z.array() - m).square().sum() / (kN - 1);
  std::printf("box feature z: mean %.2f SE, var %.2f SE\n", m / std::sqrt(1.0 / kN), (v - 1.0) / std::sqrt(0.8 / kN));
  EXPECT_LE(std::abs(m), kSigmas * std::sqrt(1.0 / kN));
  EXPECT_LE(std::abs(v - 1.0), kSigmas * std::sqrt(0.8 / kN));
  EXPECT_LE(z.cwiseAbs().maxCoeff(), kSqrt3);
}

// ---- Robustness far out ---------------------------------------------------------------------

TEST(ParameterTransform, LargeAbsUIsFinite) {
  const std::vector<double> big = {-700.0, -100.0, -40.0, 40.0, 100.0, 700.0};
  Eigen::MatrixXd u(1, static_cast<Eigen::Index>(big.size()));
  for (std::size_t j = 0; j < big.size(); ++j) u(0, static_cast<Eigen::Index>(j)) = big[j];

  const auto uniform = parse_prior("uniform(-1, 3)", 1);
  const ParameterTransform tb = ParameterTransform::for_prior(*uniform);
  const Eigen::MatrixXd theta = tb.to_constrained(u);
  EXPECT_TRUE(theta.allFinite());
  EXPECT_TRUE((theta.array() >= -1.0).all() && (theta.array() <= 3.0).all());
  const Eigen::MatrixXd jac = tb.jacobian(u);
  EXPECT_TRUE(jac.allFinite());
  EXPECT_TRUE((jac.array() > 0.0).all()) << "dθ/du underflowed for |u| <= 700";
  const Eigen::RowVectorXd logdet = tb.log_abs_det_jacobian(u);
  const Eigen::RowVectorXd lp = tb.prior_log_density(*uniform, u);
  const Eigen::MatrixXd score = tb.prior_score(*uniform, u);
  EXPECT_TRUE(logdet.allFinite());
  EXPECT_TRUE(lp.allFinite());
  EXPECT_TRUE(score.allFinite());
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    const double a = std::abs(u(0, j));
    EXPECT_NEAR(lp[j], -a, 1e-12 * a);                      // log σ(u)σ(−u) → −|u|
    EXPECT_NEAR(logdet[j], std::log(4.0) - a, 1e-12 * a);  // + log(b − a)
    EXPECT_NEAR(std::log(jac(0, j)), logdet[j], 1e-12 * a);
    EXPECT_NEAR(score(0, j), u(0, j) > 0 ? -1.0 : 1.0, 1e-15);
  }
  // Scores convert both ways at |u| = 40 and 100 (dθ/du ~ 1e-17, 1e-43: still normal doubles).
  const Eigen::MatrixXd s = Eigen::MatrixXd::Constant(1, u.cols(), 0.7);
  const Eigen::MatrixXd mid = u.middleCols(1, 4);
  EXPECT_TRUE(tb.score_to_theta(mid, s.middleCols(1, 4)).allFinite());
  EXPECT_TRUE(tb.score_to_u(u, s).allFinite());

  // Features: z → ±√3, derivatives tiny but finite and of the right sign.
  const FeatureMap fm(tb.maps(), Eigen::VectorXd::Zero(1), Eigen::VectorXd::Ones(1));
  Eigen::MatrixXd z, dz, d2z;
  fm.apply(u, z, dz, d2z);
  EXPECT_TRUE(z.allFinite() && dz.allFinite() && d2z.allFinite());
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    EXPECT_NEAR(std::abs(z(0, j)), kSqrt3, 1e-15);
    EXPECT_GT(dz(0, j), 0.0);
    EXPECT_EQ(std::signbit(d2z(0, j)), u(0, j) > 0) << "u " << u(0, j);
    // dz = 2√3·e^{−|u|}/(1 + e^{−|u|})²: relative precision, not the cancelled 1 − tanh².
    const double e = std::exp(-std::abs(u(0, j)));
    EXPECT_NEAR(dz(0, j), 2.0 * kSqrt3 * e / ((1 + e) * (1 + e)), 1e-14 * dz(0, j));
  }

  // Log-normal and a Gaussian through a box at |u| = 40.
  Eigen::MatrixXd u40(1, 2);
  u40 << -40.0, 40.0;
  const auto lognormal = parse_prior("lognormal(-0.9, 0.5)", 1);
  const ParameterTransform tl = ParameterTransform::for_prior(*lognormal);
  EXPECT_TRUE(tl.to_constrained(u40).allFinite());
  EXPECT_TRUE(tl.jacobian(u40).allFinite());
  EXPECT_TRUE(tl.log_abs_det_jacobian(u40).allFinite());
  EXPECT_TRUE(tl.prior_log_density(*lognormal, u40).allFinite());
  EXPECT_TRUE(tl.prior_score(*lognormal, u40).allFinite());
  const auto normal = parse_prior("normal(0.5, 2)", 1);
  EXPECT_TRUE(tb.prior_log_density(*normal, u40).allFinite());
  EXPECT_TRUE(tb.prior_score(*normal, u40).allFinite());
}

// ---- Scores between θ and u -------------------------------------------------------------------

TEST(ParameterTransform, ScoreConversionsInvertEachOther) {
  const ParameterTransform t = mixed_transform();
  const Eigen::MatrixXd u = grid_matrix(3);
  const Eigen::MatrixXd s = Eigen::MatrixXd::Random(3, u.cols());
  const Eigen::MatrixXd back = t.score_to_theta(u, t.score_to_u(u, s));
  const double err = ((back - s).array() / s.array().abs().max(1e-3)).abs().maxCoeff();
  std::printf("[worst] %-48s %.2e\n", "score_to_theta ∘ score_to_u − id (rel)", err);
  EXPECT_LE(err, 1e-14);
}

TEST(ParameterTransform, GaussianLikelihoodScoreInU) {
  // x | θ ~ N(θ, 0.1) per coordinate: ∇θ log p = (x − θ)/0.1, and its u-version must be the
  // derivative in u of log N(x; T(u), 0.1).
  const ParameterTransform t = mixed_transform();
  const Eigen::MatrixXd u = grid_matrix(3);
  // Observations within a few likelihood widths of θ (a far x makes log p huge and the FD
  // measure rounding, not the map).
  Eigen::MatrixXd x = t.to_constrained(u);
  for (Eigen::Index j = 0; j < u.cols(); ++j) {
    x(0, j) += 0.4 - 0.1 * j;
    x(1, j) += -0.3 + 0.07 * j;
    x(2, j) += 0.25 - 0.05 * j;
  }
  constexpr double kVar = 0.1;
  const auto log_lik = [&](const Eigen::MatrixXd& v) -> Eigen::RowVectorXd {
    return (-0.5 / kVar) * (x - t.to_constrained(v)).array().square().matrix().colwise().sum();
  };
  const Eigen::MatrixXd score_theta = (x - t.to_constrained(u)) / kVar;
  const Eigen::MatrixXd score_u = t.score_to_u(u, score_theta);
  // At u = 6 the positive coordinate has θ ≈ 400, so the likelihood's width in u is ~0.3/400:
  // the step must be well below that.
  const Eigen::MatrixXd fd = fd_gradient(log_lik, u, 1e-5);
  EXPECT_LE(worst("Gaussian likelihood u-score vs FD (rel, floor 1e-2)", fd, score_u, 1e-2), 1e-7);
}

// ---- Fitted standardisation ---------------------------------------------------------------------

TEST(Standardizer, FitAndApply) {
  Eigen::MatrixXd x(3, 4);
  x << 1, 2, 3, 4,  //
      5, 5, 5, 5,   //
      0, -2, 2, 4;
  const Standardizer st = Standardizer::fit(x);
  EXPECT_DOUBLE_EQ(st.mean()[0], 2.5);
  EXPECT_DOUBLE_EQ(st.mean()[1], 5.0);
  EXPECT_DOUBLE_EQ(st.mean()[2], 1.0);
  EXPECT_DOUBLE_EQ(st.scale()[0], std::sqrt(5.0 / 3.0));  // sample sd (n − 1)
  EXPECT_EQ(st.scale()[1], 1.0);                           // zero spread → 1
  EXPECT_DOUBLE_EQ(st.scale()[2], std::sqrt(20.0 / 3.0));
  const Eigen::MatrixXd y = st.apply(x);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(y.row(i).mean(), 0.0, 1e-15);
  EXPECT_NEAR((y.row(0).array().square().sum()) / 3.0, 1.0, 1e-14);
  EXPECT_NEAR((y.row(2).array().square().sum()) / 3.0, 1.0, 1e-14);
  EXPECT_TRUE(y.row(1).isZero());
  EXPECT_NEAR(y(2, 3), 3.0 / std::sqrt(20.0 / 3.0), 1e-15);

  try {
    (void)st.apply(Eigen::MatrixXd::Zero(2, 4));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("x has 2 rows but the standardizer was fitted to 3 features"));
  }
  Eigen::MatrixXd bad = x;
  bad(1, 2) = std::nan("");
  try {
    (void)Standardizer::fit(bad);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("entry (1, 2)"));
  }
  EXPECT_THROW((void)Standardizer::fit(Eigen::MatrixXd(2, 0)), std::invalid_argument);
  EXPECT_THROW(Standardizer(Eigen::VectorXd::Zero(2), Eigen::VectorXd::Ones(3)), std::invalid_argument);
  EXPECT_THROW(Standardizer(Eigen::VectorXd::Zero(1), Eigen::VectorXd::Zero(1)), std::invalid_argument);
  // One sample: no spread to estimate, scale 1.
  const Standardizer one = Standardizer::fit(column({3.0, -1.0}));
  EXPECT_EQ(one.mean()[0], 3.0);
  EXPECT_EQ(one.scale()[0], 1.0);
}

TEST(FeatureMap, FitValues) {
  const ParameterTransform t = mixed_transform();
  Eigen::MatrixXd u(3, 5);
  u << 9, -4, 0.5, 2, 30,  //  box: ignored
      1, 2, 3, 4, 5,       //  positive: mean 3, sd √2.5
      7, 7, 7, 7, 7;       //  identity: constant → scale 1
  const FeatureMap fm = FeatureMap::fit(t, u);
  EXPECT_EQ(fm.maps(), t.maps());
  EXPECT_EQ(fm.mean()[0], 0.0);
  EXPECT_EQ(fm.scale()[0], 1.0);
  EXPECT_DOUBLE_EQ(fm.mean()[1], 3.0);
  EXPECT_DOUBLE_EQ(fm.scale()[1], std::sqrt(2.5));
  EXPECT_DOUBLE_EQ(fm.mean()[2], 7.0);
  EXPECT_EQ(fm.scale()[2], 1.0);
  Eigen::MatrixXd z, dz, d2z;
  fm.apply(u, z, dz, d2z);
  EXPECT_NEAR(z.row(1).mean(), 0.0, 1e-15);
  EXPECT_NEAR(z.row(1).array().square().sum() / 4.0, 1.0, 1e-14);
  EXPECT_TRUE(z.row(2).isZero());
  EXPECT_NEAR(z(0, 4), kSqrt3 * std::tanh(15.0), 1e-15);

  // A box coordinate may hold ±inf (θ on a face); the fit ignores it. Elsewhere it is an error.
  Eigen::MatrixXd with_inf = u;
  with_inf(0, 1) = -kInf;
  EXPECT_NO_THROW((void)FeatureMap::fit(t, with_inf));
  with_inf(1, 1) = -kInf;
  EXPECT_THROW((void)FeatureMap::fit(t, with_inf), std::invalid_argument);

  try {
    fm.apply(Eigen::MatrixXd::Zero(2, 3), z, dz, d2z);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("u has 2 rows but the feature map has dimension 3"));
  }
  EXPECT_THROW((void)FeatureMap::fit(t, Eigen::MatrixXd::Zero(2, 3)), std::invalid_argument);
  EXPECT_THROW((void)FeatureMap::fit(t, Eigen::MatrixXd(3, 0)), std::invalid_argument);
  EXPECT_THROW(FeatureMap(t.maps(), Eigen::VectorXd::Zero(2), Eigen::VectorXd::Ones(2)), std::invalid_argument);
  EXPECT_THROW(FeatureMap(t.maps(), Eigen::VectorXd::Zero(3), Eigen::VectorXd::Zero(3)), std::invalid_argument);
}

// weigh_box_edges: on a box coordinate dz' = √(κ·dz) = κ/cosh(u/2) (κ = √3/2), d2z' = 0 and the
// prior score scaled by cosh(u/2) = √(κ/dz), the weight capped at 1e12 far out; other coordinates
// untouched; mismatched shapes named.
TEST(FeatureMap, BoxEdgeWeightRewritesOnlyBoxCoordinates) {
  const ParameterTransform t = mixed_transform();
  Eigen::MatrixXd u(3, 3);
  u << 0, 4, -60,  //  box
      1, 2, 3,     //  positive
      7, 8, 9;     //  identity
  const FeatureMap fm = FeatureMap::fit(t, u);
  Eigen::MatrixXd z, dz, d2z;
  fm.apply(u, z, dz, d2z);
  const Eigen::MatrixXd dz0 = dz, d2z0 = d2z;
  Eigen::MatrixXd ps = Eigen::MatrixXd::Constant(3, 3, 0.5);
  weigh_box_edges(fm, u, dz, d2z, ps);
  const double kappa = kSqrt3 / 2;
  EXPECT_NEAR(dz(0, 0), kappa, 1e-15);
  EXPECT_NEAR(dz(0, 1), kappa / std::cosh(2.0), 1e-15);
  EXPECT_NEAR(ps(0, 1), 0.5 * std::cosh(2.0), 1e-13);
  EXPECT_DOUBLE_EQ(dz(0, 2), dz0(0, 2) * 1e6);  // the cap: √1e12
  EXPECT_DOUBLE_EQ(ps(0, 2), 0.5e6);
  EXPECT_TRUE(d2z.row(0).isZero());
  EXPECT_EQ(dz.bottomRows(2), dz0.bottomRows(2));
  EXPECT_EQ(d2z.bottomRows(2), d2z0.bottomRows(2));
  EXPECT_TRUE((ps.bottomRows(2).array() == 0.5).all());
  Eigen::MatrixXd short_ps(3, 2);
  try {
    weigh_box_edges(fm, u, dz, d2z, short_ps);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("a 3 × 2 matrix where u is 3 × 3"));
  }
}

}  // namespace
}  // namespace fsbi
