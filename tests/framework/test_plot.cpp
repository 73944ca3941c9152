// Tests of fsbi's figures (framework/src/plot, docs/plots.md): the "nice" tick helper, the corner
// plot and the loss curve read back from their PNG files with cairo (size, where the panels are,
// the histogram peak over the mean, the truth marker, the loss curve going down as the loss does),
// plot_file on run/model/posterior files, and `fsbi plot` through the real binary.
#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/score_model.hpp"
#include "fsbi/simulation.hpp"
#include "fsbi/table_io.hpp"
#include "fsbi/trainer.hpp"
#include "h5/h5.hpp"
#include "plot/corner_plot.hpp"
#include "plot/loss_plot.hpp"
#include "plot/plot_file.hpp"
#include "plot/ticks.hpp"
#include "posterior_file.hpp"
#include "test_support.hpp"

#include <cairo.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi::plot {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

// ---- PNG read-back ------------------------------------------------------------------------------

struct Pixel {
  int r = 0, g = 0, b = 0;
  bool is_white() const { return r == 255 && g == 255 && b == 255; }
  bool near(int rr, int gg, int bb, int tol) const {
    return std::abs(r - rr) <= tol && std::abs(g - gg) <= tol && std::abs(b - bb) <= tol;
  }
};

class Png {
 public:
  explicit Png(const std::string& path)
      : s_(cairo_image_surface_create_from_png(path.c_str()), cairo_surface_destroy) {}
  bool ok() const { return cairo_surface_status(s_.get()) == CAIRO_STATUS_SUCCESS; }
  int width() const { return cairo_image_surface_get_width(s_.get()); }
  int height() const { return cairo_image_surface_get_height(s_.get()); }
  Pixel at(int x, int y) const {
    const cairo_format_t f = cairo_image_surface_get_format(s_.get());
    EXPECT_TRUE(f == CAIRO_FORMAT_RGB24 || f == CAIRO_FORMAT_ARGB32);
    EXPECT_TRUE(x >= 0 && y >= 0 && x < width() && y < height()) << x << "," << y;
    const unsigned char* row = cairo_image_surface_get_data(s_.get()) + y * cairo_image_surface_get_stride(s_.get());
    const std::uint32_t p = reinterpret_cast<const std::uint32_t*>(row)[x];
    return {static_cast<int>((p >> 16) & 0xff), static_cast<int>((p >> 8) & 0xff), static_cast<int>(p & 0xff)};
  }
  // Fraction of non-white pixels in [x0, x1) × [y0, y1).
  double ink(int x0, int y0, int x1, int y1) const {
    long n = 0, inked = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x, ++n) inked += at(x, y).is_white() ? 0 : 1;
    return n ? static_cast<double>(inked) / static_cast<double>(n) : 0.0;
  }

 private:
  std::unique_ptr<cairo_surface_t, void (*)(cairo_surface_t*)> s_;
};

// Colours the plots use (framework/src/plot).
constexpr int kHistLine[3] = {0x08, 0x51, 0x9c};
constexpr int kTruth[3] = {0xd6, 0x27, 0x28};
constexpr int kTrain[3] = {0x1f, 0x77, 0xb4};
constexpr int kValidation[3] = {0xff, 0x7f, 0x0e};
constexpr int kBest[3] = {0x2c, 0xa0, 0x2c};

bool is(const Pixel& p, const int (&c)[3], int tol) { return p.near(c[0], c[1], c[2], tol); }

// Standard normal quantile by bisection on erfc (exact enough for plotting tests).
double normal_quantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

// n samples of a 2-D Gaussian (means m0, m1; sds s0, s1; correlation rho). Parameter 0 takes the
// exact normal quantiles (a noiseless, symmetric marginal); parameter 1 pairs them with a shuffled
// copy.
Eigen::MatrixXd gaussian_2d(int n, double m0, double m1, double s0, double s1, double rho, std::uint64_t seed) {
  std::vector<double> z(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) z[static_cast<std::size_t>(i)] = normal_quantile((i + 0.5) / n);
  std::vector<double> z2 = z;
  std::mt19937_64 rng(seed);
  std::shuffle(z2.begin(), z2.end(), rng);
  Eigen::MatrixXd s(n, 2);
  for (int i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    s(i, 0) = m0 + s0 * z[k];
    s(i, 1) = m1 + s1 * (rho * z[k] + std::sqrt(1 - rho * rho) * z2[k]);
  }
  return s;
}

