// Axis ticks at "nice" values (1, 2, 2.5 or 5 × 10^k) and their labels, for fsbi's plots.
#pragma once

#include <string>
#include <vector>

namespace fsbi::plot {

struct Ticks {
  double step = 0;             // distance between neighbouring ticks
  std::vector<double> values;  // ascending, all inside [lo, hi]
};

// The ticks inside [lo, hi] with the smallest nice step that gives at most `max_ticks` of them
// (max_ticks >= 1) and is at least `min_step` (e.g. 1 for epochs). Values are integer multiples
// of the step (exact zero included). An empty or non-finite range gives no ticks.
Ticks nice_ticks(double lo, double hi, int max_ticks, double min_step = 0);

// Labels with as many decimals as the step needs ("0.25", "0.5", "1", "−2.5": a real minus sign
// U+2212), all in the same notation: scientific ("1.5e−5", "2e6") when the step is below 1e-3
// or a tick's magnitude reaches 1e5.
std::vector<std::string> tick_labels(const Ticks& ticks);

// A value with `significant` significant digits in plain notation when that is short, with a
// real minus sign: for legends and titles ("0.1234", "−12.5", "3.2e−6").
std::string format_number(double value, int significant);

// Replaces ASCII '-' signs by U+2212 (the exponent's too).
std::string with_minus_signs(const std::string& s);

}  // namespace fsbi::plot
