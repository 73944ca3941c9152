#include "h5/h5.hpp"

#include "output_path.hpp"

#include <hdf5_hl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <new>
#include <system_error>

namespace fsbi::h5 {
namespace {

// ---- Errors -------------------------------------------------------------------------------------

// HDF5 reports a failure as a stack from the API function down to the innermost routine. The
// innermost entries say what actually went wrong ("component not found", "file signature not
// found", "errno = 2, ..."); the outer ones mostly repeat "unable to open file". Keep the most
// specific few, innermost first, without repeats.
constexpr std::size_t max_stack_messages = 3;

herr_t collect_error(unsigned /*n*/, const H5E_error2_t* e, void* data) noexcept {
  auto* messages = static_cast<std::vector<std::string>*>(data);
  try {
    std::string text = e->desc ? e->desc : "";
    if (text.empty() && e->min_num > 0) {
      std::array<char, 256> buf{};
      if (H5Eget_msg(e->min_num, nullptr, buf.data(), buf.size()) > 0) text = buf.data();
    }
    std::replace(text.begin(), text.end(), '\n', ' ');
    if (text.empty() || std::find(messages->begin(), messages->end(), text) != messages->end())
      return 0;
    messages->push_back(std::move(text));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Must run right after the failing call: the next HDF5 API call clears the stack.
std::string current_error_stack() {
  const hid_t stack = H5Eget_current_stack();
  if (stack < 0) return "no HDF5 error details";
  std::vector<std::string> messages;
  H5Ewalk2(stack, H5E_WALK_UPWARD, collect_error, &messages);
  H5Eclose_stack(stack);
  if (messages.empty()) return "no HDF5 error details";
  if (messages.size() > max_stack_messages) messages.resize(max_stack_messages);
  std::string out;
  for (const auto& m : messages) {
    if (!out.empty()) out += "; ";
    out += m;
  }
  return out;
}

[[noreturn]] void fail(const std::string& where, std::string_view operation) {
  std::string stack = current_error_stack();
  throw Error(where + ": " + std::string(operation) + " failed: " + stack);
}

hid_t check_id(hid_t id, const std::string& where, std::string_view operation) {
  if (id < 0) fail(where, operation);
  return id;
}

void check(herr_t rc, const std::string& where, std::string_view operation) {
  if (rc < 0) fail(where, operation);
}

bool check_tri(htri_t rc, const std::string& where, std::string_view operation) {
  if (rc < 0) fail(where, operation);
  return rc > 0;
}

void quiet() { silence_hdf5_errors(); }

// HDF5's own words for a file cut short ("truncated file: eof = 30000, sblock->base_addr = 0,
// stored_eof = 300289") name neither cause nor fix; a copy or download that stopped early is
// the usual cause.
std::string truncated_file_message(const std::string& filename, const std::string& stack) {
  std::string sizes;
  const auto eof = stack.find("eof = "), stored = stack.find("stored_eof = ");
  if (eof != std::string::npos && stored != std::string::npos) {
    const auto number = [&](std::size_t at) {
      std::string digits;
      while (at < stack.size() && std::isdigit(static_cast<unsigned char>(stack[at]))) digits += stack[at++];
      return digits;
    };
    const std::string have = number(eof + 6), want = number(stored + 13);
    if (!have.empty() && !want.empty()) sizes = " (" + have + " of its " + want + " bytes)";
  }
  return filename + ": truncated HDF5 file" + sizes +
         ": it was cut short while being copied or written; copy it again from its source, or "
         "rerun the fsbi command that wrote it";
}

std::string in_quotes(std::string_view name) {
  std::string s;  // (not "'" + std::string(name): GCC 12 warns falsely about that, -Wrestrict)
  s.reserve(name.size() + 2);
  s += '\'';
  s += name;
  s += '\'';
  return s;
}

// ---- Small owning helpers -----------------------------------------------------------------------

Handle plist(hid_t cls, const std::string& where) {
  return Handle(check_id(H5Pcreate(cls), where, "H5Pcreate"), H5Pclose);
}

Handle space_of_dataset(hid_t dset, const std::string& where) {
  return Handle(check_id(H5Dget_space(dset), where, "H5Dget_space"), H5Sclose);
}

Handle type_of_dataset(hid_t dset, const std::string& where) {
  return Handle(check_id(H5Dget_type(dset), where, "H5Dget_type"), H5Tclose);
}

Handle simple_space(const std::vector<hsize_t>& dims, const std::vector<hsize_t>* maxdims,
                    const std::string& where) {
  return Handle(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                                          maxdims ? maxdims->data() : nullptr),
                         where, "H5Screate_simple"),
                H5Sclose);
}

Handle scalar_space(const std::string& where) {
  return Handle(check_id(H5Screate(H5S_SCALAR), where, "H5Screate"), H5Sclose);
}

std::vector<hsize_t> extent(hid_t space, const std::string& where) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(where, "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0)
    fail(where, "H5Sget_simple_extent_dims");
  return dims;
}

std::size_t element_count(hid_t space, const std::string& where) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0) fail(where, "H5Sget_simple_extent_npoints");
  return static_cast<std::size_t>(n);
}

// Variable-length UTF-8 string type (memory and file).
Handle vlen_utf8(const std::string& where) {
  Handle t(check_id(H5Tcopy(H5T_C_S1), where, "H5Tcopy"), H5Tclose);
  check(H5Tset_size(t.id(), H5T_VARIABLE), where, "H5Tset_size");
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), where, "H5Tset_cset");
  return t;
}

// ---- Property lists used everywhere -------------------------------------------------------------

constexpr unsigned crt_order_flags = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;

// `for_writing`: format bounds for what this process writes. Superblock v0 (no status flags that
// mark a file as open, so a killed writer leaves an openable file), 1.8 features (creation-order
// indexed groups) where they are asked for. HDF5 1.10 refuses to open a file whose superblock is
// newer than the high bound even for reading, so reading leaves the bounds alone.
Handle file_access_plist(const std::string& where, bool for_writing) {
  Handle fapl = plist(H5P_FILE_ACCESS, where);
  if (for_writing)
    check(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_EARLIEST, H5F_LIBVER_V18), where,
          "H5Pset_libver_bounds");
  check(H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_STRONG), where, "H5Pset_fclose_degree");
  return fapl;
}

// Links and attribute names are UTF-8 (what h5py and netCDF-4 expect).
Handle link_create_plist(const std::string& where) {
  Handle lcpl = plist(H5P_LINK_CREATE, where);
  check(H5Pset_char_encoding(lcpl.id(), H5T_CSET_UTF8), where, "H5Pset_char_encoding");
  return lcpl;
}