// ---- Ticks --------------------------------------------------------------------------------------

TEST(PlotTicks, NiceStepsAndLabels) {
  Ticks t = nice_ticks(0, 1, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.25);
  EXPECT_THAT(t.values, ElementsAre(0, 0.25, 0.5, 0.75, 1));
  EXPECT_THAT(tick_labels(t), ElementsAre("0.00", "0.25", "0.50", "0.75", "1.00"));

  t = nice_ticks(-3.2, 3.7, 7);
  EXPECT_DOUBLE_EQ(t.step, 1);
  EXPECT_THAT(tick_labels(t), ElementsAre("\u22123", "\u22122", "\u22121", "0", "1", "2", "3"));

  t = nice_ticks(-0.33, 0.52, 5);  // 0.2 would give 5 ticks within [-0.33, 0.52]: -0.2 … 0.4
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_THAT(tick_labels(t), ElementsAre("\u22120.2", "0.0", "0.2", "0.4"));

  // Never more than asked for, always within the range, zero exact.
  for (const double hi : {0.7, 3.3, 17.0, 123.0, 9876.0})
    for (int m = 2; m <= 8; ++m) {
      t = nice_ticks(-0.4 * hi, hi, m);
      EXPECT_LE(static_cast<int>(t.values.size()), m);
      EXPECT_GE(t.values.size(), 1u);
      for (const double v : t.values) {
        EXPECT_GE(v, -0.4 * hi);
        EXPECT_LE(v, hi);
      }
      EXPECT_TRUE(std::find(t.values.begin(), t.values.end(), 0.0) != t.values.end());
    }

  // Scientific notation for tiny steps and big values, with real minus signs.
  EXPECT_THAT(tick_labels(nice_ticks(0, 3e-5, 4)), ElementsAre("0", "1e\u22125", "2e\u22125", "3e\u22125"));
  EXPECT_THAT(tick_labels(nice_ticks(0, 2e6, 3)), ElementsAre("0", "1e6", "2e6"));
  EXPECT_THAT(tick_labels(nice_ticks(0, 5e-4, 2)), ElementsAre("0", "5e\u22124"));
  // A minimum step (epochs are integers).
  t = nice_ticks(0.9, 3.1, 10, 1.0);
  EXPECT_THAT(t.values, ElementsAre(1, 2, 3));
  EXPECT_THAT(tick_labels(t), ElementsAre("1", "2", "3"));
  // Degenerate ranges give no ticks.
  EXPECT_TRUE(nice_ticks(1, 1, 5).values.empty());
  EXPECT_TRUE(nice_ticks(0, std::nan(""), 5).values.empty());

  EXPECT_EQ(format_number(0.123456, 3), "0.123");
  EXPECT_EQ(format_number(-12.5, 3), "\u221212.5");
  EXPECT_EQ(format_number(3.21e-6, 2), "3.2e\u22126");
}

// ---- Corner plot --------------------------------------------------------------------------------

