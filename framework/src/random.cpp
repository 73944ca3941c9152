#include "fsbi/random.hpp"

#include <cmath>
#include <numbers>

namespace fsbi {

double CounterRng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Two raw words per pair, always: the stream position after n normals depends only on n.
  const double u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(a);
  has_spare_ = true;
  return r * std::cos(a);
}

}  // namespace fsbi