Handle attribute_create_plist(const std::string& where) {
  Handle acpl = plist(H5P_ATTRIBUTE_CREATE, where);
  check(H5Pset_char_encoding(acpl.id(), H5T_CSET_UTF8), where, "H5Pset_char_encoding");
  return acpl;
}

// The creation property list of any object this layer hands out (file = its root group).
Handle create_plist_of(hid_t id, const std::string& where) {
  switch (H5Iget_type(id)) {
    case H5I_FILE: {
      // Not H5Fget_create_plist: creation order lives in the root group's header, and the file
      // creation property list of an opened (not created) file does not report it.
      Handle root(check_id(H5Gopen2(id, "/", H5P_DEFAULT), where, "opening the root group"),
                  H5Gclose);
      return Handle(check_id(H5Gget_create_plist(root.id()), where, "H5Gget_create_plist"),
                    H5Pclose);
    }
    case H5I_GROUP:
      return Handle(check_id(H5Gget_create_plist(id), where, "H5Gget_create_plist"), H5Pclose);
    case H5I_DATASET:
      return Handle(check_id(H5Dget_create_plist(id), where, "H5Dget_create_plist"), H5Pclose);
    default:
      throw Error(where + ": not an open file, group or dataset (closed with its file?)");
  }
}

// ---- Paths --------------------------------------------------------------------------------------

// In-file path of a group ("/" for the root) from its message path "file:/a/b".
std::string in_file_path(const Group& g) { return g.path().substr(g.file_name().size() + 1); }

std::string join(const std::string& base, std::string_view name) {
  if (!name.empty() && name.front() == '/') return std::string(name);
  std::string out = base == "/" ? std::string() : base;
  out += '/';
  out += name;
  return out;
}

// ---- Strings ------------------------------------------------------------------------------------

// Reads n strings (variable- or fixed-length) with `read(memtype, buffer)`.
template <class ReadFn>
std::vector<std::string> read_strings(hid_t file_type, hid_t space, std::size_t n,
                                      const std::string& where, std::string_view what,
                                      ReadFn read) {
  std::vector<std::string> out;
  if (n == 0) return out;
  out.reserve(n);
  Handle mem(check_id(H5Tget_native_type(file_type, H5T_DIR_ASCEND), where, "H5Tget_native_type"),
             H5Tclose);
  if (check_tri(H5Tis_variable_str(file_type), where, "H5Tis_variable_str")) {
    std::vector<char*> buf(n, nullptr);
    struct Reclaim {
      hid_t type, space;
      std::vector<char*>& buf;
      ~Reclaim() { H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf.data()); }  // H5Treclaim is 1.12+
    } reclaim{mem.id(), space, buf};
    check(read(mem.id(), buf.data()), where, std::string("reading ") + std::string(what));
    for (char* s : buf) out.emplace_back(s ? s : "");
    return out;
  }
  const std::size_t width = H5Tget_size(file_type);
  if (width == 0) fail(where, "H5Tget_size");
  const H5T_str_t pad = H5Tget_strpad(file_type);
  std::vector<char> buf(n * width);
  check(read(mem.id(), buf.data()), where, std::string("reading ") + std::string(what));
  for (std::size_t i = 0; i < n; ++i) {
    std::string s(buf.data() + i * width, width);
    if (pad == H5T_STR_NULLTERM) {
      s.resize(std::min(s.find('\0'), s.size()));
    } else {
      const char filler = pad == H5T_STR_SPACEPAD ? ' ' : '\0';
      s.erase(s.find_last_not_of(filler) + 1);
    }
    out.push_back(std::move(s));
  }
  return out;
}

// At most `width` bytes of s, not splitting a UTF-8 character.
std::string_view utf8_prefix(std::string_view s, std::size_t width) {
  if (s.size() <= width) return s;
  std::size_t end = width;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// ---- Numeric attributes -------------------------------------------------------------------------

// An attribute's values as read in their widest native type of the stored class.
struct NumericValues {
  enum class Kind { floating, signed_int, unsigned_int } kind = Kind::floating;
  std::vector<double> f;
  std::vector<std::int64_t> i;
  std::vector<std::uint64_t> u;
  std::size_t size() const {
    return kind == Kind::floating ? f.size() : kind == Kind::signed_int ? i.size() : u.size();
  }
};

constexpr double two_to_63 = 9223372036854775808.0;
constexpr double two_to_64 = 18446744073709551616.0;

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double to_double(const NumericValues& v, std::size_t k, const std::string& where) {
  switch (v.kind) {
    case NumericValues::Kind::floating:
      return v.f[k];
    case NumericValues::Kind::signed_int: {
      const double d = static_cast<double>(v.i[k]);
      if (d >= -two_to_63 && d < two_to_63 && static_cast<std::int64_t>(d) == v.i[k]) return d;
      throw Error(where + " = " + std::to_string(v.i[k]) +
                  " is not exactly representable as a double");
    }
    case NumericValues::Kind::unsigned_int: {
      const double d = static_cast<double>(v.u[k]);
      if (d < two_to_64 && static_cast<std::uint64_t>(d) == v.u[k]) return d;
      throw Error(where + " = " + std::to_string(v.u[k]) +
                  " is not exactly representable as a double");
    }
  }
  return 0;
}

std::int64_t to_int64(const NumericValues& v, std::size_t k, const std::string& where) {
  switch (v.kind) {
    case NumericValues::Kind::floating: {
      const double d = v.f[k];
      if (std::isfinite(d) && d == std::trunc(d) && d >= -two_to_63 && d < two_to_63)
        return static_cast<std::int64_t>(d);
      throw Error(where + " = " + format_double(d) + " is not an integer in the range of int64");
    }
    case NumericValues::Kind::signed_int:
      return v.i[k];
    case NumericValues::Kind::unsigned_int:
      if (v.u[k] <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return static_cast<std::int64_t>(v.u[k]);
      throw Error(where + " = " + std::to_string(v.u[k]) + " is out of the range of int64");
  }
  return 0;
}

std::uint64_t to_uint64(const NumericValues& v, std::size_t k, const std::string& where) {
  switch (v.kind) {
    case NumericValues::Kind::floating: {
      const double d = v.f[k];
      if (std::isfinite(d) && d == std::trunc(d) && d >= 0 && d < two_to_64)
        return static_cast<std::uint64_t>(d);
      throw Error(where + " = " + format_double(d) + " is not an integer in the range of uint64");
    }
    case NumericValues::Kind::signed_int:
      if (v.i[k] >= 0) return static_cast<std::uint64_t>(v.i[k]);
      throw Error(where + " = " + std::to_string(v.i[k]) +
                  " is negative, expected an unsigned integer");
    case NumericValues::Kind::unsigned_int:
      return v.u[k];
  }
  return 0;
}

std::string class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER:
      return "an integer";
    case H5T_FLOAT:
      return "a floating-point number";
    case H5T_STRING:
      return "a string";
    case H5T_ENUM:
      return "an enum";
    case H5T_COMPOUND:
      return "a compound";
    case H5T_ARRAY:
      return "an array";
    case H5T_VLEN:
      return "a variable-length sequence";
    case H5T_REFERENCE:
      return "a reference";
    case H5T_OPAQUE:
      return "opaque data";
    case H5T_BITFIELD:
      return "a bitfield";
    default:
      return "of an unknown type";
  }
}

