#include "plot/corner_plot.hpp"

#include "plot/canvas.hpp"
#include "plot/ticks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace fsbi::plot {

namespace {

constexpr Rgb kInk = rgb(0x222222);
constexpr Rgb kFrame = rgb(0x4d4d4d);
constexpr Rgb kHistLine = rgb(0x08519c);
constexpr Rgb kHistFill = rgb(0xc6dbef);
constexpr Rgb kContour = rgb(0x08306b);
constexpr Rgb kDots = rgb(0x2b5f97);
constexpr Rgb kQuantile = rgb(0x6e6e6e);
constexpr Rgb kTruth = rgb(0xd62728);

// Below this many samples a 2-D panel is a scatter plot; above it a smoothed density.
constexpr Eigen::Index kScatterMax = 500;
// Probability mass inside the contours: the 1σ and 2σ regions of a 2-D Gaussian.
constexpr std::array<double, 2> kContourMass{0.393469340287366, 0.864664716763387};

// Sizes in px by number of parameters: bigger grids get smaller panels and fonts.
struct Style {
  int panel, gap;
  double tick_font, label_font, title_font, tick_len;
};

Style style_for(int d) {
  if (d <= 4) return {250, 8, 12, 15, 12.5, 4};
  if (d <= 6) return {230, 8, 11.5, 14, 11.5, 4};
  if (d <= 8) return {200, 7, 11, 13, 11, 3.5};
  return {175, 6, 10.5, 12.5, 10.5, 3};
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return sorted.back();
  const double f = pos - static_cast<double>(i);
  return sorted[i] * (1 - f) + sorted[i + 1] * f;
}

struct Marginal {
  std::vector<double> sorted;  // the finite values
  double lo = 0, hi = 1;       // shown range
  Ticks ticks;
  std::vector<std::string> labels;
  std::vector<double> label_widths;
};

// The shown range: all samples (but not far-out stragglers: beyond 4× the central 99.8 %, the
// range is that central part), the true value, and 4 % padding on both sides.
void choose_range(Marginal& m, const double* truth) {
  double lo = 0, hi = 0;
  bool have = false;
  if (!m.sorted.empty()) {
    lo = m.sorted.front();
    hi = m.sorted.back();
    const double qlo = quantile(m.sorted, 0.001), qhi = quantile(m.sorted, 0.999);
    if (qhi > qlo && hi - lo > 4 * (qhi - qlo)) {
      lo = qlo;
      hi = qhi;
    }
    have = true;
  }
  if (truth && std::isfinite(*truth)) {
    lo = have ? std::min(lo, *truth) : *truth;
    hi = have ? std::max(hi, *truth) : *truth;
    have = true;
  }
  if (!have) {
    lo = 0;
    hi = 1;
  }
  if (!(hi - lo > 1e-12 * std::max(std::abs(lo), std::abs(hi)))) {
    const double half = lo == 0 ? 0.5 : 0.05 * std::abs(lo);
    lo -= half;
    hi += half;
  }
  const double pad = 0.04 * (hi - lo);
  m.lo = lo - pad;
  m.hi = hi + pad;
}

// The densest ticks whose labels fit side by side in `width` px.
void choose_ticks(Marginal& m, Canvas& c, double font, double width) {
  for (int max_ticks = 6; max_ticks >= 2; --max_ticks) {
    m.ticks = nice_ticks(m.lo, m.hi, max_ticks);
    m.labels = tick_labels(m.ticks);
    m.label_widths.clear();
    double widest = 0;
    for (const auto& l : m.labels) {
      m.label_widths.push_back(c.text_width(l, font));
      widest = std::max(widest, m.label_widths.back());
    }
    if (static_cast<double>(m.labels.size()) * (widest + 1.2 * font) <= width) return;
  }
}

// Sequential white → dark blue colour map (after ColorBrewer "Blues"), t in [0, 1].
Rgb blues(double t) {
  constexpr std::array<Rgb, 5> stops{rgb(0xffffff), rgb(0xc6dbef), rgb(0x6baed6), rgb(0x2171b5), rgb(0x08306b)};
  t = std::clamp(t, 0.0, 1.0) * static_cast<double>(stops.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), stops.size() - 2);
  const double f = t - static_cast<double>(i);
  const Rgb a = stops[i], b = stops[i + 1];
  return {a.r + f * (b.r - a.r), a.g + f * (b.g - a.g), a.b + f * (b.b - a.b)};
}