TEST(CornerPlot, GaussianPanelsPeakAndTruth) {
  test::TempDir tmp;
  const double m0 = 1.0, m1 = -2.0, s0 = 0.5, s1 = 2.0;
  const Eigen::MatrixXd s = gaussian_2d(40000, m0, m1, s0, s1, 0.6, test::announce_seed("shuffle", 5));
  CornerOptions o;
  o.truth = {5.0, -1.0};  // beyond parameter 0's samples: its axis is not symmetric about the mean
  const std::string path = tmp.file("corner.png");
  const CornerLayout L = write_corner_plot(path, s, {"alpha", "beta"}, o);

  const Png png(path);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.width(), L.width);
  EXPECT_EQ(png.height(), L.height);
  ASSERT_EQ(L.d, 2);
  EXPECT_EQ(L.panel_size, 250);
  // A 2 × 2 grid: ~250 px panels, lower triangle and diagonal only, inside the image.
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      const Box& b = L.panel(r, c);
      if (c > r) {
        EXPECT_TRUE(b.empty());
        continue;
      }
      EXPECT_EQ(b.x1 - b.x0, 250);
      EXPECT_EQ(b.y1 - b.y0, 250);
      EXPECT_GE(b.x0, 20);  // room for labels
      EXPECT_LE(b.x1, L.width - 10);
      EXPECT_GE(b.y0, 20);
      EXPECT_LE(b.y1, L.height - 30);
    }
  EXPECT_LT(L.panel(0, 0).x1, L.panel(1, 1).x0);
  EXPECT_LT(L.panel(0, 0).y1, L.panel(1, 1).y0);
  EXPECT_EQ(L.panel(1, 0).x0, L.panel(0, 0).x0);
  EXPECT_LT(L.width, 700);
  EXPECT_LT(L.height, 700);
  // The shown ranges cover the samples and the truth.
  EXPECT_LT(L.lo[0], s.col(0).minCoeff());
  EXPECT_GT(L.hi[0], 5.0);
  EXPECT_LT(L.lo[1], -2.0 - 3 * s1);
  EXPECT_GT(L.hi[1], -2.0 + 3 * s1);

  // Ink inside every panel: histograms (filled) on the diagonal, the shaded density below it.
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c <= r; ++c) {
      const Box& b = L.panel(r, c);
      EXPECT_GT(png.ink(b.x0, b.y0, b.x1, b.y1), 0.2) << "panel " << r << "," << c;
    }
  // Background where nothing belongs: the gap between the two bottom panels, the empty upper-right
  // panel below its legend and above the title of panel (1, 1), the right margin next to row 0.
  {
    const Box& a = L.panel(1, 0);
    const Box& b = L.panel(1, 1);
    EXPECT_EQ(png.ink(a.x1 + 1, a.y0, b.x0 - 1, a.y1 - 1), 0.0);
    const int x0 = b.x0, x1 = b.x1, y0 = L.panel(0, 0).y0 + 125, y1 = L.panel(0, 0).y1 - 35;
    EXPECT_EQ(png.ink(x0, y0, x1, y1), 0.0);
    EXPECT_EQ(png.ink(b.x1 + 2, L.panel(0, 0).y0, L.width, L.panel(0, 0).y1), 0.0);
  }

  // The diagonal histograms peak over the means: the topmost histogram-outline pixels.
  for (int p = 0; p < 2; ++p) {
    const Box& b = L.panel(p, p);
    int best_y = b.y1;
    std::vector<int> top(static_cast<std::size_t>(b.x1 - b.x0), b.y1);
    for (int x = b.x0 + 2; x < b.x1 - 2; ++x)
      for (int y = b.y0 + 1; y < b.y1; ++y)
        if (is(png.at(x, y), kHistLine, 40)) {
          top[static_cast<std::size_t>(x - b.x0)] = y;
          best_y = std::min(best_y, y);
          break;
        }
    double sum = 0;
    int n = 0;
    for (int x = b.x0; x < b.x1; ++x)
      if (top[static_cast<std::size_t>(x - b.x0)] <= best_y + 1) {
        sum += x + 0.5;
        ++n;
      }
    ASSERT_GT(n, 0) << "no histogram outline in panel " << p;
    const double peak_x = sum / n;
    const double mean_x = L.x_axis(p).to_pixel(p == 0 ? m0 : m1);
    const double bin_px = (b.x1 - b.x0) / 40.0;
    EXPECT_NEAR(peak_x, mean_x, 1.5 * bin_px) << "parameter " << p;
    // The tallest bin reaches near the top of the panel, the tails come down to the bottom.
    EXPECT_LT(best_y, b.y0 + 0.2 * (b.y1 - b.y0));
  }
  // Parameter 0's mean is well left of its panel's centre (a mirrored axis would fail above).
  EXPECT_LT(L.x_axis(0).to_pixel(m0), (L.panel(0, 0).x0 + L.panel(0, 0).x1) / 2.0 - 30);

  // The truth: a marker at (truth_0, truth_1) in the 2-D panel, vertical lines on the diagonal.
  {
    const double tx = L.x_axis(0).to_pixel(5.0), ty = L.y_axis(1).to_pixel(-1.0);
    EXPECT_TRUE(L.panel(1, 0).contains(tx, ty));
    const Pixel p = png.at(static_cast<int>(tx), static_cast<int>(ty));
    EXPECT_TRUE(is(p, kTruth, 12)) << p.r << "," << p.g << "," << p.b;
    // Not red a bit away from both truth lines.
    const Pixel q = png.at(static_cast<int>(tx) - 20, static_cast<int>(ty) + 20);
    EXPECT_FALSE(is(q, kTruth, 60));
    const Box& b0 = L.panel(0, 0);
    EXPECT_TRUE(is(png.at(static_cast<int>(tx), b0.y0 + 3), kTruth, 12));
    const Box& b1 = L.panel(1, 1);
    const double tx1 = L.x_axis(1).to_pixel(-1.0);
    EXPECT_TRUE(is(png.at(static_cast<int>(tx1), b1.y0 + 3), kTruth, 12));
    EXPECT_FALSE(is(png.at(static_cast<int>(tx1) - 8, b1.y0 + 3), kTruth, 60));
  }
  // Mapping sanity: y grows downwards for larger values.
  EXPECT_GT(L.y_axis(1).to_pixel(-5.0), L.y_axis(1).to_pixel(0.0));
}