// ---- Row I/O ------------------------------------------------------------------------------------

struct RowSelection {
  Handle file_space;
  Handle mem_space;
  bool empty = false;
};

// Selects rows [row0, row0 + n) of a 1-D or 2-D dataset and checks the buffer size.
RowSelection select_rows(hid_t dset, const std::string& where, std::string_view op,
                         std::uint64_t row0, std::uint64_t n, std::size_t buffer_size) {
  RowSelection sel;
  sel.file_space = space_of_dataset(dset, where);
  const auto dims = extent(sel.file_space.id(), where);
  if (dims.empty() || dims.size() > 2)
    throw Error(where + ": " + std::string(op) + ": dataset has " + std::to_string(dims.size()) +
                " dimensions, expected 1 or 2");
  const std::uint64_t cols = dims.size() == 2 ? dims[1] : 1;
  const std::string call =
      std::string(op) + "(row0 = " + std::to_string(row0) + ", n = " + std::to_string(n) + ")";
  if (cols != 0 && n > std::numeric_limits<std::uint64_t>::max() / cols)
    throw Error(where + ": " + call + ": row count overflows");
  if (buffer_size != n * cols)
    throw Error(where + ": " + call + ": expected " + std::to_string(n * cols) + " values (" +
                std::to_string(n) + " rows x " + std::to_string(cols) + " columns), got " +
                std::to_string(buffer_size));
  if (row0 > dims[0] || n > dims[0] - row0)
    throw Error(where + ": " + call + ": rows [" + std::to_string(row0) + ", " +
                std::to_string(row0 + n) + ") are outside the dataset's " +
                std::to_string(dims[0]) + " rows (set_extent_rows grows a chunked dataset)");
  if (n == 0 || cols == 0) {
    sel.empty = true;
    return sel;
  }
  const std::array<hsize_t, 2> start{row0, 0};
  const std::array<hsize_t, 2> count{n, cols};
  check(H5Sselect_hyperslab(sel.file_space.id(), H5S_SELECT_SET, start.data(), nullptr,
                            count.data(), nullptr),
        where, "H5Sselect_hyperslab");
  sel.mem_space = simple_space({static_cast<hsize_t>(n * cols)}, nullptr, where);
  return sel;
}

template <class T>
void write_rows_impl(hid_t dset, const std::string& where, hid_t mem_type, std::uint64_t row0,
                     std::uint64_t n, std::span<const T> data) {
  quiet();
  auto sel = select_rows(dset, where, "write_rows", row0, n, data.size());
  if (sel.empty) return;
  check(H5Dwrite(dset, mem_type, sel.mem_space.id(), sel.file_space.id(), H5P_DEFAULT, data.data()),
        where, "H5Dwrite of rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n) + ")");
}

template <class T>
void read_rows_impl(hid_t dset, const std::string& where, hid_t mem_type, std::uint64_t row0,
                    std::uint64_t n, std::span<T> out) {
  quiet();
  auto sel = select_rows(dset, where, "read_rows", row0, n, out.size());
  if (sel.empty) return;
  check(H5Dread(dset, mem_type, sel.mem_space.id(), sel.file_space.id(), H5P_DEFAULT, out.data()),
        where, "H5Dread of rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n) + ")");
}

template <class T>
std::vector<T> read_all_impl(hid_t dset, const std::string& where, hid_t mem_type) {
  quiet();
  Handle type = type_of_dataset(dset, where);
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw Error(where + ": dataset holds " + class_name(cls) + ", expected numbers");
  Handle space = space_of_dataset(dset, where);
  std::vector<T> out(element_count(space.id(), where));
  if (out.empty()) return out;
  check(H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), where, "H5Dread");
  return out;
}

// ---- Dataset creation ---------------------------------------------------------------------------

Handle file_type_of(DType t, const std::string& where) {
  hid_t base = H5I_INVALID_HID;
  switch (t) {
    case DType::f64:
      base = H5T_IEEE_F64LE;
      break;
    case DType::f32:
      base = H5T_IEEE_F32LE;
      break;
    case DType::i64:
      base = H5T_STD_I64LE;
      break;
    case DType::i32:
      base = H5T_STD_I32LE;
      break;
    case DType::i8:
      base = H5T_STD_I8LE;
      break;
    case DType::u64:
      base = H5T_STD_U64LE;
      break;
  }
  return Handle(check_id(H5Tcopy(base), where, "H5Tcopy"), H5Tclose);
}

// A prime number of hash slots, about ten per chunk that fits in the cache (HDF5's advice is
// 10-100 x; the cache here holds few chunks, so collisions are what matter).
std::size_t chunk_cache_slots(std::size_t cache_bytes, std::size_t chunk_bytes) {
  static constexpr std::array<std::size_t, 9> primes{521,   1031,  2053,  4099, 8209,
                                                     12421, 16411, 32771, 65537};
  const std::size_t chunks = chunk_bytes ? cache_bytes / chunk_bytes + 1 : 1;
  for (std::size_t p : primes)
    if (p >= 10 * chunks) return p;
  return primes.back();
}

Handle dataset_access_plist(std::size_t cache_bytes, std::size_t chunk_bytes,
                            const std::string& where) {
  Handle dapl = plist(H5P_DATASET_ACCESS, where);
  if (cache_bytes > 0) {
    // w0 = 1: fully read/written chunks are evicted first, so a row-wise writer never re-reads.
    check(H5Pset_chunk_cache(dapl.id(), chunk_cache_slots(cache_bytes, chunk_bytes), cache_bytes,
                             1.0),
          where, "H5Pset_chunk_cache");
  }
  return dapl;
}

}  // namespace

// ---- Free functions -----------------------------------------------------------------------------

