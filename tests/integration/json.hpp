// JSON assertions for the tests: parse once, read fields by JSON pointer.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>

namespace codex::test {

class Json {
 public:
  explicit Json(const std::string& text) : valid_(parser_.parse(text).get(root_) == 0) {}

  bool valid() const { return valid_; }
  bool has(const char* pointer) const {
    simdjson::dom::element out;
    return valid_ && root_.at_pointer(pointer).get(out) == simdjson::SUCCESS;
  }
  std::string str(const char* pointer) const {
    std::string_view out;
    return valid_ && root_.at_pointer(pointer).get(out) == simdjson::SUCCESS ? std::string(out)
                                                                             : "<missing>";
  }
  int64_t num(const char* pointer) const {
    int64_t out = -1;
    return valid_ && root_.at_pointer(pointer).get(out) == simdjson::SUCCESS ? out : -1;
  }
  std::optional<bool> boolean(const char* pointer) const {
    bool out = false;
    if (!valid_ || root_.at_pointer(pointer).get(out) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    return out;
  }
  bool isNull(const char* pointer) const {
    simdjson::dom::element out;
    return valid_ && root_.at_pointer(pointer).get(out) == simdjson::SUCCESS && out.is_null();
  }
  size_t size(const char* pointer) const {
    simdjson::dom::array out;
    return valid_ && root_.at_pointer(pointer).get(out) == simdjson::SUCCESS ? out.size() : 0;
  }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  bool valid_;
};

}  // namespace codex::test