TEST(CornerPlot, FewSamplesScatterAndThreeParameters) {
  test::TempDir tmp;
  std::mt19937_64 rng(test::announce_seed("samples", 21));
  std::normal_distribution<double> n01;
  Eigen::MatrixXd s(200, 3);
  for (Eigen::Index i = 0; i < s.rows(); ++i)
    for (Eigen::Index j = 0; j < 3; ++j) s(i, j) = 10.0 * static_cast<double>(j) + n01(rng);
  s(7, 1) = std::nan("");  // left out, not fatal
  const std::string path = tmp.file("c3.png");
  const CornerLayout L = write_corner_plot(path, s, {"a", "b", "a long parameter name"});
  const Png png(path);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.width(), L.width);
  EXPECT_EQ(png.height(), L.height);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      const Box& b = L.panel(r, c);
      if (c > r) {
        EXPECT_TRUE(b.empty());
        continue;
      }
      // Scatter plots (200 points) ink less than a density, but clearly some.
      EXPECT_GT(png.ink(b.x0, b.y0, b.x1, b.y1), r == c ? 0.15 : 0.02) << r << "," << c;
    }
  // Upper triangle: the right-most column above the diagonal is empty below the legend.
  const Box& last = L.panel(2, 2);
  EXPECT_EQ(png.ink(last.x0, L.panel(0, 0).y0 + 150, last.x1, L.panel(1, 1).y0 - 40), 0.0);
}

TEST(CornerPlot, TenParametersStayCompact) {
  test::TempDir tmp;
  std::mt19937_64 rng(test::announce_seed("samples", 22));
  std::normal_distribution<double> n01;
  const int d = 10;
  Eigen::MatrixXd s(3000, d);
  std::vector<std::string> names;
  for (int j = 0; j < d; ++j) names.push_back("theta_" + std::to_string(j + 1));
  for (Eigen::Index i = 0; i < s.rows(); ++i)
    for (int j = 0; j < d; ++j) s(i, j) = std::pow(10.0, j - 4) * n01(rng) + j;
  CornerOptions o;
  o.truth.assign(d, 0.0);
  for (int j = 0; j < d; ++j) o.truth[static_cast<std::size_t>(j)] = j;
  const std::string path = tmp.file("c10.png");
  const CornerLayout L = write_corner_plot(path, s, names, o);
  const Png png(path);
  ASSERT_TRUE(png.ok());
  EXPECT_LT(L.panel_size, 250);
  EXPECT_GE(L.panel_size, 150);
  EXPECT_LT(L.width, 2100);
  for (int r = 0; r < d; ++r)
    for (int c = 0; c <= r; ++c) {
      const Box& b = L.panel(r, c);
      EXPECT_GT(png.ink(b.x0, b.y0, b.x1, b.y1), 0.1) << r << "," << c;
      if (r > c) {
        const double tx = L.x_axis(c).to_pixel(c), ty = L.y_axis(r).to_pixel(r);
        EXPECT_TRUE(is(png.at(static_cast<int>(tx), static_cast<int>(ty)), kTruth, 12)) << r << "," << c;
      }
    }
}