void silence_hdf5_errors() {
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

// ---- Object: attributes -------------------------------------------------------------------------

namespace {

std::string attr_where(const std::string& path, std::string_view name) {
  return path + ": attribute " + in_quotes(name);
}

// Deletes `name` if present, then creates it with the given type and space.
Handle create_attribute(hid_t obj, const std::string& path, std::string_view name, hid_t type,
                        hid_t space) {
  quiet();
  const std::string n(name);
  const std::string op = "creating attribute " + in_quotes(name);
  if (check_tri(H5Aexists(obj, n.c_str()), path, op))
    check(H5Adelete(obj, n.c_str()), path, "deleting attribute " + in_quotes(name));
  Handle acpl = attribute_create_plist(path);
  return Handle(check_id(H5Acreate2(obj, n.c_str(), type, space, acpl.id(), H5P_DEFAULT), path, op),
                H5Aclose);
}

template <class T>
void write_numeric_attribute(hid_t obj, const std::string& path, std::string_view name,
                             hid_t file_type, hid_t mem_type, const T* values, std::size_t n,
                             bool scalar) {
  quiet();
  Handle space =
      scalar ? scalar_space(path) : simple_space({static_cast<hsize_t>(n)}, nullptr, path);
  Handle attr = create_attribute(obj, path, name, file_type, space.id());
  if (n > 0)
    check(H5Awrite(attr.id(), mem_type, values), path, "writing attribute " + in_quotes(name));
}

Handle open_attribute(hid_t obj, const std::string& path, std::string_view name) {
  quiet();
  const std::string n(name);
  if (!check_tri(H5Aexists(obj, n.c_str()), path, "looking up attribute " + in_quotes(name)))
    throw Error(path + ": no attribute " + in_quotes(name));
  return Handle(
      check_id(H5Aopen(obj, n.c_str(), H5P_DEFAULT), path, "opening attribute " + in_quotes(name)),
      H5Aclose);
}

NumericValues read_numeric_attribute(hid_t obj, const std::string& path, std::string_view name) {
  Handle attr = open_attribute(obj, path, name);
  const std::string where = attr_where(path, name);
  Handle type(check_id(H5Aget_type(attr.id()), where, "H5Aget_type"), H5Tclose);
  Handle space(check_id(H5Aget_space(attr.id()), where, "H5Aget_space"), H5Sclose);
  const std::size_t n = element_count(space.id(), where);
  NumericValues v;
  const H5T_class_t cls = H5Tget_class(type.id());
  hid_t mem = H5I_INVALID_HID;
  void* buf = nullptr;
  if (cls == H5T_FLOAT) {
    v.kind = NumericValues::Kind::floating;
    v.f.resize(n);
    mem = H5T_NATIVE_DOUBLE;
    buf = v.f.data();
  } else if (cls == H5T_INTEGER) {
    if (H5Tget_sign(type.id()) == H5T_SGN_NONE) {
      v.kind = NumericValues::Kind::unsigned_int;
      v.u.resize(n);
      mem = H5T_NATIVE_UINT64;
      buf = v.u.data();
    } else {
      v.kind = NumericValues::Kind::signed_int;
      v.i.resize(n);
      mem = H5T_NATIVE_INT64;
      buf = v.i.data();
    }
  } else {
    throw Error(where + " is " + class_name(cls) + ", expected a number");
  }
  if (n > 0) check(H5Aread(attr.id(), mem, buf), path, "reading attribute " + in_quotes(name));
  return v;
}

NumericValues read_numeric_scalar(hid_t obj, const std::string& path, std::string_view name) {
  NumericValues v = read_numeric_attribute(obj, path, name);
  if (v.size() != 1)
    throw Error(attr_where(path, name) + " has " + std::to_string(v.size()) +
                " values, expected one");
  return v;
}

}  // namespace

bool Object::has_attribute(std::string_view name) const {
  quiet();
  const std::string n(name);
  return check_tri(H5Aexists(id(), n.c_str()), path_, "looking up attribute " + in_quotes(name));
}

void Object::set_attribute(std::string_view name, std::string_view value) {
  quiet();
  Handle type = vlen_utf8(path_);
  Handle space = scalar_space(path_);
  Handle attr = create_attribute(id(), path_, name, type.id(), space.id());
  const std::string copy(value);  // NUL-terminated
  const char* ptr = copy.c_str();
  check(H5Awrite(attr.id(), type.id(), &ptr), path_, "writing attribute " + in_quotes(name));
}

void Object::set_fixed_string_attribute(std::string_view name, std::string_view value) {
  quiet();
  Handle type(check_id(H5Tcopy(H5T_C_S1), path_, "H5Tcopy"), H5Tclose);
  check(H5Tset_size(type.id(), std::max<std::size_t>(value.size(), 1)), path_, "H5Tset_size");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLTERM), path_, "H5Tset_strpad");
  check(H5Tset_cset(type.id(), H5T_CSET_ASCII), path_, "H5Tset_cset");
  Handle space = scalar_space(path_);
  Handle attr = create_attribute(id(), path_, name, type.id(), space.id());
  std::string buf(value);
  buf.resize(std::max<std::size_t>(value.size(), 1), '\0');
  check(H5Awrite(attr.id(), type.id(), buf.data()), path_, "writing attribute " + in_quotes(name));
}

void Object::set_attribute(std::string_view name, double value) {
  write_numeric_attribute(id(), path_, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, 1, true);
}
void Object::set_attribute(std::string_view name, std::int64_t value) {
  write_numeric_attribute(id(), path_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, 1, true);
}
void Object::set_attribute(std::string_view name, std::uint64_t value) {
  write_numeric_attribute(id(), path_, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value, 1, true);
}
void Object::set_attribute(std::string_view name, std::int32_t value) {
  write_numeric_attribute(id(), path_, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &value, 1, true);
}
void Object::set_attribute(std::string_view name, std::span<const double> values) {
  write_numeric_attribute(id(), path_, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(),
                          values.size(), false);
}
void Object::set_attribute(std::string_view name, std::span<const std::int64_t> values) {
  write_numeric_attribute(id(), path_, name, H5T_STD_I64LE, H5T_NATIVE_INT64, values.data(),
                          values.size(), false);
}

void Object::set_attribute(std::string_view name, const std::vector<std::string>& values) {
  quiet();
  Handle type = vlen_utf8(path_);
  Handle space = simple_space({static_cast<hsize_t>(values.size())}, nullptr, path_);
  Handle attr = create_attribute(id(), path_, name, type.id(), space.id());
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& s : values) ptrs.push_back(s.c_str());
  if (!ptrs.empty())
    check(H5Awrite(attr.id(), type.id(), ptrs.data()), path_,
          "writing attribute " + in_quotes(name));
}

