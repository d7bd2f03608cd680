// A small JSON reader for safetensors headers and HF config.json, and a string escaper for
// the files we write. Not a general-purpose library: numbers are doubles, objects keep order.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace smolstage {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;

  const Json* find(const std::string& key) const;  // nullptr when absent or not an object
};

// Throws std::runtime_error("<what>: <reason> at offset N").
Json parse_json(const std::string& text, const std::string& what);
std::string json_quote(const std::string& s);
std::string json_number(double v);  // shortest round-trip representation

}  // namespace smolstage