// 1-D Gaussian smoothing of `v` (nx × ny, x fastest) along x (stride 1) or y (stride nx).
void blur(std::vector<double>& v, int nx, int ny, double sigma, bool along_x) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<double> kernel(static_cast<std::size_t>(2 * radius + 1));
  for (int k = -radius; k <= radius; ++k)
    kernel[static_cast<std::size_t>(k + radius)] = std::exp(-0.5 * k * k / (sigma * sigma));
  std::vector<double> out(v.size(), 0.0);
  const int n_line = along_x ? nx : ny, lines = along_x ? ny : nx;
  for (int l = 0; l < lines; ++l)
    for (int i = 0; i < n_line; ++i) {
      double s = 0;
      for (int k = -radius; k <= radius; ++k) {
        const int j = i + k;
        if (j < 0 || j >= n_line) continue;
        const int idx = along_x ? l * nx + j : j * nx + l;
        s += kernel[static_cast<std::size_t>(k + radius)] * v[static_cast<std::size_t>(idx)];
      }
      out[static_cast<std::size_t>(along_x ? l * nx + i : i * nx + l)] = s;
    }
  v.swap(out);
}

// A smoothed 2-D histogram on nb × nb cells over the shown ranges (cell (ix, iy), iy = 0 at the
// low end of the y parameter), and the density levels enclosing kContourMass of the samples.
struct Density {
  int nb = 0;
  std::vector<double> v;
  double vmax = 0;
  std::array<double, 2> levels{};
  double at(int ix, int iy) const {
    if (ix < 0 || iy < 0 || ix >= nb || iy >= nb) return 0.0;
    return v[static_cast<std::size_t>(iy * nb + ix)];
  }
  // Bilinear between cell centres (zero outside the grid); u, w in cell units from the low edge.
  double interpolate(double u, double w) const {
    const double a = u - 0.5, b = w - 0.5;
    const int i = static_cast<int>(std::floor(a)), j = static_cast<int>(std::floor(b));
    const double fa = a - i, fb = b - j;
    return (1 - fa) * (1 - fb) * at(i, j) + fa * (1 - fb) * at(i + 1, j) + (1 - fa) * fb * at(i, j + 1) +
           fa * fb * at(i + 1, j + 1);
  }
};

Density density_2d(const std::vector<double>& xs, const std::vector<double>& ys, const Marginal& mx,
                   const Marginal& my, int nb) {
  Density d;
  d.nb = nb;
  d.v.assign(static_cast<std::size_t>(nb * nb), 0.0);
  const double wx = (mx.hi - mx.lo) / nb, wy = (my.hi - my.lo) / nb;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const double u = (xs[k] - mx.lo) / wx, w = (ys[k] - my.lo) / wy;
    if (!(u >= 0 && u < nb && w >= 0 && w < nb)) continue;
    d.v[static_cast<std::size_t>(static_cast<int>(w) * nb + static_cast<int>(u))] += 1;
  }
  // Scott's rule for a 2-D kernel density estimate (h = sd · n^(-1/6)), in cells.
  const auto sd_cells = [&](const std::vector<double>& s, double width) {
    double mean = 0, ss = 0;
    for (const double x : s) mean += x;
    mean /= static_cast<double>(s.size());
    for (const double x : s) ss += (x - mean) * (x - mean);
    return std::sqrt(ss / static_cast<double>(s.size())) / width;
  };
  const double shrink = std::pow(static_cast<double>(xs.size()), -1.0 / 6.0);
  const double max_sigma = 1.5;  // multimodal samples have a large sd but narrow modes
  blur(d.v, nb, nb, std::clamp(sd_cells(xs, wx) * shrink, 0.7, max_sigma), true);
  blur(d.v, nb, nb, std::clamp(sd_cells(ys, wy) * shrink, 0.7, max_sigma), false);
  std::vector<double> sorted = d.v;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double total = 0;
  for (const double x : sorted) total += x;
  d.vmax = sorted.empty() ? 0 : sorted.front();
  for (std::size_t l = 0; l < kContourMass.size(); ++l) {
    double cum = 0;
    d.levels[l] = 0;
    for (const double x : sorted) {
      cum += x;
      if (cum >= kContourMass[l] * total) {
        d.levels[l] = x;
        break;
      }
    }
  }
  return d;
}