std::string Object::attribute_string(std::string_view name) const {
  auto values = attribute_strings(name);
  if (values.size() != 1)
    throw Error(attr_where(path_, name) + " has " + std::to_string(values.size()) +
                " strings, expected one");
  return std::move(values.front());
}

double Object::attribute_double(std::string_view name) const {
  return to_double(read_numeric_scalar(id(), path_, name), 0, attr_where(path_, name));
}

std::int64_t Object::attribute_int(std::string_view name) const {
  return to_int64(read_numeric_scalar(id(), path_, name), 0, attr_where(path_, name));
}

std::uint64_t Object::attribute_uint(std::string_view name) const {
  return to_uint64(read_numeric_scalar(id(), path_, name), 0, attr_where(path_, name));
}

std::vector<double> Object::attribute_doubles(std::string_view name) const {
  const NumericValues v = read_numeric_attribute(id(), path_, name);
  std::vector<double> out(v.size());
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = to_double(v, k, attr_where(path_, name));
  return out;
}

std::vector<std::int64_t> Object::attribute_ints(std::string_view name) const {
  const NumericValues v = read_numeric_attribute(id(), path_, name);
  std::vector<std::int64_t> out(v.size());
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = to_int64(v, k, attr_where(path_, name));
  return out;
}

std::vector<std::string> Object::attribute_strings(std::string_view name) const {
  Handle attr = open_attribute(id(), path_, name);
  const std::string where = attr_where(path_, name);
  Handle type(check_id(H5Aget_type(attr.id()), where, "H5Aget_type"), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls != H5T_STRING) throw Error(where + " is " + class_name(cls) + ", expected a string");
  Handle space(check_id(H5Aget_space(attr.id()), where, "H5Aget_space"), H5Sclose);
  const std::size_t n = element_count(space.id(), where);
  const hid_t a = attr.id();
  return read_strings(type.id(), space.id(), n, path_, "attribute " + in_quotes(name),
                      [a](hid_t mem, void* buf) { return H5Aread(a, mem, buf); });
}

namespace {
herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* data) noexcept {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

herr_t collect_link_name(hid_t, const char* name, const H5L_info_t*, void* data) noexcept {
  try {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  } catch (...) {
    return -1;
  }
}

bool tracked_and_indexed(unsigned flags) { return (flags & crt_order_flags) == crt_order_flags; }
}  // namespace

std::vector<std::string> Object::attribute_names() const {
  quiet();
  Handle cpl = create_plist_of(id(), path_);
  unsigned flags = 0;
  check(H5Pget_attr_creation_order(cpl.id(), &flags), path_, "H5Pget_attr_creation_order");
  std::vector<std::string> names;
  hsize_t idx = 0;
  check(H5Aiterate2(id(), tracked_and_indexed(flags) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME,
                    H5_ITER_INC, &idx, collect_attribute_name, &names),
        path_, "listing attributes");
  return names;
}

// ---- Dataset ------------------------------------------------------------------------------------

std::vector<std::uint64_t> Dataset::shape() const {
  quiet();
  Handle space = space_of_dataset(id(), path_);
  const auto dims = extent(space.id(), path_);
  return {dims.begin(), dims.end()};
}

DType Dataset::dtype() const {
  quiet();
  Handle type = type_of_dataset(id(), path_);
  const H5T_class_t cls = H5Tget_class(type.id());
  const std::size_t size = H5Tget_size(type.id());
  if (cls == H5T_FLOAT) {
    if (size == 8) return DType::f64;
    if (size == 4) return DType::f32;
  } else if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type.id()) != H5T_SGN_NONE;
    if (is_signed && size == 8) return DType::i64;
    if (is_signed && size == 4) return DType::i32;
    if (is_signed && size == 1) return DType::i8;
    if (!is_signed && size == 8) return DType::u64;
  }
  throw Error(path_ + ": dataset holds " + class_name(cls) + " of " + std::to_string(size) +
              " bytes, which fsbi does not use");
}

void Dataset::write_rows(std::uint64_t row0, std::uint64_t n, std::span<const double> data) {
  write_rows_impl(id(), path_, H5T_NATIVE_DOUBLE, row0, n, data);
}
void Dataset::write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int64_t> data) {
  write_rows_impl(id(), path_, H5T_NATIVE_INT64, row0, n, data);
}
void Dataset::write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int32_t> data) {
  write_rows_impl(id(), path_, H5T_NATIVE_INT32, row0, n, data);
}
void Dataset::write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::int8_t> data) {
  write_rows_impl(id(), path_, H5T_NATIVE_INT8, row0, n, data);
}
void Dataset::write_rows(std::uint64_t row0, std::uint64_t n, std::span<const std::uint64_t> data) {
  write_rows_impl(id(), path_, H5T_NATIVE_UINT64, row0, n, data);
}
void Dataset::read_rows(std::uint64_t row0, std::uint64_t n, std::span<double> out) const {
  read_rows_impl(id(), path_, H5T_NATIVE_DOUBLE, row0, n, out);
}
void Dataset::read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int64_t> out) const {
  read_rows_impl(id(), path_, H5T_NATIVE_INT64, row0, n, out);
}
void Dataset::read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int32_t> out) const {
  read_rows_impl(id(), path_, H5T_NATIVE_INT32, row0, n, out);
}
void Dataset::read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::int8_t> out) const {
  read_rows_impl(id(), path_, H5T_NATIVE_INT8, row0, n, out);
}
void Dataset::read_rows(std::uint64_t row0, std::uint64_t n, std::span<std::uint64_t> out) const {
  read_rows_impl(id(), path_, H5T_NATIVE_UINT64, row0, n, out);
}

std::vector<double> Dataset::read_all_double() const {
  return read_all_impl<double>(id(), path_, H5T_NATIVE_DOUBLE);
}

std::vector<std::int64_t> Dataset::read_all_int() const {
  return read_all_impl<std::int64_t>(id(), path_, H5T_NATIVE_INT64);
}

std::vector<std::string> Dataset::read_all_strings() const {
  quiet();
  Handle type = type_of_dataset(id(), path_);
  const H5T_class_t cls = H5Tget_class(type.id());
  if (cls != H5T_STRING)
    throw Error(path_ + ": dataset holds " + class_name(cls) + ", expected strings");
  Handle space = space_of_dataset(id(), path_);
  if (extent(space.id(), path_).size() > 1)
    throw Error(path_ + ": read_all_strings: dataset has more than one dimension");
  const std::size_t n = element_count(space.id(), path_);
  const hid_t d = id();
  return read_strings(type.id(), space.id(), n, path_, "strings", [d](hid_t mem, void* buf) {
    return H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  });
}

