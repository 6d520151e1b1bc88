// LineFramer turns a child's stdout reads into complete lines, whatever way the reads split them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "line_framer.hpp"

namespace codex {
namespace {

using Lines = std::vector<std::string>;

// Feeds each read in turn and collects every line the framer hands on.
Lines feedAll(LineFramer& framer, const std::vector<std::string_view>& reads) {
  Lines lines;

  for (auto bytes : reads) {
    framer.feed(bytes, [&lines](std::string_view line) { lines.emplace_back(line); });
  }
  return lines;
}

Lines feedAll(const std::vector<std::string_view>& reads) {
  LineFramer framer;

  return feedAll(framer, reads);
}

TEST_CASE("several lines in one read each arrive") {
  CHECK(feedAll({"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"}) ==
        Lines{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"});
}

TEST_CASE("a line split across reads arrives once, whole") {
  CHECK(feedAll({"{\"type\":\"ag", "ent_mess", "age\"}\n"}) ==
        Lines{"{\"type\":\"agent_message\"}"});
}

TEST_CASE("a line split into single bytes arrives whole") {
  std::string text = "{\"delta\":\"Hello f\"}\n";
  std::vector<std::string_view> reads;

  for (size_t i = 0; i < text.size(); ++i) {
    reads.push_back(std::string_view(text).substr(i, 1));
  }

  CHECK(feedAll(reads) == Lines{"{\"delta\":\"Hello f\"}"});
}

TEST_CASE("split UTF-8 character is rejoined byte-identical at every byte offset") {
  // U+2026 (3 bytes) and U+1F600 (4 bytes): no split may turn them into U+FFFD.
  const std::string line =
      "{\"delta\":\"a\xE2\x80\xA6"
      "b\xF0\x9F\x98\x80"
      "c\"}";
  const std::string text = line + "\n";

  for (size_t cut = 1; cut < text.size(); ++cut) {
    std::string_view all(text);
    Lines lines = feedAll({all.substr(0, cut), all.substr(cut)});

    CAPTURE(cut);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == line);
    CHECK(lines[0].find("\xEF\xBF\xBD") == std::string::npos);
  }
}

TEST_CASE("split UTF-8 character is rejoined when cut at two offsets") {
  const std::string line = "\xE2\x80\xA6\xF0\x9F\x98\x80";
  const std::string text = line + "\n";

  for (size_t first = 1; first < text.size(); ++first) {
    for (size_t second = first + 1; second < text.size(); ++second) {
      std::string_view all(text);
      Lines lines =
          feedAll({all.substr(0, first), all.substr(first, second - first), all.substr(second)});

      CAPTURE(first);
      CAPTURE(second);
      CHECK(lines == Lines{line});
    }
  }
}

TEST_CASE("CRLF endings and surrounding blanks are trimmed") {
  CHECK(feedAll({"{\"a\":1}\r\n", "  {\"b\":2}\t\n"}) == Lines{"{\"a\":1}", "{\"b\":2}"});
}

TEST_CASE("blank and whitespace-only lines are skipped") {
  CHECK(feedAll({"\n\n  \r\n\t\n{\"a\":1}\n\n"}) == Lines{"{\"a\":1}"});
}

TEST_CASE("an unterminated tail is not emitted and stays visible as pending") {
  LineFramer framer;

  Lines lines = feedAll(framer, {"{\"a\":1}\n{\"type\":\"task_com"});

  CHECK(lines == Lines{"{\"a\":1}"});
  CHECK(framer.pending() == "{\"type\":\"task_com");
}

TEST_CASE("pending is empty once the tail's newline arrives") {
  LineFramer framer;

  Lines lines = feedAll(framer, {"{\"a\":", "1}\n"});

  CHECK(lines == Lines{"{\"a\":1}"});
  CHECK(framer.pending().empty());
}

TEST_CASE("an over-long line is dropped and counted while the next line still arrives") {
  LineFramer framer;
  const std::string chunk(1024 * 1024, 'a');
  std::vector<std::string_view> reads = {"{\"first\":1}\n"};

  for (size_t sent = 0; sent <= LineFramer::kMaxLine; sent += chunk.size()) {
    reads.push_back(chunk);
  }
  reads.push_back("tail-of-long-line\n{\"next\":2}\n");

  Lines lines = feedAll(framer, reads);

  CHECK(lines == Lines{"{\"first\":1}", "{\"next\":2}"});
  CHECK(framer.droppedLines() == 1);
  CHECK(framer.pending().empty());
}

TEST_CASE("a line that crosses kMaxLine only in its final read is still dropped") {
  LineFramer framer;
  const std::string head(LineFramer::kMaxLine - 1, 'a');

  Lines lines = feedAll(framer, {head, "aaaa\n{\"next\":2}\n"});

  // Sizes, not contents: a failure must not print a 16 MiB line.
  CHECK(lines.size() == 1);
  CHECK(lines.back() == "{\"next\":2}");
  CHECK(framer.droppedLines() == 1);
}

TEST_CASE("a line of exactly kMaxLine bytes is kept") {
  LineFramer framer;
  const std::string head(LineFramer::kMaxLine, 'a');

  Lines lines = feedAll(framer, {head, "\n"});

  REQUIRE(lines.size() == 1);
  CHECK(lines[0].size() == LineFramer::kMaxLine);
  CHECK(framer.droppedLines() == 0);
}

}  // namespace
}  // namespace codex
