// A small RAII layer over the HDF5 C API (after HighFive's design).
//
//  - Every call is checked; a failure throws fsbi::h5::Error whose message names the file/object,
//    the operation, and the HDF5 error stack folded into one line.
//  - Handles close in noexcept destructors; handles are move-only.
//  - Numbered API names only (H5Dopen2, H5Acreate2, ...): Debian maps unnumbered names to 1.8.
//  - HDF5's automatic error printing is switched off once per process; errors come back as
//    exceptions instead of text on stderr.
//  - Not thread-safe beyond what HDF5 itself guarantees: fsbi touches HDF5 from one thread.
//
// Files are created with the oldest format bounds that hold what fsbi writes (superblock v0:
// no "file is open" status flags, so a file whose writer was killed still opens), link and
// attribute creation order tracked and indexed (netCDF-4 readers need it), and no object
// timestamps (so two runs that write the same data write the same bytes).
//
// Files are opened with the "strong" close degree: File::close() (and ~File) closes every group,
// dataset and attribute still open in that file, so everything is on disk (in the OS) when
// close() returns. Groups and Datasets that outlive their File are dead: using them throws.
//
// Debian's HDF5 is built thread-safe, which keeps the error-printing switch per thread; every
// function here switches printing off for the calling thread before it calls HDF5.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fsbi::h5 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owning hid_t. close_fn is H5Fclose/H5Gclose/H5Dclose/H5Aclose/H5Sclose/H5Tclose/H5Pclose.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*close_fn)(hid_t)) : id_(id), close_(close_fn) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  ~Handle() { reset(); }
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Gives up ownership without closing (for closes that must report failure).
  hid_t release() noexcept { return std::exchange(id_, H5I_INVALID_HID); }
  void reset() noexcept {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

enum class DType { f64, f32, i64, i32, i8, u64 };

// Attribute helpers shared by files, groups and datasets (anything with an hid_t).
class Object {
 public:
  hid_t id() const { return h_.id(); }
  const std::string& path() const { return path_; }  // "file.h5:/simulations/theta" for messages

  bool has_attribute(std::string_view name) const;
  // Writing an attribute that exists replaces it (same type and shape or not).
  void set_attribute(std::string_view name, std::string_view value);  // variable-length UTF-8
  void set_attribute(std::string_view name, const char* value) { set_attribute(name, std::string_view(value)); }
  void set_attribute(std::string_view name, double value);
  void set_attribute(std::string_view name, std::int64_t value);
  void set_attribute(std::string_view name, std::uint64_t value);
  void set_attribute(std::string_view name, std::int32_t value);
  void set_attribute(std::string_view name, std::span<const double> values);
  void set_attribute(std::string_view name, std::span<const std::int64_t> values);
  void set_attribute(std::string_view name, const std::vector<std::string>& values);  // vlen strings
  // Readers convert between numeric types where the value is exactly representable; a missing
  // attribute or an impossible conversion throws Error naming the object and attribute.
  std::string attribute_string(std::string_view name) const;
  double attribute_double(std::string_view name) const;
  std::int64_t attribute_int(std::string_view name) const;
  std::uint64_t attribute_uint(std::string_view name) const;
  std::vector<double> attribute_doubles(std::string_view name) const;
  std::vector<std::int64_t> attribute_ints(std::string_view name) const;
  std::vector<std::string> attribute_strings(std::string_view name) const;
  std::vector<std::string> attribute_names() const;
  // A scalar fixed-length ASCII string of exactly value.size() bytes (NUL-terminated padding),
  // the way netCDF-C writes `_NCProperties`: netCDF-C reads that attribute as fixed-length text
  // and misreads a variable-length one. Replaces an existing attribute like set_attribute.
  void set_fixed_string_attribute(std::string_view name, std::string_view value);

 protected:
  Object() = default;
  Object(Handle h, std::string path) : h_(std::move(h)), path_(std::move(path)) {}
  Handle h_;
  std::string path_;
};

struct DatasetOptions {
  // Chunked with an unlimited first dimension when chunk_rows > 0; contiguous otherwise.
  std::uint64_t chunk_rows = 0;
  // Allocate all storage (and the chunk index) at creation, never write fill values. A dataset
  // created like this changes no file metadata when written within its extent: writes are raw
  // data only, so a process killed mid-run leaves every earlier write and all metadata intact.
  // The protocol (pinned by tests/framework/test_h5.cpp's kill -9 test): create every dataset,
  // File::flush() once, then per block write_rows + Dataset::flush(), then write and flush a
  // progress counter (itself allocate_early). Each ingredient matters: without File::flush the
  // object headers are not on disk, without Dataset::flush rows sit in the chunk cache, and with
  // late allocation (or set_extent_rows without File::flush) the chunk index is not on disk.
  bool allocate_early = false;
  // Size of the raw-data chunk cache in bytes (per dataset); 0 = HDF5's default.
  std::size_t chunk_cache_bytes = 0;
  int deflate_level = 0;  // 0 = no compression (fsbi's default: see docs/file-format.md)
};

class Dataset : public Object {
 public:
  Dataset() = default;
  Dataset(Handle h, std::string path) : Object(std::move(h), std::move(path)) {}

  std::vector<std::uint64_t> shape() const;
  DType dtype() const;  // of the stored data; throws for types fsbi does not use

  // Row-block I/O on a 1-D or 2-D dataset: rows [row0, row0 + n) of width cols (1 for 1-D).
  // `data` is row-major. Writing beyond the current extent throws (call set_extent first).
  void write_rows(std::uint64_t row0, std::uint64_t n, std::span<const double> data);
  void write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int64_t> data);
  void write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int32_t> data);
  void write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int8_t> data);
  void write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::uint64_t> data);
  void read_rows(std::uint64_t row0, std::uint64_t n, std::span<double> out) const;
  void read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int64_t> out) const;
  void read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int32_t> out) const;
  void read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int8_t> out) const;
  void read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::uint64_t> out) const;
  // Whole dataset, converted to the requested type by HDF5 (row-major).
  std::vector<double> read_all_double() const;
  std::vector<std::int64_t> read_all_int() const;
  std::vector<std::string> read_all_strings() const;  // 1-D variable- or fixed-length strings
  // Fixed-length string rows (width bytes each, NUL-padded) for failure messages. A longer string
  // is cut to the width at a UTF-8 character boundary.
  void write_string_rows(std::uint64_t row0, std::span<const std::string> rows);

  // Changes the first dimension (chunked datasets only); shrinking discards rows. This changes
  // file metadata: call File::flush() afterwards before relying on crash consistency again.
  void set_extent_rows(std::uint64_t rows);
  // Writes this dataset's cached raw data to the file (H5Dflush). With an allocate_early dataset
  // written within its extent, everything written before flush() survives a kill of the process.
  void flush();

  // Whole-dataset write for any rank (C order, data.size() must equal the number of elements);
  // HDF5 converts to the stored type.
  void write_all(std::span<const double> data);
  void write_all(std::span<const float> data);
  void write_all(std::span<const std::int64_t> data);
  void write_all(std::span<const std::int32_t> data);
  void write_all(std::span<const std::int8_t> data);

  // ---- Dimension scales (HDF5 high-level library, H5DS), what netCDF-4 calls dimensions ----
  // Makes this dataset a dimension scale named `dimension_name` (H5DSset_scale: attributes CLASS
  // and NAME). A scale cannot be attached to other scales.
  void make_dimension_scale(std::string_view dimension_name);
  bool is_dimension_scale() const;  // H5DSis_scale
  // Attaches `scale` (a dimension scale in the same file) to axis `axis` of this dataset
  // (H5DSattach_scale: DIMENSION_LIST here, REFERENCE_LIST on the scale).
  void attach_scale(const Dataset& scale, unsigned axis);
  // In-file paths ("/posterior/chain") of the scales attached to `axis`, in attachment order;
  // empty when none is attached. Throws for an axis the dataset does not have.
  std::vector<std::string> attached_scales(unsigned axis) const;
};