void Dataset::write_string_rows(std::uint64_t row0, std::span<const std::string> rows) {
  quiet();
  Handle type = type_of_dataset(id(), path_);
  if (H5Tget_class(type.id()) != H5T_STRING ||
      check_tri(H5Tis_variable_str(type.id()), path_, "H5Tis_variable_str"))
    throw Error(path_ + ": write_string_rows needs a fixed-length string dataset");
  const std::size_t width = H5Tget_size(type.id());
  if (width == 0) fail(path_, "H5Tget_size");
  auto sel = select_rows(id(), path_, "write_string_rows", row0, rows.size(), rows.size());
  if (sel.empty) return;
  std::vector<char> buf(rows.size() * width, '\0');
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto s = utf8_prefix(rows[i], width);
    std::copy(s.begin(), s.end(), buf.begin() + static_cast<std::ptrdiff_t>(i * width));
  }
  check(H5Dwrite(id(), type.id(), sel.mem_space.id(), sel.file_space.id(), H5P_DEFAULT, buf.data()),
        path_, "H5Dwrite of string rows");
}

void Dataset::set_extent_rows(std::uint64_t rows) {
  quiet();
  Handle dcpl(check_id(H5Dget_create_plist(id()), path_, "H5Dget_create_plist"), H5Pclose);
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED)
    throw Error(path_ +
                ": set_extent_rows: dataset is not chunked (create it with chunk_rows > 0)");
  Handle space = space_of_dataset(id(), path_);
  auto dims = extent(space.id(), path_);
  if (dims.empty()) throw Error(path_ + ": set_extent_rows: dataset is scalar");
  dims[0] = rows;
  check(H5Dset_extent(id(), dims.data()), path_,
        "H5Dset_extent to " + std::to_string(rows) + " rows");
}

void Dataset::flush() {
  quiet();
  check(H5Dflush(id()), path_, "H5Dflush");
}

// ---- Group --------------------------------------------------------------------------------------

bool Group::exists(std::string_view name) const {
  quiet();
  std::string full(name);
  while (full.size() > 1 && full.back() == '/') full.pop_back();
  if (full.empty()) return false;
  if (full == "/") return true;
  // H5Lexists fails (rather than saying no) when an intermediate component is missing, so walk
  // the path one component at a time.
  std::size_t pos = full.front() == '/' ? 1 : 0;
  for (;;) {
    const std::size_t slash = full.find('/', pos);
    const std::string prefix = full.substr(0, slash);
    if (!check_tri(H5Lexists(id(), prefix.c_str(), H5P_DEFAULT), path_,
                   "looking up " + in_quotes(prefix)))
      return false;
    if (slash == std::string::npos) return true;
    if (!check_tri(H5Oexists_by_name(id(), prefix.c_str(), H5P_DEFAULT), path_,
                   "looking up " + in_quotes(prefix)))
      return false;  // dangling soft link
    H5O_info_t info{};
    check(H5Oget_info_by_name2(id(), prefix.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT), path_,
          "looking up " + in_quotes(prefix));
    if (info.type != H5O_TYPE_GROUP) return false;
    pos = slash + 1;
  }
}

namespace {
// What kind of object `name` (which exists) is.
H5O_type_t object_type(hid_t loc, const std::string& where, const std::string& name) {
  H5O_info_t info{};
  check(H5Oget_info_by_name2(loc, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT), where,
        "looking up " + in_quotes(name));
  return info.type;
}

std::string type_word(H5O_type_t t) {
  switch (t) {
    case H5O_TYPE_GROUP:
      return "a group";
    case H5O_TYPE_DATASET:
      return "a dataset";
    case H5O_TYPE_NAMED_DATATYPE:
      return "a named datatype";
    default:
      return "not a group or dataset";
  }
}
}  // namespace

Group Group::create_group(std::string_view name) {
  quiet();
  const std::string n(name);
  const std::string child = join(in_file_path(*this), name);
  Handle lcpl = link_create_plist(path_);
  Handle gcpl = plist(H5P_GROUP_CREATE, path_);
  check(H5Pset_link_creation_order(gcpl.id(), crt_order_flags), path_,
        "H5Pset_link_creation_order");
  check(H5Pset_attr_creation_order(gcpl.id(), crt_order_flags), path_,
        "H5Pset_attr_creation_order");
  check(H5Pset_obj_track_times(gcpl.id(), false), path_, "H5Pset_obj_track_times");
  hid_t g = check_id(H5Gcreate2(id(), n.c_str(), lcpl.id(), gcpl.id(), H5P_DEFAULT),
                     file_name_ + ":" + child, "creating group");
  return Group(Handle(g, H5Gclose), file_name_ + ":" + child, file_name_);
}

Group Group::open_group(std::string_view name) const {
  quiet();
  const std::string n(name);
  const std::string child = join(in_file_path(*this), name);
  if (!exists(name)) throw Error(file_name_ + ": no group " + child);
  const H5O_type_t t = object_type(id(), path_, n);
  if (t != H5O_TYPE_GROUP)
    throw Error(file_name_ + ": " + child + " is " + type_word(t) + ", not a group");
  hid_t g =
      check_id(H5Gopen2(id(), n.c_str(), H5P_DEFAULT), file_name_ + ":" + child, "opening group");
  return Group(Handle(g, H5Gclose), file_name_ + ":" + child, file_name_);
}

