// Builds compact JSON text for responses, SSE chunks and log lines.
//
// simdjson (our parser) has no serializer in the Debian 12 release, so this small writer is the
// one place that knows JSON escaping; everything we emit goes through it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace codex {

class JsonWriter {
 public:
  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(static_cast<int64_t>(number)); }
  JsonWriter& value(uint64_t number);
  JsonWriter& value(bool flag);
  JsonWriter& null();
  // Inserts already-serialized JSON (e.g. a minified sub-document) as one value.
  JsonWriter& raw(std::string_view json);

  template <typename T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void separate();

  std::string out_;
  bool need_comma_ = false;
};

// Appends `text` to `out` as a quoted JSON string.
void appendJsonString(std::string& out, std::string_view text);

}  // namespace codex
