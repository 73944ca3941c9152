// Where a plot put things, in image pixels: returned by the plot writers so callers (and tests)
// can find panels and map data values to pixels.
#pragma once

namespace fsbi::plot {

// A panel's data area: x0 (left) ≤ x ≤ x1 (right), y0 (top) ≤ y ≤ y1 (bottom), in pixels.
struct Box {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  bool empty() const { return x1 <= x0 || y1 <= y0; }
  bool contains(double x, double y) const { return x >= x0 && x <= x1 && y >= y0 && y <= y1; }
};

// A linear data → pixel map: value lo at pixel p0, hi at p1 (p1 < p0 for a y axis).
struct Axis {
  double lo = 0, hi = 1;
  double p0 = 0, p1 = 1;
  double to_pixel(double v) const { return p0 + (v - lo) / (hi - lo) * (p1 - p0); }
  double to_value(double p) const { return lo + (p - p0) / (p1 - p0) * (hi - lo); }
};

}  // namespace fsbi::plot