namespace {
Dataset create_dataset_core(const Group& parent, std::string_view name, hid_t file_type,
                            const std::vector<std::uint64_t>& shape,
                            const DatasetOptions& options) {
  quiet();
  const std::string n(name);
  const std::string where = parent.file_name() + ":" + join(in_file_path(parent), name);
  if (options.deflate_level < 0 || options.deflate_level > 9)
    throw Error(where + ": deflate_level must be 0..9, got " +
                std::to_string(options.deflate_level));
  if (options.deflate_level > 0 && options.chunk_rows == 0)
    throw Error(where + ": compression needs a chunked dataset (chunk_rows > 0)");
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  const bool chunked = options.chunk_rows > 0;
  std::vector<hsize_t> maxdims = dims;
  if (chunked) maxdims[0] = H5S_UNLIMITED;
  Handle space = simple_space(dims, &maxdims, where);

  Handle dcpl = plist(H5P_DATASET_CREATE, where);
  check(H5Pset_attr_creation_order(dcpl.id(), crt_order_flags), where,
        "H5Pset_attr_creation_order");
  check(H5Pset_obj_track_times(dcpl.id(), false), where, "H5Pset_obj_track_times");
  std::size_t chunk_bytes = 0;
  if (chunked) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = options.chunk_rows;
    for (std::size_t k = 1; k < chunk.size(); ++k) chunk[k] = std::max<hsize_t>(chunk[k], 1);
    check(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), where,
          "H5Pset_chunk");
    chunk_bytes = H5Tget_size(file_type);
    for (hsize_t c : chunk) chunk_bytes *= c;
  }
  if (options.allocate_early) {
    check(H5Pset_alloc_time(dcpl.id(), H5D_ALLOC_TIME_EARLY), where, "H5Pset_alloc_time");
    check(H5Pset_fill_time(dcpl.id(), H5D_FILL_TIME_NEVER), where, "H5Pset_fill_time");
  }
  if (options.deflate_level > 0)
    check(H5Pset_deflate(dcpl.id(), static_cast<unsigned>(options.deflate_level)), where,
          "H5Pset_deflate");
  Handle dapl = dataset_access_plist(chunked ? options.chunk_cache_bytes : 0, chunk_bytes, where);
  Handle lcpl = link_create_plist(where);
  hid_t d = check_id(
      H5Dcreate2(parent.id(), n.c_str(), file_type, space.id(), lcpl.id(), dcpl.id(), dapl.id()),
      where, "creating dataset");
  return Dataset(Handle(d, H5Dclose), where);
}

Dataset create_dataset_impl(const Group& parent, std::string_view name, hid_t file_type,
                            const std::vector<std::uint64_t>& shape,
                            const DatasetOptions& options) {
  if (shape.empty() || shape.size() > 2)
    throw Error(parent.file_name() + ":" + join(in_file_path(parent), name) +
                ": datasets have 1 or 2 dimensions, got " + std::to_string(shape.size()));
  return create_dataset_core(parent, name, file_type, shape, options);
}
}  // namespace

Dataset Group::create_array(std::string_view name, DType type,
                            const std::vector<std::uint64_t>& shape) {
  quiet();
  const std::string where = file_name_ + ":" + join(in_file_path(*this), name);
  if (shape.empty() || shape.size() > H5S_MAX_RANK)
    throw Error(where + ": arrays have 1 to " + std::to_string(H5S_MAX_RANK) +
                " dimensions, got " + std::to_string(shape.size()));
  Handle t = file_type_of(type, path_);
  return create_dataset_core(*this, name, t.id(), shape, {});
}

Dataset Group::create_dataset(std::string_view name, DType type, std::vector<std::uint64_t> shape,
                              const DatasetOptions& options) {
  quiet();
  Handle t = file_type_of(type, path_);
  return create_dataset_impl(*this, name, t.id(), shape, options);
}

Dataset Group::create_string_dataset(std::string_view name, std::uint64_t rows, std::size_t width,
                                     const DatasetOptions& options) {
  quiet();
  const std::string where = file_name_ + ":" + join(in_file_path(*this), name);
  if (width == 0) throw Error(where + ": fixed-length strings need a width > 0");
  Handle t(check_id(H5Tcopy(H5T_C_S1), where, "H5Tcopy"), H5Tclose);
  check(H5Tset_size(t.id(), width), where, "H5Tset_size");
  check(H5Tset_strpad(t.id(), H5T_STR_NULLPAD), where, "H5Tset_strpad");
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), where, "H5Tset_cset");
  return create_dataset_impl(*this, name, t.id(), {rows}, options);
}

Dataset Group::create_string_dataset(std::string_view name,
                                     const std::vector<std::string>& values) {
  quiet();
  const std::string where = file_name_ + ":" + join(in_file_path(*this), name);
  Handle t = vlen_utf8(where);
  Dataset d = create_dataset_impl(*this, name, t.id(), {values.size()}, {});
  if (!values.empty()) {
    std::vector<const char*> ptrs;
    ptrs.reserve(values.size());
    for (const auto& s : values) ptrs.push_back(s.c_str());
    check(H5Dwrite(d.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where,
          "writing strings");
  }
  return d;
}

Dataset Group::open_dataset(std::string_view name, std::size_t chunk_cache_bytes) const {
  quiet();
  const std::string n(name);
  const std::string child = join(in_file_path(*this), name);
  const std::string where = file_name_ + ":" + child;
  if (!exists(name)) throw Error(file_name_ + ": no dataset " + child);
  const H5O_type_t t = object_type(id(), path_, n);
  if (t != H5O_TYPE_DATASET)
    throw Error(file_name_ + ": " + child + " is " + type_word(t) + ", not a dataset");
  std::size_t chunk_bytes = 0;
  if (chunk_cache_bytes > 0) {
    // The slot count depends on the chunk size, which only the open dataset knows.
    Handle probe(check_id(H5Dopen2(id(), n.c_str(), H5P_DEFAULT), where, "opening dataset"),
                 H5Dclose);
    Handle dcpl(check_id(H5Dget_create_plist(probe.id()), where, "H5Dget_create_plist"), H5Pclose);
    if (H5Pget_layout(dcpl.id()) == H5D_CHUNKED) {
      std::array<hsize_t, 32> chunk{};
      const int rank = H5Pget_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data());
      if (rank < 0) fail(where, "H5Pget_chunk");
      Handle type = type_of_dataset(probe.id(), where);
      chunk_bytes = H5Tget_size(type.id());
      for (int k = 0; k < rank; ++k) chunk_bytes *= chunk[static_cast<std::size_t>(k)];
    }
  }
  Handle dapl = dataset_access_plist(chunk_bytes > 0 ? chunk_cache_bytes : 0, chunk_bytes, where);
  hid_t d = check_id(H5Dopen2(id(), n.c_str(), dapl.id()), where, "opening dataset");
  return Dataset(Handle(d, H5Dclose), where);
}

std::vector<std::string> Group::children() const {
  quiet();
  Handle cpl = create_plist_of(id(), path_);
  unsigned flags = 0;
  check(H5Pget_link_creation_order(cpl.id(), &flags), path_, "H5Pget_link_creation_order");
  std::vector<std::string> names;
  hsize_t idx = 0;
  check(H5Literate(id(), tracked_and_indexed(flags) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME,
                   H5_ITER_INC, &idx, collect_link_name, &names),
        path_, "listing links");
  return names;
}

namespace {
// The kind of object `name` names, or H5O_TYPE_UNKNOWN if missing or a dangling link.
H5O_type_t kind_of(const Group& g, std::string_view name) {
  if (!g.exists(name)) return H5O_TYPE_UNKNOWN;
  const std::string n(name);
  if (!check_tri(H5Oexists_by_name(g.id(), n.c_str(), H5P_DEFAULT), g.path(),
                 "looking up " + in_quotes(name)))
    return H5O_TYPE_UNKNOWN;
  return object_type(g.id(), g.path(), n);
}
}  // namespace