// Marching squares on the cell centres (with a ring of zeros around the grid, so contours close):
// line segments of {v = level}, appended to the current cairo path; `to_px` maps cell units to px.
template <class ToPx>
void contour_path(cairo_t* cr, const Density& d, double level, ToPx to_px) {
  if (!(level > 0)) return;
  // Grid point (i, j), i, j in [-1, nb], is the centre of cell (i, j).
  for (int j = -1; j < d.nb; ++j)
    for (int i = -1; i < d.nb; ++i) {
      const std::array<double, 4> v{d.at(i, j), d.at(i + 1, j), d.at(i + 1, j + 1), d.at(i, j + 1)};
      const std::array<std::array<double, 2>, 4> p{{{i + 0.5, j + 0.5}, {i + 1.5, j + 0.5}, {i + 1.5, j + 1.5},
                                                    {i + 0.5, j + 1.5}}};
      std::array<bool, 4> above{};
      int n_above = 0;
      for (int k = 0; k < 4; ++k) n_above += (above[static_cast<std::size_t>(k)] = v[static_cast<std::size_t>(k)] >= level);
      if (n_above == 0 || n_above == 4) continue;
      // Crossings on edges 0 (p0-p1), 1 (p1-p2), 2 (p2-p3), 3 (p3-p0).
      std::array<std::array<double, 2>, 4> cross{};
      std::array<bool, 4> has{};
      for (std::size_t e = 0; e < 4; ++e) {
        const std::size_t a = e, b = (e + 1) % 4;
        if (above[a] == above[b]) continue;
        const double t = (level - v[a]) / (v[b] - v[a]);
        cross[e] = {p[a][0] + t * (p[b][0] - p[a][0]), p[a][1] + t * (p[b][1] - p[a][1])};
        has[e] = true;
      }
      const auto seg = [&](std::size_t e0, std::size_t e1) {
        const auto [x0, y0] = to_px(cross[e0][0], cross[e0][1]);
        const auto [x1, y1] = to_px(cross[e1][0], cross[e1][1]);
        cairo_move_to(cr, x0, y0);
        cairo_line_to(cr, x1, y1);
      };
      if (n_above == 2 && above[0] == above[2]) {
        // Saddle: the centre value decides which corners the contour cuts off.
        const bool centre_above = (v[0] + v[1] + v[2] + v[3]) / 4 >= level;
        if (centre_above == above[0]) {
          seg(0, 1);  // cut off corner 1
          seg(2, 3);  // and corner 3
        } else {
          seg(3, 0);
          seg(1, 2);
        }
        continue;
      }
      std::array<std::size_t, 2> es{};
      std::size_t n = 0;
      for (std::size_t e = 0; e < 4; ++e)
        if (has[e] && n < 2) es[n++] = e;
      if (n == 2) seg(es[0], es[1]);
    }
}

// Number text for titles: value with the decimals its uncertainty needs (2 significant digits of
// the smaller error).
std::string fixed(double v, int decimals) { return with_minus_signs(fmt::format("{:.{}f}", v, decimals)); }

}  // namespace

Axis CornerLayout::x_axis(int col) const {
  const Box& b = panel(d - 1, col);
  return {lo[static_cast<std::size_t>(col)], hi[static_cast<std::size_t>(col)], static_cast<double>(b.x0),
          static_cast<double>(b.x1)};
}

Axis CornerLayout::y_axis(int row) const {
  const Box& b = panel(row, 0);
  return {lo[static_cast<std::size_t>(row)], hi[static_cast<std::size_t>(row)], static_cast<double>(b.y1),
          static_cast<double>(b.y0)};
}