TEST(CornerPlot, RejectsInconsistentInput) {
  test::TempDir tmp;
  const Eigen::MatrixXd s = Eigen::MatrixXd::Zero(10, 2);
  EXPECT_THROW(write_corner_plot(tmp.file("x.png"), s, {"a"}), std::invalid_argument);
  CornerOptions o;
  o.truth = {1, 2, 3};
  EXPECT_THROW(write_corner_plot(tmp.file("x.png"), s, {"a", "b"}, o), std::invalid_argument);
  o.truth.clear();
  o.bins = 0;
  EXPECT_THROW(write_corner_plot(tmp.file("x.png"), s, {"a", "b"}, o), std::invalid_argument);
  // Constant samples still plot (a small range around the value).
  EXPECT_NO_THROW(write_corner_plot(tmp.file("const.png"), s, {"a", "b"}));
  try {
    write_corner_plot(tmp.file("no/such/dir/x.png"), s, {"a", "b"});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no/such/dir/x.png: cannot write the image"));
  }
}

// ---- Loss plot ----------------------------------------------------------------------------------

TEST(LossPlot, CurvesGoDownAsTheLossDoes) {
  test::TempDir tmp;
  const int epochs = 80;
  std::vector<double> train, val;
  for (int e = 1; e <= epochs; ++e) {
    train.push_back(2.0 + 8.0 * std::exp(-e / 15.0));
    val.push_back(2.5 + 8.0 * std::exp(-e / 12.0) + 0.0015 * std::pow(std::max(0, e - 45), 2));
  }
  const int best = static_cast<int>(std::min_element(val.begin(), val.end()) - val.begin()) + 1;
  const std::string path = tmp.file("loss.png");
  const LossLayout L = write_loss_plot(path, train, val, best, "Training loss");
  const Png png(path);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.width(), L.width);
  EXPECT_EQ(png.height(), L.height);
  EXPECT_GT(L.plot.x1 - L.plot.x0, 500);
  EXPECT_GT(L.plot.y1 - L.plot.y0, 300);
  // Linear axes: the same loss step is the same pixel step everywhere.
  EXPECT_NEAR(L.y.to_pixel(3) - L.y.to_pixel(4), L.y.to_pixel(8) - L.y.to_pixel(9), 1e-9);
  EXPECT_NEAR(L.x.to_pixel(11) - L.x.to_pixel(10), L.x.to_pixel(71) - L.x.to_pixel(70), 1e-9);
  // Decreasing curves leave the top right free: the legend goes there.
  EXPECT_GT(L.legend.x0, (L.plot.x0 + L.plot.x1) / 2);
  EXPECT_LT(L.legend.y1, (L.plot.y0 + L.plot.y1) / 2);

  // The train curve's pixels sit where the loss maps and move down the image as the loss falls.
  const auto curve_y = [&](const std::vector<double>& v, const int (&color)[3], int e) {
    const int x = static_cast<int>(L.x.to_pixel(e));
    const double want = L.y.to_pixel(v[static_cast<std::size_t>(e - 1)]);
    double found = -1, dist = 1e9;
    for (int y = L.plot.y0; y < L.plot.y1; ++y)
      if (is(png.at(x, y), color, 40) && std::abs(y + 0.5 - want) < dist) {
        dist = std::abs(y + 0.5 - want);
        found = y + 0.5;
      }
    EXPECT_LE(dist, 2.5) << "epoch " << e << ": curve not at its loss";
    return found;
  };
  double previous = -1;
  for (const int e : {2, 10, 20, 35, 50, 65, 79}) {
    const double y = curve_y(train, kTrain, e);
    EXPECT_GT(y, previous) << "epoch " << e;
    previous = y;
  }
  EXPECT_LT(curve_y(train, kTrain, 2), L.plot.y0 + 0.25 * (L.plot.y1 - L.plot.y0));
  EXPECT_GT(curve_y(train, kTrain, 79), L.plot.y0 + 0.8 * (L.plot.y1 - L.plot.y0));
  // Validation: down to the best epoch (the curve moves down the image), up after it.
  EXPECT_LT(curve_y(val, kValidation, 5), curve_y(val, kValidation, best - 3));
  EXPECT_LT(curve_y(val, kValidation, 79), curve_y(val, kValidation, best + 3) - 5);

  // The best epoch: a dashed vertical line and a ring on the validation curve.
  const double bx = L.x.to_pixel(best), by = L.y.to_pixel(val[static_cast<std::size_t>(best - 1)]);
  int green = 0;
  for (int y = L.plot.y0; y < L.plot.y1; ++y) green += is(png.at(static_cast<int>(bx), y), kBest, 40) ? 1 : 0;
  EXPECT_GT(green, (L.plot.y1 - L.plot.y0) / 4);  // dashed: about half of the column
  EXPECT_TRUE(is(png.at(static_cast<int>(std::round(bx)) + 4, static_cast<int>(by)), kBest, 40));
  EXPECT_FALSE(is(png.at(static_cast<int>(bx) + 30, L.plot.y0 + (L.plot.y1 - L.plot.y0) / 2), kBest, 60));
}