bool Group::is_group(std::string_view name) const {
  quiet();
  return kind_of(*this, name) == H5O_TYPE_GROUP;
}

bool Group::is_dataset(std::string_view name) const {
  quiet();
  return kind_of(*this, name) == H5O_TYPE_DATASET;
}

// ---- Whole-dataset writes and dimension scales --------------------------------------------------

namespace {
template <class T>
void write_all_impl(hid_t dset, const std::string& where, hid_t mem_type, std::span<const T> data) {
  quiet();
  Handle space = space_of_dataset(dset, where);
  const std::size_t n = element_count(space.id(), where);
  if (data.size() != n)
    throw Error(where + ": write_all: dataset has " + std::to_string(n) + " elements, got " +
                std::to_string(data.size()) + " values");
  if (n == 0) return;
  check(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), where, "H5Dwrite");
}

herr_t collect_scale_path(hid_t /*dset*/, unsigned /*dim*/, hid_t scale, void* data) noexcept {
  try {
    const ssize_t len = H5Iget_name(scale, nullptr, 0);
    if (len < 0) return -1;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Iget_name(scale, name.data(), name.size()) < 0) return -1;
    name.resize(static_cast<std::size_t>(len));
    static_cast<std::vector<std::string>*>(data)->push_back(std::move(name));
    return 0;
  } catch (...) {
    return -1;
  }
}
}  // namespace

void Dataset::write_all(std::span<const double> data) {
  write_all_impl(id(), path_, H5T_NATIVE_DOUBLE, data);
}
void Dataset::write_all(std::span<const float> data) {
  write_all_impl(id(), path_, H5T_NATIVE_FLOAT, data);
}
void Dataset::write_all(std::span<const std::int64_t> data) {
  write_all_impl(id(), path_, H5T_NATIVE_INT64, data);
}
void Dataset::write_all(std::span<const std::int32_t> data) {
  write_all_impl(id(), path_, H5T_NATIVE_INT32, data);
}
void Dataset::write_all(std::span<const std::int8_t> data) {
  write_all_impl(id(), path_, H5T_NATIVE_INT8, data);
}

void Dataset::make_dimension_scale(std::string_view dimension_name) {
  quiet();
  const std::string n(dimension_name);
  check(H5DSset_scale(id(), n.c_str()), path_, "H5DSset_scale " + in_quotes(dimension_name));
}

bool Dataset::is_dimension_scale() const {
  quiet();
  return check_tri(H5DSis_scale(id()), path_, "H5DSis_scale");
}

void Dataset::attach_scale(const Dataset& scale, unsigned axis) {
  quiet();
  const std::size_t rank = shape().size();
  if (axis >= rank)
    throw Error(path_ + ": attach_scale: axis " + std::to_string(axis) + " of a " +
                std::to_string(rank) + "-dimensional dataset");
  check(H5DSattach_scale(id(), scale.id(), axis), path_,
        "H5DSattach_scale of " + scale.path() + " to axis " + std::to_string(axis));
}

std::vector<std::string> Dataset::attached_scales(unsigned axis) const {
  quiet();
  const std::size_t rank = shape().size();
  if (axis >= rank)
    throw Error(path_ + ": attached_scales: axis " + std::to_string(axis) + " of a " +
                std::to_string(rank) + "-dimensional dataset");
  std::vector<std::string> paths;
  const int n = H5DSget_num_scales(id(), axis);
  if (n < 0) fail(path_, "H5DSget_num_scales");
  if (n == 0) return paths;
  check(H5DSiterate_scales(id(), axis, nullptr, collect_scale_path, &paths), path_,
        "H5DSiterate_scales");
  return paths;
}

// ---- File ---------------------------------------------------------------------------------------

File File::create(const std::string& filename) {
  quiet();
  // HDF5 says "unable to open file: ..., errno = 2, ..." for a missing folder; say which.
  if (const OutputFolder state = output_folder(filename); state != OutputFolder::usable) {
    const std::string folder = std::filesystem::path(filename).parent_path().string();
    throw Error(filename + ": cannot be created: " +
                (state == OutputFolder::not_a_folder ? "'" + folder + "' is not a folder"
                                                     : "the folder '" + folder + "' does not exist") +
                "; create it first or write elsewhere");
  }
  Handle fcpl = plist(H5P_FILE_CREATE, filename);
  check(H5Pset_link_creation_order(fcpl.id(), crt_order_flags), filename,
        "H5Pset_link_creation_order");
  check(H5Pset_attr_creation_order(fcpl.id(), crt_order_flags), filename,
        "H5Pset_attr_creation_order");
  check(H5Pset_obj_track_times(fcpl.id(), false), filename, "H5Pset_obj_track_times");
  Handle fapl = file_access_plist(filename, true);
  hid_t f = check_id(H5Fcreate(filename.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id()), filename,
                     "create");
  return File(Handle(f, H5Fclose), filename + ":/", filename);
}

File File::open(const std::string& filename, Access access) {
  quiet();
  std::error_code ec;
  const auto status = std::filesystem::status(filename, ec);
  if (status.type() == std::filesystem::file_type::not_found)
    throw Error(filename + ": no such file");
  if (status.type() == std::filesystem::file_type::directory)
    throw Error(filename + ": is a directory, expected an HDF5 file");
  const htri_t is_hdf5 = H5Fis_hdf5(filename.c_str());
  if (is_hdf5 < 0) fail(filename, "open");
  if (is_hdf5 == 0) throw Error(filename + ": not an HDF5 file");
  Handle fapl = file_access_plist(filename, access == Access::read_write);
  const unsigned flags = access == Access::read_write ? H5F_ACC_RDWR : H5F_ACC_RDONLY;
  const hid_t f = H5Fopen(filename.c_str(), flags, fapl.id());
  if (f < 0) {
    const std::string stack = current_error_stack();
    if (stack.find("truncated file") != std::string::npos) throw Error(truncated_file_message(filename, stack));
    throw Error(filename + ": " + (access == Access::read_write ? "open for writing" : "open") + " failed: " + stack);
  }
  return File(Handle(f, H5Fclose), filename + ":/", filename);
}

void File::flush() {
  quiet();
  check(H5Fflush(id(), H5F_SCOPE_LOCAL), file_name(), "flush");
}

void File::close() {
  quiet();
  if (!h_.valid()) return;
  const hid_t f = h_.release();
  check(H5Fclose(f), file_name(), "close");
}

}  // namespace fsbi::h5