CornerLayout write_corner_plot(const std::string& path, const Eigen::MatrixXd& samples,
                               const std::vector<std::string>& names, const CornerOptions& options) {
  const int d = static_cast<int>(samples.cols());
  if (d < 1) throw std::invalid_argument("corner plot: no parameters");
  if (names.size() != static_cast<std::size_t>(d))
    throw std::invalid_argument(fmt::format("corner plot: {} names for {} parameters", names.size(), d));
  if (!options.truth.empty() && options.truth.size() != static_cast<std::size_t>(d))
    throw std::invalid_argument(
        fmt::format("corner plot: {} true values for {} parameters", options.truth.size(), d));
  if (options.bins < 1 || options.bins > 1000)
    throw std::invalid_argument(fmt::format("corner plot: bins must be 1 … 1000, not {}", options.bins));
  const bool has_truth = !options.truth.empty();
  const Style st = style_for(d);
  const double P = st.panel, G = st.gap;
  const auto ud = static_cast<std::size_t>(d);

  // Marginals: finite values, ranges, ticks (measured with a scratch canvas).
  Canvas measure(1, 1);
  std::vector<Marginal> m(ud);
  for (int p = 0; p < d; ++p) {
    auto& mp = m[static_cast<std::size_t>(p)];
    for (Eigen::Index r = 0; r < samples.rows(); ++r)
      if (std::isfinite(samples(r, p))) mp.sorted.push_back(samples(r, p));
    std::sort(mp.sorted.begin(), mp.sorted.end());
    choose_range(mp, has_truth ? &options.truth[static_cast<std::size_t>(p)] : nullptr);
    choose_ticks(mp, measure, st.tick_font, P);
  }

  // Margins around the grid.
  const double tick_h = measure.ascent(st.tick_font) + measure.descent(st.tick_font);
  const double label_h = measure.ascent(st.label_font) + measure.descent(st.label_font);
  double ytick_w = 0;
  for (int p = 1; p < d; ++p)
    for (const double w : m[static_cast<std::size_t>(p)].label_widths) ytick_w = std::max(ytick_w, w);
  const double outer = 10;
  const int left = static_cast<int>(std::ceil(outer + (d > 1 ? label_h + 8 + ytick_w + 6 : 0)));
  const int top = static_cast<int>(std::ceil(outer + 2.3 * st.title_font + 6));
  const int bottom = static_cast<int>(std::ceil(st.tick_len + 5 + tick_h + 8 + label_h + outer));
  const auto& last = m.back();
  const double last_half = last.label_widths.empty() ? 0 : last.label_widths.back() / 2;
  const int right = static_cast<int>(std::ceil(std::max(outer + 4, last_half + 4)));

  CornerLayout L;
  L.d = d;
  L.panel_size = st.panel;
  L.width = left + d * st.panel + (d - 1) * st.gap + right;
  L.height = top + d * st.panel + (d - 1) * st.gap + bottom;
  L.panels.resize(ud * ud);
  for (int r = 0; r < d; ++r)
    for (int c = 0; c <= r; ++c) {
      Box& b = L.panels[static_cast<std::size_t>(r * d + c)];
      b.x0 = left + c * (st.panel + st.gap);
      b.y0 = top + r * (st.panel + st.gap);
      b.x1 = b.x0 + st.panel;
      b.y1 = b.y0 + st.panel;
    }
  for (const auto& mp : m) {
    L.lo.push_back(mp.lo);
    L.hi.push_back(mp.hi);
  }

  Canvas cv(L.width, L.height);
  cairo_t* cr = cv.cr();
  const auto clip_to = [&](const Box& b) {
    cairo_save(cr);
    cairo_rectangle(cr, b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
    cairo_clip(cr);
  };

  bool drew_contours = false;
  for (int r = 0; r < d; ++r)
    for (int c = 0; c <= r; ++c) {
      const Box& b = L.panel(r, c);
      const Axis ax = L.x_axis(c);
      const auto& mc = m[static_cast<std::size_t>(c)];
      clip_to(b);
      if (r == c) {
        // 1-D marginal: histogram (filled, step outline), quantiles, truth. Few samples get fewer
        // bins (Rice's rule, 2·n^(1/3), at least 10) so the outline is not mostly noise.
        const int nb = std::min(options.bins,
                                std::max(10, static_cast<int>(std::ceil(2 * std::cbrt(static_cast<double>(mc.sorted.size()))))));
        std::vector<double> counts(static_cast<std::size_t>(nb), 0.0);
        const double w = (mc.hi - mc.lo) / nb;
        for (const double x : mc.sorted) {
          const double u = (x - mc.lo) / w;
          if (u >= 0 && u < nb) counts[static_cast<std::size_t>(u)] += 1;
        }
        const double cmax = *std::max_element(counts.begin(), counts.end());
        const double ytop = b.y0 + 0.09 * P;  // the tallest bin reaches 91 % of the panel height
        const auto ypx = [&](double cnt) { return cmax > 0 ? b.y1 - cnt / cmax * (b.y1 - ytop) : double(b.y1); };
        cairo_move_to(cr, b.x0, b.y1 + 1);
        for (int k = 0; k < nb; ++k) {
          const double xa = ax.to_pixel(mc.lo + k * w), xb = ax.to_pixel(mc.lo + (k + 1) * w);
          const double y = ypx(counts[static_cast<std::size_t>(k)]);
          cairo_line_to(cr, xa, y);
          cairo_line_to(cr, xb, y);
        }
        cairo_line_to(cr, b.x1, b.y1 + 1);
        cairo_close_path(cr);
        cv.set_color(kHistFill);
        cairo_fill_preserve(cr);
        cv.set_color(kHistLine);
        cairo_set_line_width(cr, 1.6);
        cairo_stroke(cr);
        if (!mc.sorted.empty())
          for (const double q : {0.16, 0.5, 0.84}) {
            const double x = ax.to_pixel(quantile(mc.sorted, q));
            cv.line(x, b.y0, x, b.y1, kQuantile, 1.1, 4);
          }
        if (has_truth) {
          const double x = ax.to_pixel(options.truth[static_cast<std::size_t>(c)]);
          cv.line(x, b.y0, x, b.y1, kTruth, 2.0);
        }
      } else {
        // 2-D marginal of (parameter c on x, parameter r on y).
        const Axis ay = L.y_axis(r);
        const auto& mr = m[static_cast<std::size_t>(r)];
        std::vector<double> xs, ys;
        for (Eigen::Index k = 0; k < samples.rows(); ++k)
          if (std::isfinite(samples(k, c)) && std::isfinite(samples(k, r))) {
            xs.push_back(samples(k, c));
            ys.push_back(samples(k, r));
          }
        const auto n = static_cast<Eigen::Index>(xs.size());
        if (n > 0 && n <= kScatterMax) {
          for (std::size_t k = 0; k < xs.size(); ++k)
            cv.fill_circle(ax.to_pixel(xs[k]), ay.to_pixel(ys[k]), 1.8, kContour, 0.55);
        } else if (n > kScatterMax) {
          const int nb = options.bins;
          const Density den = density_2d(xs, ys, mc, mr, nb);
          // Shading: the density as an nb × nb image, scaled up with bilinear filtering.
          cairo_surface_t* img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, nb, nb);
          cairo_surface_flush(img);
          unsigned char* data = cairo_image_surface_get_data(img);
          const int stride = cairo_image_surface_get_stride(img);
          for (int iy = 0; iy < nb; ++iy)
            for (int ix = 0; ix < nb; ++ix) {
              const Rgb col = blues(den.vmax > 0 ? 0.9 * std::pow(den.at(ix, iy) / den.vmax, 0.6) : 0);
              auto* px = reinterpret_cast<std::uint32_t*>(data + (nb - 1 - iy) * stride) + ix;
              *px = (static_cast<std::uint32_t>(std::lround(col.r * 255)) << 16) |
                    (static_cast<std::uint32_t>(std::lround(col.g * 255)) << 8) |
                    static_cast<std::uint32_t>(std::lround(col.b * 255));
            }
          cairo_surface_mark_dirty(img);
          cairo_save(cr);
          cairo_translate(cr, b.x0, b.y0);
          cairo_scale(cr, (b.x1 - b.x0) / double(nb), (b.y1 - b.y0) / double(nb));
          cairo_set_source_surface(cr, img, 0, 0);
          cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
          cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
          cairo_rectangle(cr, 0, 0, nb, nb);
          cairo_fill(cr);
          cairo_restore(cr);
          cairo_surface_destroy(img);
          // Samples outside the outer contour as dots (an even subset of at most ~3000 of them).
          const double wx = (mc.hi - mc.lo) / nb, wy = (mr.hi - mr.lo) / nb;
          std::vector<std::size_t> outside;
          for (std::size_t k = 0; k < xs.size(); ++k)
            if (den.interpolate((xs[k] - mc.lo) / wx, (ys[k] - mr.lo) / wy) < den.levels[1]) outside.push_back(k);
          const std::size_t stride_dots = outside.size() / 3000 + 1;
          for (std::size_t k = 0; k < outside.size(); k += stride_dots)
            cv.fill_circle(ax.to_pixel(xs[outside[k]]), ay.to_pixel(ys[outside[k]]), 1.0, kDots, 0.55);
          // Contours.
          const auto to_px = [&](double u, double w) {
            return std::array<double, 2>{ax.to_pixel(mc.lo + u * wx), ay.to_pixel(mr.lo + w * wy)};
          };
          cairo_new_path(cr);
          for (const double level : den.levels) contour_path(cr, den, level, to_px);
          cv.set_color(kContour);
          cairo_set_line_width(cr, 1.3);
          cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
          cairo_stroke(cr);
          drew_contours = true;
        }
        if (has_truth) {
          const double tx = ax.to_pixel(options.truth[static_cast<std::size_t>(c)]);
          const double ty = ay.to_pixel(options.truth[static_cast<std::size_t>(r)]);
          cv.line(tx, b.y0, tx, b.y1, kTruth, 1.4);
          cv.line(b.x0, ty, b.x1, ty, kTruth, 1.4);
          cv.fill_rect(tx - 4, ty - 4, tx + 4, ty + 4, kTruth);
        }
      }
      cairo_restore(cr);  // clip

      // Frame and inward tick marks.
      cv.frame(b.x0, b.y0, b.x1, b.y1, kFrame);
      for (const double t : mc.ticks.values) {
        const double x = std::round(ax.to_pixel(t)) + 0.5;
        cv.line(x, b.y1, x, b.y1 - st.tick_len, kFrame, 1.0);
      }
      if (r != c) {
        const Axis ay = L.y_axis(r);
        for (const double t : m[static_cast<std::size_t>(r)].ticks.values) {
          const double y = std::round(ay.to_pixel(t)) + 0.5;
          cv.line(b.x0, y, b.x0 + st.tick_len, y, kFrame, 1.0);
        }
      }
    }

  // Tick labels and axis labels: x along the bottom row, y along the left column (rows ≥ 1).
  const double tick_asc = cv.ascent(st.tick_font);
  for (int c = 0; c < d; ++c) {
    const Box& b = L.panel(d - 1, c);
    const Axis ax = L.x_axis(c);
    const auto& mc = m[static_cast<std::size_t>(c)];
    const double min_x = c == 0 ? b.x0 - 4.0 : b.x0 - G / 2;
    const double max_x = c == d - 1 ? L.width - 2.0 : b.x1 + G / 2;
    for (std::size_t k = 0; k < mc.ticks.values.size(); ++k) {
      const double x = ax.to_pixel(mc.ticks.values[k]), w = mc.label_widths[k];
      if (x - w / 2 < min_x || x + w / 2 > max_x) continue;
      cv.text(x, b.y1 + st.tick_len + 3, mc.labels[k], st.tick_font, kInk, HAlign::center, VAlign::top);
    }
    const std::string name = cv.fit_text(names[static_cast<std::size_t>(c)], st.label_font, P + G);
    cv.text((b.x0 + b.x1) / 2.0, b.y1 + st.tick_len + 3 + tick_h + 7, name, st.label_font, kInk, HAlign::center,
            VAlign::top);
  }
  for (int r = 1; r < d; ++r) {
    const Box& b = L.panel(r, 0);
    const Axis ay = L.y_axis(r);
    const auto& mr = m[static_cast<std::size_t>(r)];
    for (std::size_t k = 0; k < mr.ticks.values.size(); ++k) {
      const double y = ay.to_pixel(mr.ticks.values[k]);
      if (y - tick_asc / 2 < b.y0 - G / 2 || y + tick_asc / 2 > b.y1 + G / 2) continue;
      cv.text(b.x0 - 5, y, mr.labels[k], st.tick_font, kInk, HAlign::right, VAlign::middle);
    }
    const std::string name = cv.fit_text(names[static_cast<std::size_t>(r)], st.label_font, P + G);
    cv.text(outer + label_h / 2, (b.y0 + b.y1) / 2.0, name, st.label_font, kInk, HAlign::center, VAlign::middle,
            std::numbers::pi / 2);
  }

  // Titles over the diagonal: name = median, with the distances to the 84 % and 16 % quantiles as
  // super- and subscript.
  const double small = 0.82 * st.title_font;
  for (int p = 0; p < d; ++p) {
    const auto& mp = m[static_cast<std::size_t>(p)];
    if (mp.sorted.empty()) continue;
    const Box& b = L.panel(p, p);
    const double q16 = quantile(mp.sorted, 0.16), q50 = quantile(mp.sorted, 0.5), q84 = quantile(mp.sorted, 0.84);
    const double err = std::min(q84 - q50, q50 - q16);
    std::string value, up, down;
    if (err > 0 && std::abs(q50) < 1e5 && err >= 1e-4) {
      const int decimals = std::max(0, 1 - static_cast<int>(std::floor(std::log10(err))));
      value = fixed(q50, decimals);
      up = fmt::format("+{}", fixed(q84 - q50, decimals));
      down = fixed(-(q50 - q16), decimals);
    } else {
      value = format_number(q50, 3);
      up = fmt::format("+{}", format_number(q84 - q50, 2));
      down = fmt::format("\u2212{}", format_number(q50 - q16, 2));
    }
    std::string head = names[static_cast<std::size_t>(p)] + " = " + value;
    const double script_w = std::max(cv.text_width(up, small), cv.text_width(down, small));
    if (cv.text_width(head, st.title_font) + 2 + script_w > P + G) head = value;
    const double head_w = cv.text_width(head, st.title_font);
    const double x0 = (b.x0 + b.x1) / 2.0 - (head_w + 2 + script_w) / 2;
    const double base = b.y0 - 6 - 0.35 * st.title_font;  // baseline of the main text
    cv.text(x0, base, head, st.title_font, kInk, HAlign::left, VAlign::baseline);
    cv.text(x0 + head_w + 2, base - 0.42 * st.title_font, up, small, kInk, HAlign::left, VAlign::baseline);
    cv.text(x0 + head_w + 2, base + 0.33 * st.title_font, down, small, kInk, HAlign::left, VAlign::baseline);
  }

  // Legend and notes in the empty upper triangle.
  if (d >= 2) {
    // The block starts right of the first column (of the middle one in big grids).
    const Box& tr = L.panel(d - 1, d >= 4 ? d / 2 : 1);
    const double x = tr.x0 + 6, max_w = L.width - right - x;
    const double font = d >= 4 ? 13.0 : 0.92 * st.title_font, line = 1.6 * font;
    double y = top;
    const auto entry = [&](const std::string& text, auto&& swatch) {
      swatch(x, y + line / 2);
      cv.text(x + 30, y + line / 2, cv.fit_text(text, font, max_w - 30), font, kInk, HAlign::left, VAlign::middle);
      y += line;
    };
    if (has_truth)
      entry("true parameters", [&](double sx, double sy) {
        cv.line(sx, sy, sx + 22, sy, kTruth, 2.0);
        cv.fill_rect(sx + 7, sy - 4, sx + 15, sy + 4, kTruth);
      });
    entry("quantiles 16, 50, 84 %",
          [&](double sx, double sy) { cv.line(sx, sy, sx + 22, sy, kQuantile, 1.1, 4); });
    if (drew_contours)
      entry("HPD regions 39, 86 %",
            [&](double sx, double sy) { cv.line(sx, sy, sx + 22, sy, kContour, 1.3); });
    for (const auto& note : options.notes) {
      cv.text(x, y + line / 2, cv.fit_text(note, font, max_w), font, kInk, HAlign::left, VAlign::middle);
      y += line;
    }
  }

  cv.write_png(path);
  return L;
}

}  // namespace fsbi::plot