TEST(LossPlot, EdgeCases) {
  test::TempDir tmp;
  EXPECT_THROW(write_loss_plot(tmp.file("x.png"), {}, {}, 0), std::invalid_argument);
  EXPECT_THROW(write_loss_plot(tmp.file("x.png"), {1, 2}, {1, 2}, 3), std::invalid_argument);
  // One epoch, constant and missing values, no validation: still a picture.
  EXPECT_NO_THROW(write_loss_plot(tmp.file("one.png"), {1.5}, {1.7}, 1));
  EXPECT_NO_THROW(write_loss_plot(tmp.file("flat.png"), {2, 2, 2}, {}, 0));
  EXPECT_NO_THROW(write_loss_plot(tmp.file("nan.png"), {3, std::nan(""), 1}, {-1, -2, std::nan("")}, 2));
  EXPECT_TRUE(Png(tmp.file("nan.png")).ok());
}

// ---- plot_file and `fsbi plot` -------------------------------------------------------------------

class PlotFiles : public testing::Test {
 protected:
  // A model file (tiny training run), a posterior-only file, and a run-like file with both.
  static void SetUpTestSuite() {
    dir = new test::TempDir();
    auto sim = open_simulator("gaussian_linear", {{"dim", "2"}}, {test::bundled_plugin_dir()});
    auto prior = parse_prior(*sim->default_prior(), sim->parameter_dim());
    SimulationSettings ss;
    ss.num_simulations = 600;
    ss.seed = test::announce_seed("simulation", 41);
    ss.progress = ProgressMode::quiet;
    run_simulations(*sim, *prior, "test", ss, file("sims.h5"));
    TrainingSettings ts;
    ts.seed = test::announce_seed("training", 42);
    ts.progress = ProgressMode::quiet;
    ts.max_epochs = 6;
    ts.hidden = {16, 16};
    train_score_model(file("sims.h5"), ts, file("model.h5"));

    PosteriorSamples ps;
    ps.parameter_names = {"theta_1", "theta_2"};
    ps.chains = 4;
    ps.draws = 1000;
    const Eigen::MatrixXd s = gaussian_2d(4000, 0.3, -0.2, 0.1, 0.2, -0.4, 43);
    for (Eigen::Index i = 0; i < s.rows(); ++i)
      for (Eigen::Index j = 0; j < 2; ++j) ps.theta.push_back(s(i, j));
    ps.data_names = {"x_1", "x_2"};
    ps.observations = Table::Zero(1, 2);
    ps.attributes = {{"sampler", "nuts"}};
    {
      h5::File f = h5::File::create(file("posterior_only.h5"));
      write_posterior(f, ps);
      f.close();
    }
    std::filesystem::copy_file(file("model.h5"), file("run.h5"));
    {
      h5::File f = h5::File::open(file("run.h5"), h5::Access::read_write);
      write_posterior(f, ps);
      f.close();
    }
    std::ofstream(file("truth.csv")) << "theta_1,theta_2\n0.35,-0.1\n";
    std::ofstream(file("truth2.csv")) << "theta_1,theta_2\n0.35,-0.1\n0.3,0.0\n";
    std::ofstream(file("truth3.csv")) << "0.35,-0.1,7\n";
    h5::File::create(file("empty.h5")).close();
  }
  static void TearDownTestSuite() { delete dir; }
  static std::string file(const std::string& name) { return dir->file(name); }
  static test::TempDir* dir;
};
test::TempDir* PlotFiles::dir = nullptr;

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

