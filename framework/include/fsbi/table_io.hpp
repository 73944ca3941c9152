// Reading and writing numeric tables: CSV (optional header row, as in sbibm's files) and HDF5
// datasets. Used for observations, θ/x inputs and results a user hands to other tools.
#pragma once

#include <Eigen/Core>

#include <stdexcept>
#include <string>
#include <vector>

namespace fsbi {

using Table = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class TableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a table of `columns` columns (rows = samples). `source` is
//   FILE.csv                  comma-separated numbers; a first row that is not numeric is a header
//   FILE.h5:/group/dataset    a 1-D (one row) or 2-D dataset of an HDF5 file
//   FILE.h5                   the dataset `default_dataset` of an HDF5 file
// `what` names the content for messages ("theta", "observation"), and `expected` explains the
// column count ("simulator 'two_moons' produces 2"). Throws TableError: "obs.csv: row 3 has 3
// values, simulator 'two_moons' produces 2".
Table read_table(const std::string& source, Eigen::Index columns, const std::string& what,
                 const std::string& expected, const std::string& default_dataset = "");

// Writes a table as CSV with a header row (by extension .csv) or as an HDF5 dataset
// (FILE.h5 or FILE.h5:/path; default dataset `default_dataset`), atomically (temp + rename).
void write_table(const std::string& destination, const Table& table,
                 const std::vector<std::string>& column_names, const std::string& default_dataset);

}  // namespace fsbi
