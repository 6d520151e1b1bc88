// JsonWriter is the one place that knows JSON escaping, so every byte a client parses passes here.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <cstdint>
#include <limits>
#include <string>

#include "json_writer.hpp"

namespace codex {
namespace {

std::string escaped(std::string_view text) {
  std::string out;

  appendJsonString(out, text);
  return out;
}

// What a JSON parser reads back from a quoted string we produced.
std::string readBack(const std::string& json) {
  simdjson::dom::parser parser;

  return std::string(parser.parse(json).get_string().value());
}

TEST_CASE("quotes and backslashes are escaped") {
  CHECK(escaped(R"(say "hi")") == R"("say \"hi\"")");
  CHECK(escaped(R"(C:\dir\file)") == R"("C:\\dir\\file")");
}

TEST_CASE("newline, tab and carriage return use their short escapes") {
  CHECK(escaped("a\nb") == R"("a\nb")");
  CHECK(escaped("a\tb\rc") == R"("a\tb\rc")");
  CHECK(escaped("\b\f") == R"("\b\f")");
}

TEST_CASE("other control characters are escaped as \\u00XX") {
  CHECK(escaped("\x01") == R"("\u0001")");
  CHECK(escaped("\x1f") == R"("\u001f")");
  CHECK(escaped(std::string_view("a\0b", 3)) == R"("a\u0000b")");
}

TEST_CASE("DEL and UTF-8 text pass through unescaped") {
  CHECK(escaped("\x7f") == "\"\x7f\"");
  CHECK(escaped("caf\xC3\xA9 \xE2\x80\xA6 \xF0\x9F\x98\x80") ==
        "\"caf\xC3\xA9 \xE2\x80\xA6 \xF0\x9F\x98\x80\"");
}

TEST_CASE("every ASCII character survives a round trip through a JSON parser") {
  for (int c = 0; c < 0x80; ++c) {
    std::string text = std::string("<") + static_cast<char>(c) + ">";

    CAPTURE(c);
    CHECK(readBack(escaped(text)) == text);
  }
}

TEST_CASE("commas separate siblings only, at every nesting level") {
  JsonWriter w;

  w.beginObject().field("a", 1).key("list").beginArray().value(1).value("two");
  w.beginObject().endObject().beginArray().endArray().endArray();
  w.key("inner").beginObject().field("b", true).endObject().endObject();

  CHECK(w.str() == R"({"a":1,"list":[1,"two",{},[]],"inner":{"b":true}})");
}

TEST_CASE("empty object and empty array are written without separators") {
  JsonWriter object;
  JsonWriter array;

  object.beginObject().endObject();
  array.beginArray().endArray();

  CHECK(object.str() == "{}");
  CHECK(array.str() == "[]");
}

TEST_CASE("numbers, booleans and null are written as JSON literals") {
  JsonWriter w;

  w.beginArray().value(std::numeric_limits<int64_t>::min());
  w.value(std::numeric_limits<uint64_t>::max()).value(0).value(false).null().endArray();

  CHECK(w.str() == "[-9223372036854775808,18446744073709551615,0,false,null]");
}

TEST_CASE("raw inserts serialised JSON as one value in key and array position") {
  JsonWriter w;

  w.beginObject().key("sub").raw(R"({"x":[1,2]})").field("after", "y");
  w.key("list").beginArray().raw("1").raw("null").endArray().endObject();

  CHECK(w.str() == R"({"sub":{"x":[1,2]},"after":"y","list":[1,null]})");
}

TEST_CASE("keys are escaped like values") {
  JsonWriter w;

  w.beginObject().field("a\"b", "c\nd").endObject();

  CHECK(w.str() == R"({"a\"b":"c\nd"})");
}

TEST_CASE("take hands over the text") {
  JsonWriter w;

  w.beginObject().field("k", "v").endObject();

  CHECK(w.take() == R"({"k":"v"})");
}

}  // namespace
}  // namespace codex

TEST_CASE("stray bytes that are not UTF-8 become U+FFFD so the JSON stays valid") {
  std::string out;

  codex::appendJsonString(out, std::string("ok \xE2\x80\xA6 cut \xE2\x80 bad \xFF end", 23));
  // U+FFFD is EF BF BD in UTF-8.
  CHECK(out == "\"ok \xE2\x80\xA6 cut \xEF\xBF\xBD\xEF\xBF\xBD bad \xEF\xBF\xBD end\"");
}
