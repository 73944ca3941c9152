#include "plot/loss_plot.hpp"

#include "plot/canvas.hpp"
#include "plot/ticks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace fsbi::plot {

namespace {

constexpr Rgb kInk = rgb(0x222222);
constexpr Rgb kFrame = rgb(0x4d4d4d);
constexpr Rgb kGrid = rgb(0xe6e6e6);
constexpr Rgb kTrain = rgb(0x1f77b4);
constexpr Rgb kValidation = rgb(0xff7f0e);
constexpr Rgb kBest = rgb(0x2ca02c);

constexpr int kWidth = 820, kHeight = 500;
constexpr double kTickFont = 12, kLabelFont = 14, kTitleFont = 15, kLegendFont = 12.5;

}  // namespace

LossLayout write_loss_plot(const std::string& path, const std::vector<double>& train,
                           const std::vector<double>& validation, int best_epoch, const std::string& title) {
  const int epochs = static_cast<int>(std::max(train.size(), validation.size()));
  if (epochs == 0) throw std::invalid_argument("loss plot: no epochs");
  if (best_epoch < 0 || best_epoch > epochs)
    throw std::invalid_argument(fmt::format("loss plot: best epoch {} is not in 1 … {}", best_epoch, epochs));
  const bool best_has_point = best_epoch > 0 && static_cast<std::size_t>(best_epoch) <= validation.size() &&
                              std::isfinite(validation[static_cast<std::size_t>(best_epoch - 1)]);

  // Ranges: epochs 1 … n with 2 % padding, all finite losses with 6 % padding.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* series : {&train, &validation})
    for (const double v : *series)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!std::isfinite(lo)) {
    lo = 0;
    hi = 1;
  }
  if (!(hi - lo > 1e-12 * std::max(std::abs(lo), std::abs(hi)))) {
    const double half = lo == 0 ? 0.5 : 0.05 * std::abs(lo);
    lo -= half;
    hi += half;
  }
  const double ypad = 0.06 * (hi - lo);
  const double x_lo = epochs == 1 ? 0.5 : 1 - 0.02 * (epochs - 1), x_hi = epochs == 1 ? 1.5 : epochs + 0.02 * (epochs - 1);

  Canvas cv(kWidth, kHeight);
  const Ticks yt = nice_ticks(lo - ypad, hi + ypad, 7);
  const auto ylabels = tick_labels(yt);
  double ytick_w = 0;
  for (const auto& l : ylabels) ytick_w = std::max(ytick_w, cv.text_width(l, kTickFont));
  const double label_h = cv.ascent(kLabelFont) + cv.descent(kLabelFont);
  const double tick_h = cv.ascent(kTickFont) + cv.descent(kTickFont);

  LossLayout L;
  L.width = kWidth;
  L.height = kHeight;
  L.plot.x0 = static_cast<int>(std::ceil(14 + label_h + 10 + ytick_w + 8));
  L.plot.x1 = kWidth - 24;
  L.plot.y0 = static_cast<int>(std::ceil(14 + cv.ascent(kTitleFont) + cv.descent(kTitleFont) + 12));
  L.plot.y1 = static_cast<int>(std::floor(kHeight - (14 + label_h + 8 + tick_h + 8)));
  L.x = {x_lo, x_hi, static_cast<double>(L.plot.x0), static_cast<double>(L.plot.x1)};
  L.y = {lo - ypad, hi + ypad, static_cast<double>(L.plot.y1), static_cast<double>(L.plot.y0)};
  const Box& b = L.plot;
  cairo_t* cr = cv.cr();

  // Grid, frame, ticks and their labels.
  const Ticks xt = nice_ticks(x_lo, x_hi, std::max(2, (b.x1 - b.x0) / 90), 1.0);
  const auto xlabels = tick_labels(xt);
  for (std::size_t k = 0; k < xt.values.size(); ++k) {
    const double x = std::round(L.x.to_pixel(xt.values[k])) + 0.5;
    cv.line(x, b.y0, x, b.y1, kGrid, 1.0);
    cv.line(x, b.y1, x, b.y1 + 5, kFrame, 1.0);
    cv.text(x, b.y1 + 8, xlabels[k], kTickFont, kInk, HAlign::center, VAlign::top);
  }
  for (std::size_t k = 0; k < yt.values.size(); ++k) {
    const double y = std::round(L.y.to_pixel(yt.values[k])) + 0.5;
    cv.line(b.x0, y, b.x1, y, kGrid, 1.0);
    cv.line(b.x0 - 5, y, b.x0, y, kFrame, 1.0);
    cv.text(b.x0 - 8, y, ylabels[k], kTickFont, kInk, HAlign::right, VAlign::middle);
  }
  cv.frame(b.x0, b.y0, b.x1, b.y1, kFrame);
  cv.text((b.x0 + b.x1) / 2.0, kHeight - 14.0, "epoch", kLabelFont, kInk, HAlign::center, VAlign::bottom);
  cv.text(14 + label_h / 2, (b.y0 + b.y1) / 2.0, "loss", kLabelFont, kInk, HAlign::center, VAlign::middle,
          std::numbers::pi / 2);
  if (!title.empty())
    cv.text((b.x0 + b.x1) / 2.0, 14, cv.fit_text(title, kTitleFont, kWidth - 28, true), kTitleFont, kInk,
            HAlign::center, VAlign::top, 0, true);

  // Curves, clipped to the data area.
  cairo_save(cr);
  cairo_rectangle(cr, b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0);
  cairo_clip(cr);
  if (best_epoch > 0) {
    const double x = L.x.to_pixel(best_epoch);
    cv.line(x, b.y0, x, b.y1, kBest, 1.5, 5);
  }
  const auto curve = [&](const std::vector<double>& v, Rgb c) {
    bool pen = false;
    for (std::size_t k = 0; k < v.size(); ++k) {
      if (!std::isfinite(v[k])) {
        pen = false;
        continue;
      }
      const double x = L.x.to_pixel(static_cast<double>(k + 1)), y = L.y.to_pixel(v[k]);
      if (pen)
        cairo_line_to(cr, x, y);
      else
        cairo_move_to(cr, x, y);
      pen = true;
    }
    cv.set_color(c);
    cairo_set_line_width(cr, 2.0);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
    if (v.size() <= 40)
      for (std::size_t k = 0; k < v.size(); ++k)
        if (std::isfinite(v[k])) cv.fill_circle(L.x.to_pixel(static_cast<double>(k + 1)), L.y.to_pixel(v[k]), 3, c);
  };
  curve(train, kTrain);
  curve(validation, kValidation);
  if (best_has_point) {
    const double x = L.x.to_pixel(best_epoch), y = L.y.to_pixel(validation[static_cast<std::size_t>(best_epoch - 1)]);
    cv.fill_circle(x, y, 6, kBest);
    cv.fill_circle(x, y, 3, rgb(0xffffff));
  }
  cairo_restore(cr);

  // Legend in the corner of the data area the curves leave most free.
  struct Entry {
    std::string text;
    Rgb color;
    double dash;
  };
  std::vector<Entry> entries{{"train", kTrain, 0}};
  if (!validation.empty()) entries.push_back({"validation", kValidation, 0});
  if (best_epoch > 0)
    entries.push_back({best_has_point ? fmt::format("best epoch {} (validation {})", best_epoch,
                                                    format_number(validation[static_cast<std::size_t>(best_epoch - 1)], 4))
                                      : fmt::format("best epoch {}", best_epoch),
                       kBest, 5});
  double text_w = 0;
  for (const auto& e : entries) text_w = std::max(text_w, cv.text_width(e.text, kLegendFont));
  const double line = 1.6 * kLegendFont;
  const int lw = static_cast<int>(std::ceil(10 + 30 + 8 + text_w + 10));
  const int lh = static_cast<int>(std::ceil(8 + line * static_cast<double>(entries.size()) + 6));
  std::array<Box, 4> corners{};
  corners[0] = {b.x1 - 10 - lw, b.y0 + 10, b.x1 - 10, b.y0 + 10 + lh};  // top right
  corners[1] = {b.x0 + 10, b.y0 + 10, b.x0 + 10 + lw, b.y0 + 10 + lh};  // top left
  corners[2] = {b.x1 - 10 - lw, b.y1 - 10 - lh, b.x1 - 10, b.y1 - 10};  // bottom right
  corners[3] = {b.x0 + 10, b.y1 - 10 - lh, b.x0 + 10 + lw, b.y1 - 10};  // bottom left
  std::size_t best_corner = 0, fewest = std::numeric_limits<std::size_t>::max();
  for (std::size_t k = 0; k < corners.size(); ++k) {
    std::size_t inside = 0;
    for (const auto* series : {&train, &validation}) {
      // Sample the curves densely so line segments crossing the box count too.
      const std::size_t n = series->size();
      for (std::size_t i = 0; i + 1 < n; ++i)
        for (int s = 0; s < 8; ++s) {
          const double f = s / 8.0;
          const double a = (*series)[i], c = (*series)[i + 1];
          if (!std::isfinite(a) || !std::isfinite(c)) continue;
          const double x = L.x.to_pixel(static_cast<double>(i + 1) + f), y = L.y.to_pixel(a + f * (c - a));
          if (x >= corners[k].x0 - 4 && x <= corners[k].x1 + 4 && y >= corners[k].y0 - 4 && y <= corners[k].y1 + 4)
            ++inside;
        }
      if (n == 1 && std::isfinite((*series)[0]) && corners[k].contains(L.x.to_pixel(1), L.y.to_pixel((*series)[0])))
        ++inside;
    }
    if (inside < fewest) {
      fewest = inside;
      best_corner = k;
    }
  }
  L.legend = corners[best_corner];
  const Box& lg = L.legend;
  cv.fill_rect(lg.x0, lg.y0, lg.x1, lg.y1, rgb(0xffffff));
  cv.frame(lg.x0, lg.y0, lg.x1, lg.y1, rgb(0xbdbdbd));
  double y = lg.y0 + 8 + line / 2;
  for (const auto& e : entries) {
    cv.line(lg.x0 + 10, y, lg.x0 + 40, y, e.color, 2.0, e.dash);
    cv.text(lg.x0 + 48, y, e.text, kLegendFont, kInk, HAlign::left, VAlign::middle);
    y += line;
  }

  cv.write_png(path);
  return L;
}

}  // namespace fsbi::plot