class Group : public Object {
 public:
  Group() = default;
  Group(Handle h, std::string path, std::string file_name)
      : Object(std::move(h), std::move(path)), file_name_(std::move(file_name)) {}

  bool exists(std::string_view name) const;  // a link of that name (may be a/b/c)
  Group create_group(std::string_view name);  // creation order tracked and indexed
  Group open_group(std::string_view name) const;  // throws Error "FILE: no group /a/b" if missing
  // Shape: {rows, cols} (2-D) or {rows} (1-D). The first dimension of a chunked dataset is
  // unlimited.
  Dataset create_dataset(std::string_view name, DType type, std::vector<std::uint64_t> shape,
                         const DatasetOptions& options = {});
  // Fixed-length string dataset of `rows` entries of `width` bytes.
  Dataset create_string_dataset(std::string_view name, std::uint64_t rows, std::size_t width,
                                const DatasetOptions& options = {});
  // 1-D variable-length UTF-8 strings.
  Dataset create_string_dataset(std::string_view name, const std::vector<std::string>& values);
  // Throws Error naming file and path ("FILE: no dataset /a/b"). chunk_cache_bytes as in
  // DatasetOptions (0 = HDF5's default), for a run that resumes writing.
  Dataset open_dataset(std::string_view name, std::size_t chunk_cache_bytes = 0) const;
  std::vector<std::string> children() const;  // link names in creation order
  // Whether `name` exists and is a group / a dataset (false if missing or of another kind).
  bool is_group(std::string_view name) const;
  bool is_dataset(std::string_view name) const;
  // Contiguous dataset of any rank >= 1 (e.g. chains x draws x parameters), attribute creation
  // order tracked and indexed like every dataset here. Write it with Dataset::write_all.
  Dataset create_array(std::string_view name, DType type, const std::vector<std::uint64_t>& shape);
  const std::string& file_name() const { return file_name_; }

 private:
  std::string file_name_;
};

enum class Access { read_only, read_write };

class File : public Group {
 public:
  // Creates (truncating) a file.
  static File create(const std::string& filename);
  // Opening read_write uses the same format bounds as create, so a file in a newer format (e.g.
  // h5py with libver="latest": superblock v3) opens read-only only; read_only opens any file.
  // Opens an existing file. A missing path, a directory, or a file that is not HDF5 throws Error
  // with a one-line message naming the path ("x.h5: not an HDF5 file").
  static File open(const std::string& filename, Access access = Access::read_only);

  const std::string& filename() const { return file_name(); }
  void flush();  // H5Fflush(H5F_SCOPE_LOCAL)
  // Explicit close that throws on failure (the destructor never throws). Closes every object
  // still open in the file first (strong close degree). A second close() does nothing.
  void close();

 private:
  using Group::Group;
};

// Turns off HDF5's automatic error printing for the calling thread (idempotent; thread-safe
// HDF5 keeps this setting per thread). Every function in this layer calls it itself.
void silence_hdf5_errors();

// The library version, "1.10.8".
std::string hdf5_version();

}  // namespace fsbi::h5
