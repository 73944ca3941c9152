#include "plot/ticks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace fsbi::plot {

namespace {

// Number of multiples of `step` in [lo, hi].
double tick_count(double lo, double hi, double step) {
  return std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9) + 1;
}

// True when step = 2.5 × 10^k (needs one decimal more than 10^k).
bool is_two_and_half(double step) {
  const double m = step / std::pow(10.0, std::floor(std::log10(step)));
  return std::abs(m - 2.5) < 1e-6;
}

// "1.5e-05" → "1.5e-5", "2e+06" → "2e6".
std::string tidy_exponent(const std::string& s) {
  const auto e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
  const char* sign = "";  // not a std::string: GCC 12 warns falsely on assigning "-" to one (PR 105329)
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    if (exponent[0] == '-') sign = "-";
    exponent.erase(0, 1);
  }
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return mantissa + "e" + sign + exponent;
}

}  // namespace

std::string with_minus_signs(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 4);
  for (const char c : s) {
    if (c == '-')
      out += "\u2212";
    else
      out += c;
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, int max_ticks, double min_step) {
  Ticks t;
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(hi > lo) || max_ticks < 1) return t;
  const double raw = std::max((hi - lo) / max_ticks, min_step);
  double decade = std::pow(10.0, std::floor(std::log10(raw)));
  constexpr std::array<double, 5> mantissas{1, 2, 2.5, 5, 10};
  double step = 0;
  for (int attempt = 0; attempt < 4 && step == 0; ++attempt, decade *= 10) {
    for (const double m : mantissas) {
      const double s = m * decade;
      if (s < min_step * (1 - 1e-12)) continue;
      if (tick_count(lo, hi, s) <= max_ticks) {
        step = s;
        break;
      }
    }
  }
  if (step == 0) return t;
  t.step = step;
  const auto first = static_cast<long long>(std::ceil(lo / step - 1e-9));
  const auto last = static_cast<long long>(std::floor(hi / step + 1e-9));
  for (long long k = first; k <= last; ++k) t.values.push_back(k == 0 ? 0.0 : static_cast<double>(k) * step);
  return t;
}

std::vector<std::string> tick_labels(const Ticks& ticks) {
  std::vector<std::string> labels;
  if (ticks.values.empty()) return labels;
  const double step = ticks.step > 0 ? ticks.step : 1.0;
  const int step_exp = static_cast<int>(std::floor(std::log10(step)));
  const int extra = is_two_and_half(step) ? 1 : 0;
  double biggest = 0;
  for (const double v : ticks.values) biggest = std::max(biggest, std::abs(v));
  const bool scientific = step < 1e-3 || biggest >= 1e5;
  int precision = 0;
  if (scientific) {
    // Mantissa digits: enough to tell neighbouring ticks apart.
    for (const double v : ticks.values)
      if (v != 0) precision = std::max(precision, static_cast<int>(std::floor(std::log10(std::abs(v)))) - step_exp + extra);
    precision = std::clamp(precision, 0, 6);
  } else {
    precision = std::max(0, -step_exp + extra);
  }
  for (const double v : ticks.values) {
    std::string s = scientific ? (v == 0 ? std::string("0") : tidy_exponent(fmt::format("{:.{}e}", v, precision)))
                               : fmt::format("{:.{}f}", v, precision);
    labels.push_back(with_minus_signs(s));
  }
  return labels;
}

std::string format_number(double value, int significant) {
  if (!std::isfinite(value)) return fmt::format("{}", value);
  if (value == 0) return "0";
  const int e = static_cast<int>(std::floor(std::log10(std::abs(value))));
  if (e >= 5 || e < -3) return with_minus_signs(tidy_exponent(fmt::format("{:.{}e}", value, std::max(0, significant - 1))));
  const int decimals = std::max(0, significant - 1 - e);
  return with_minus_signs(fmt::format("{:.{}f}", value, decimals));
}

}  // namespace fsbi::plot