TEST_F(PlotFiles, RunFileGivesBothPlots) {
  PlotFileOptions o;
  o.truth = file("truth.csv");
  const auto w = plot_file(file("run.h5"), o);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].path, file("run_corner.png"));
  EXPECT_THAT(w[0].description, HasSubstr("4000 posterior samples of 2 parameters"));
  EXPECT_EQ(w[1].path, file("run_loss.png"));
  const ModelInfo info = ScoreModel::load(file("model.h5")).info();
  EXPECT_THAT(w[1].description, HasSubstr(std::to_string(info.train_loss.size()) + " epochs"));
  const Png corner(w[0].path), loss(w[1].path);
  ASSERT_TRUE(corner.ok());
  ASSERT_TRUE(loss.ok());
  EXPECT_GT(corner.width(), 500);
  EXPECT_EQ(loss.width(), 820);
}

TEST_F(PlotFiles, ModelOnlyAndPosteriorOnly) {
  PlotFileOptions o;
  o.output_prefix = file("m");
  auto w = plot_file(file("model.h5"), o);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].path, file("m_loss.png"));
  EXPECT_TRUE(Png(w[0].path).ok());

  o.output_prefix.clear();
  o.bins = 25;
  w = plot_file(file("posterior_only.h5"), o);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].path, file("posterior_only_corner.png"));
  EXPECT_TRUE(Png(w[0].path).ok());
  EXPECT_FALSE(std::filesystem::exists(file("posterior_only_loss.png")));
}

TEST_F(PlotFiles, Errors) {
  EXPECT_THAT(error_of([] { plot_file(file("missing.h5"), {}); }), HasSubstr("missing.h5: no such file"));
  EXPECT_EQ(error_of([] { plot_file(file("empty.h5"), {}); }),
            file("empty.h5") + ": nothing to plot: no posterior samples and no /model");
  EXPECT_THAT(error_of([] { plot_file(file("truth.csv"), {}); }), HasSubstr("not an HDF5 file"));
  PlotFileOptions o;
  o.truth = file("truth.csv");
  EXPECT_THAT(error_of([&] { plot_file(file("model.h5"), o); }), HasSubstr("holds no posterior samples"));
  o.truth = file("truth2.csv");
  EXPECT_THAT(error_of([&] { plot_file(file("posterior_only.h5"), o); }),
              HasSubstr("holds 2 rows; --truth takes one row"));
  o.truth = file("truth3.csv");
  EXPECT_THAT(error_of([&] { plot_file(file("posterior_only.h5"), o); }), HasSubstr("truth3.csv"));
  o.truth = file("no_truth.csv");
  EXPECT_THAT(error_of([&] { plot_file(file("posterior_only.h5"), o); }), HasSubstr("no_truth.csv"));
}

TEST_F(PlotFiles, CommandLine) {
  auto r = test::run_fsbi({"plot", file("run.h5"), "--truth", file("truth.csv"), "--output-prefix", file("cli")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("wrote " + file("cli_corner.png")));
  EXPECT_THAT(r.out, HasSubstr("wrote " + file("cli_loss.png")));
  EXPECT_TRUE(Png(file("cli_corner.png")).ok());
  EXPECT_TRUE(Png(file("cli_loss.png")).ok());

  r = test::run_fsbi({"plot", file("missing.h5")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("fsbi plot: error: " + file("missing.h5") + ": no such file"));
  r = test::run_fsbi({"plot", file("empty.h5")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(file("empty.h5") + ": nothing to plot: no posterior samples and no /model"));
  r = test::run_fsbi({"plot", file("run.h5"), "--bins", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--bins must be 1"));
  r = test::run_fsbi({"plot"});
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_fsbi({"plot", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: fsbi plot FILE"));
}

}  // namespace
}  // namespace fsbi::plot
