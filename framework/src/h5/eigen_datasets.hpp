// Eigen vectors and matrices as float64 datasets of a group (fsbi's C-order layout,
// docs/file-format.md): the one place the result writers (`/mle`, `/fisher`, `/recentring`) turn
// Eigen values into datasets.
#pragma once

#include "h5/h5.hpp"

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <span>

namespace fsbi::h5 {

// A 1-D dataset of v's values.
inline void write_vector(Group& g, const char* name, const Eigen::VectorXd& v) {
  g.create_dataset(name, DType::f64, {static_cast<std::uint64_t>(v.size())})
      .write_all(std::span<const double>(v.data(), static_cast<std::size_t>(v.size())));
}

// A matrix as rows × cols (C order).
inline void write_matrix(Group& g, const char* name, const Eigen::MatrixXd& m) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = m;
  g.create_dataset(name, DType::f64, {static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())})
      .write_all(std::span<const double>(r.data(), static_cast<std::size_t>(r.size())));
}

}  // namespace fsbi::h5
