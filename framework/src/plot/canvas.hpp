// A thin RAII layer over a cairo image surface for fsbi's plots: antialiased lines, shapes and
// text in pixel coordinates (origin top left, y down), written out as PNG. Internal to the plot
// sources; the public plot headers do not expose cairo.
#pragma once

#include <cairo.h>

#include <string>

namespace fsbi::plot {

struct Rgb {
  double r = 0, g = 0, b = 0;
};

// From 0xRRGGBB.
constexpr Rgb rgb(unsigned hex) {
  return {static_cast<double>((hex >> 16) & 0xff) / 255.0, static_cast<double>((hex >> 8) & 0xff) / 255.0,
          static_cast<double>(hex & 0xff) / 255.0};
}

enum class HAlign { left, center, right };
enum class VAlign { top, middle, baseline, bottom };

class Canvas {
 public:
  // A width × height image filled with white.
  Canvas(int width, int height);
  ~Canvas();
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  cairo_t* cr() { return cr_; }
  int width() const { return width_; }
  int height() const { return height_; }

  void set_color(Rgb c, double alpha = 1.0);
  // A straight line; `dash` > 0 draws it dashed (dash length = gap = `dash` px).
  void line(double x0, double y0, double x1, double y1, Rgb c, double width, double dash = 0);
  // A crisp 1-px rectangle outline on the pixel grid around [x0, x1] × [y0, y1] (integers).
  void frame(int x0, int y0, int x1, int y1, Rgb c);
  void fill_rect(double x0, double y0, double x1, double y1, Rgb c, double alpha = 1.0);
  void fill_circle(double x, double y, double radius, Rgb c, double alpha = 1.0);

  // Text in the sans-serif font at `size` px: width of a string, the font's ascent/descent, and
  // drawing anchored at (x, y) by the alignments, rotated by `angle` radians (counter-clockwise
  // positive, about the anchor).
  double text_width(const std::string& s, double size, bool bold = false);
  double ascent(double size);
  double descent(double size);
  void text(double x, double y, const std::string& s, double size, Rgb c, HAlign h, VAlign v, double angle = 0,
            bool bold = false);
  // `s` shortened with "…" until it is at most `max_width` px wide.
  std::string fit_text(const std::string& s, double size, double max_width, bool bold = false);

  // Writes the image as PNG. Throws std::runtime_error naming the path if it cannot be written.
  void write_png(const std::string& path);

 private:
  void set_font(double size, bool bold);
  int width_, height_;
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
};

}  // namespace fsbi::plot
