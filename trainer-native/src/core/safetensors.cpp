#include "core/safetensors.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/json.h"

namespace smolstage {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "BF16" || dtype == "F16") return 2;
  return 0;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

SafeTensorsReader::SafeTensorsReader(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path + ": file missing or unreadable");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  if (file_size < 8) throw std::runtime_error(path + " is not a safetensors file: shorter than its 8-byte header length");
  in.seekg(0);
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > 100u * 1024 * 1024 || 8 + header_len > file_size)
    throw std::runtime_error(path + " is truncated or not a safetensors file: header length " +
                             std::to_string(header_len) + " exceeds file size " + std::to_string(file_size));
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const Json root = parse_json(header, path + " header");
  if (root.kind != Json::Kind::Object) throw std::runtime_error(path + ": safetensors header is not a JSON object");
  const uint64_t data_start = 8 + header_len;
  for (const auto& [name, entry] : root.object) {
    if (name == "__metadata__") continue;
    auto bad = [&](const std::string& why) { return std::runtime_error(path + ": tensor " + name + ": " + why); };
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype || dtype->kind != Json::Kind::String || !shape || shape->kind != Json::Kind::Array || !offsets ||
        offsets->kind != Json::Kind::Array || offsets->array.size() != 2)
      throw bad("header entry needs dtype, shape and data_offsets");
    TensorInfo info;
    info.name = name;
    info.dtype = dtype->string;
    const size_t elem = dtype_size(info.dtype);
    if (elem == 0) throw bad("unsupported dtype " + info.dtype + " (supported: F32, BF16, F16)");
    // Bounds keep every product and sum below in 64-bit range, so a hostile header cannot
    // wrap the size checks.
    constexpr double kMaxValue = 9007199254740992.0;  // 2^53
    uint64_t elements = 1;
    for (const Json& d : shape->array) {
      if (d.kind != Json::Kind::Number || d.number < 0 || d.number > kMaxValue || d.number != std::floor(d.number))
        throw bad("shape must hold non-negative integers");
      info.shape.push_back(static_cast<int64_t>(d.number));
      if (__builtin_mul_overflow(elements, static_cast<uint64_t>(d.number), &elements) || elements > (1ull << 50))
        throw bad("shape " + shape_string(info.shape) + " is too large");
    }
    for (const Json& o : offsets->array)
      if (o.kind != Json::Kind::Number || o.number < 0 || o.number > kMaxValue || o.number != std::floor(o.number))
        throw bad("data_offsets must be two non-negative integers");
    info.begin = data_start + static_cast<uint64_t>(offsets->array[0].number);
    info.end = data_start + static_cast<uint64_t>(offsets->array[1].number);
    if (info.end < info.begin || info.end - info.begin != static_cast<uint64_t>(info.numel()) * elem)
      throw bad("data_offsets span " + std::to_string(info.end - info.begin) + " bytes but shape " +
                shape_string(info.shape) + " of " + info.dtype + " needs " + std::to_string(info.numel() * elem));
    if (info.end > file_size)
      throw std::runtime_error(path + " is truncated: tensor " + name + " ends at byte " + std::to_string(info.end) +
                               " but the file has " + std::to_string(file_size) + " bytes");
    tensors_.push_back(std::move(info));
  }
}

const TensorInfo* SafeTensorsReader::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void SafeTensorsReader::read_f32(const TensorInfo& info, float* out) const {
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(info.begin));
  const size_t n = static_cast<size_t>(info.numel());
  if (info.dtype == "F32") {
    in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(n * 4));
  } else {
    std::vector<uint16_t> raw(n);
    in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(n * 2));
    if (info.dtype == "BF16") {
      for (size_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(raw[i]) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
    } else {
      for (size_t i = 0; i < n; ++i) out[i] = half_to_float(raw[i]);
    }
  }
  if (!in) throw std::runtime_error(path_ + ": failed reading tensor " + info.name + " (file changed or unreadable)");
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const uint64_t bytes = static_cast<uint64_t>(n) * 4;
    header += "," + json_quote(t.name) + ":{\"dtype\":\"F32\",\"shape\":" + shape_string(t.shape) +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';  // keeps tensor data 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": directory missing or not writable");
    uint64_t len = header.size();
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(len >> (8 * i));
    out.write(reinterpret_cast<const char*>(len_bytes), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& t : tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      out.write(reinterpret_cast<const char*>(t.data), static_cast<std::streamsize>(n * 4));
    }
    out.flush();
    if (!out) throw std::runtime_error("failed writing " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + ": directory missing or not writable");
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) throw std::runtime_error("failed writing " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

std::string read_small_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path + ": file missing or unreadable");
  const auto size = static_cast<size_t>(in.tellg());
  if (size > max_bytes) throw std::runtime_error(path + " is too large (" + std::to_string(size) + " bytes)");
  std::string s(size, '\0');
  in.seekg(0);
  in.read(s.data(), static_cast<std::streamsize>(size));
  return s;
}

}  // namespace smolstage
