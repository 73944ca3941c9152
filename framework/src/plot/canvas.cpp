#include "plot/canvas.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace fsbi::plot {

namespace {

// UTF-8 aware: drops the last code point.
void pop_code_point(std::string& s) {
  while (!s.empty()) {
    const auto c = static_cast<unsigned char>(s.back());
    s.pop_back();
    if ((c & 0xC0) != 0x80) break;
  }
}

cairo_status_t write_to_file(void* closure, const unsigned char* data, unsigned int length) {
  return std::fwrite(data, 1, length, static_cast<std::FILE*>(closure)) == length ? CAIRO_STATUS_SUCCESS
                                                                                  : CAIRO_STATUS_WRITE_ERROR;
}

}  // namespace

Canvas::Canvas(int width, int height) : width_(width), height_(height) {
  if (width <= 0 || height <= 0 || width > 32767 || height > 32767)
    throw std::invalid_argument(fmt::format("plot: image size {} × {} px is out of range", width, height));
  surface_ = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  cr_ = cairo_create(surface_);
  if (cairo_status(cr_) != CAIRO_STATUS_SUCCESS) {
    const std::string why = cairo_status_to_string(cairo_status(cr_));
    cairo_destroy(cr_);
    cairo_surface_destroy(surface_);
    throw std::runtime_error("plot: cannot create a " + std::to_string(width) + " × " + std::to_string(height) +
                             " px image: " + why);
  }
  cairo_set_source_rgb(cr_, 1, 1, 1);
  cairo_paint(cr_);
  cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
}

Canvas::~Canvas() {
  cairo_destroy(cr_);
  cairo_surface_destroy(surface_);
}

void Canvas::set_color(Rgb c, double alpha) { cairo_set_source_rgba(cr_, c.r, c.g, c.b, alpha); }

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, double width, double dash) {
  cairo_save(cr_);
  set_color(c);
  cairo_set_line_width(cr_, width);
  cairo_set_line_cap(cr_, dash > 0 ? CAIRO_LINE_CAP_BUTT : CAIRO_LINE_CAP_ROUND);
  if (dash > 0) cairo_set_dash(cr_, &dash, 1, 0);
  cairo_move_to(cr_, x0, y0);
  cairo_line_to(cr_, x1, y1);
  cairo_stroke(cr_);
  cairo_restore(cr_);
}

void Canvas::frame(int x0, int y0, int x1, int y1, Rgb c) {
  cairo_save(cr_);
  set_color(c);
  cairo_set_line_width(cr_, 1.0);
  cairo_rectangle(cr_, x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1);
  cairo_stroke(cr_);
  cairo_restore(cr_);
}

void Canvas::fill_rect(double x0, double y0, double x1, double y1, Rgb c, double alpha) {
  set_color(c, alpha);
  cairo_rectangle(cr_, x0, y0, x1 - x0, y1 - y0);
  cairo_fill(cr_);
}

void Canvas::fill_circle(double x, double y, double radius, Rgb c, double alpha) {
  set_color(c, alpha);
  cairo_new_sub_path(cr_);
  cairo_arc(cr_, x, y, radius, 0, 2 * std::numbers::pi);
  cairo_fill(cr_);
}

void Canvas::set_font(double size, bool bold) {
  cairo_select_font_face(cr_, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr_, size);
}

double Canvas::text_width(const std::string& s, double size, bool bold) {
  set_font(size, bold);
  cairo_text_extents_t e;
  cairo_text_extents(cr_, s.c_str(), &e);
  return e.x_advance;
}

double Canvas::ascent(double size) {
  set_font(size, false);
  cairo_font_extents_t e;
  cairo_font_extents(cr_, &e);
  return e.ascent;
}

double Canvas::descent(double size) {
  set_font(size, false);
  cairo_font_extents_t e;
  cairo_font_extents(cr_, &e);
  return e.descent;
}

void Canvas::text(double x, double y, const std::string& s, double size, Rgb c, HAlign h, VAlign v, double angle,
                  bool bold) {
  if (s.empty()) return;
  set_font(size, bold);
  cairo_text_extents_t te;
  cairo_text_extents(cr_, s.c_str(), &te);
  cairo_font_extents_t fe;
  cairo_font_extents(cr_, &fe);
  double dx = 0, dy = 0;
  if (h == HAlign::center) dx = -te.x_advance / 2;
  if (h == HAlign::right) dx = -te.x_advance;
  if (v == VAlign::top) dy = fe.ascent;
  if (v == VAlign::middle) dy = (fe.ascent - fe.descent) / 2;
  if (v == VAlign::bottom) dy = -fe.descent;
  cairo_save(cr_);
  set_color(c);
  cairo_translate(cr_, x, y);
  cairo_rotate(cr_, -angle);
  cairo_move_to(cr_, dx, dy);
  cairo_show_text(cr_, s.c_str());
  cairo_restore(cr_);
}

std::string Canvas::fit_text(const std::string& s, double size, double max_width, bool bold) {
  if (text_width(s, size, bold) <= max_width) return s;
  std::string t = s;
  while (!t.empty()) {
    pop_code_point(t);
    if (text_width(t + "\u2026", size, bold) <= max_width) return t + "\u2026";
  }
  return "";
}

void Canvas::write_png(const std::string& path) {
  cairo_surface_flush(surface_);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot write the image: {}", path, std::strerror(errno)));
  const cairo_status_t st = cairo_surface_write_to_png_stream(surface_, write_to_file, f);
  const bool closed = std::fclose(f) == 0;
  if (st != CAIRO_STATUS_SUCCESS || !closed) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    throw std::runtime_error(fmt::format("{}: cannot write the image: {}", path,
                                         st != CAIRO_STATUS_SUCCESS ? cairo_status_to_string(st) : "close failed"));
  }
}

}  // namespace fsbi::plot
