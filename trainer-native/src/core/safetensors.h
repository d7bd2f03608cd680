// safetensors reading (F32/BF16/F16 → fp32) and writing (F32), with errors that name the file,
// the tensor and what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace smolstage {

struct TensorInfo {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute byte offsets in the file
  uint64_t end = 0;
  int64_t numel() const;
};

class SafeTensorsReader {
 public:
  explicit SafeTensorsReader(const std::string& path);  // validates header and every data range
  const TensorInfo* find(const std::string& name) const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // Converts to fp32; `out` holds info.numel() floats.
  void read_f32(const TensorInfo& info, float* out) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<TensorInfo> tensors_;
};

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};

// Writes to `path` atomically (temporary file, then rename).
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors);

std::string shape_string(const std::vector<int64_t>& shape);

// Atomic small-file write shared by the checkpoint code.
void write_file_atomic(const std::string& path, const std::string& contents);
std::string read_small_file(const std::string& path, size_t max_bytes);

}  // namespace smolstage
