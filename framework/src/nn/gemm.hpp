// C (+)= op(A)·op(B) through Eigen's own GEMM kernel, but with packing buffers that persist in
// the caller's workspace.
//
// Why: for dynamic sizes, every Eigen product expression allocates its packing buffers (kc·nc
// floats, ~1.5 MB for a 128 × 2816 tangent block) on the heap and frees them on return. Above
// glibc's mmap threshold each call then page-faults the buffer in again; profiling the training
// step showed ~25 % of the time in the kernel for that alone (docs/score-network.md,
// "Performance"). Eigen's internal GEMM driver takes the buffers from a level3_blocking object,
// so we hand it one whose buffers live as long as the thread's workspace.
//
// This uses Eigen's internal (undocumented, but unchanged through the 3.4 series) API; any other
// Eigen version falls back to the ordinary product expression.
#pragma once

#include <Eigen/Core>

#include <type_traits>

namespace fsbi::nn {

// A matrix operand: its data, storage (column-major with outer stride ld), and whether it
// enters the product transposed. rows/cols are of op(X).
template <class T>
struct GemmOperand {
  const T* data;
  Eigen::Index rows, cols, ld;
  bool transposed;
};

// Plain operand (a Matrix, Map or column block: contiguous columns).
template <class M>
GemmOperand<typename M::Scalar> op_n(const M& m) {
  return {m.data(), m.rows(), m.cols(), m.outerStride(), false};
}
// Transposed operand.
template <class M>
GemmOperand<typename M::Scalar> op_t(const M& m) {
  return {m.data(), m.cols(), m.rows(), m.outerStride(), true};
}

#if EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 90)
#define FSBI_NN_EIGEN_INTERNAL_GEMM 1

template <class T>
class GemmBuffers : public Eigen::internal::level3_blocking<T, T> {
 public:
  // Block sizes as Eigen's own product would choose them, buffers grown (never shrunk) to fit.
  void prepare(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth) {
    this->m_mc = rows;
    this->m_nc = cols;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Eigen::Index(1));
    const Eigen::Index a = this->m_mc * this->m_kc, b = this->m_kc * this->m_nc;
    if (a_.size() < a) a_.resize(a);
    if (b_.size() < b) b_.resize(b);
    this->m_blockA = a_.data();
    this->m_blockB = b_.data();
  }

 private:
  Eigen::Matrix<T, Eigen::Dynamic, 1> a_, b_;  // aligned to EIGEN_DEFAULT_ALIGN_BYTES
};

// C = op(A)·op(B) (accumulate = false) or C += op(A)·op(B). C: a column-major block with unit
// inner stride; must not alias A or B.
template <class T, class Dst>
void gemm(GemmBuffers<T>& buffers, Dst&& C, const GemmOperand<T>& A, const GemmOperand<T>& B,
          bool accumulate) {
  using Eigen::ColMajor;
  using Eigen::RowMajor;
  using Eigen::Index;
  eigen_assert(C.rows() == A.rows && C.cols() == B.cols && A.cols == B.rows);
  if (!accumulate) C.setZero();
  const Index m = A.rows, n = B.cols, k = A.cols;
  if (m == 0 || n == 0 || k == 0) return;
  buffers.prepare(m, n, k);
  T* c = C.data();
  const Index ldc = C.outerStride();
  auto run = [&](auto lhs_order, auto rhs_order) {
    Eigen::internal::general_matrix_matrix_product<Index, T, decltype(lhs_order)::value, false, T,
                                                   decltype(rhs_order)::value, false, ColMajor, 1>::
        run(m, n, k, A.data, A.ld, B.data, B.ld, c, 1, ldc, T(1), buffers, nullptr);
  };
  using CM = std::integral_constant<int, ColMajor>;
  using RM = std::integral_constant<int, RowMajor>;
  if (!A.transposed && !B.transposed) run(CM{}, CM{});
  else if (A.transposed && !B.transposed) run(RM{}, CM{});
  else if (!A.transposed && B.transposed) run(CM{}, RM{});
  else run(RM{}, RM{});
}

#else

template <class T>
class GemmBuffers {};

template <class T, class Dst>
void gemm(GemmBuffers<T>&, Dst&& C, const GemmOperand<T>& A, const GemmOperand<T>& B, bool accumulate) {
  using Eigen::Index;
  using CMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, 0, Eigen::OuterStride<>>;
  const CMap a(A.data, A.transposed ? A.cols : A.rows, A.transposed ? A.rows : A.cols, Eigen::OuterStride<>(A.ld));
  const CMap b(B.data, B.transposed ? B.cols : B.rows, B.transposed ? B.rows : B.cols, Eigen::OuterStride<>(B.ld));
  if (!accumulate) C.setZero();
  if (A.transposed && B.transposed) C.noalias() += a.transpose() * b.transpose();
  else if (A.transposed) C.noalias() += a.transpose() * b;
  else if (B.transposed) C.noalias() += a * b.transpose();
  else C.noalias() += a * b;
}

#endif

}  // namespace fsbi::nn
