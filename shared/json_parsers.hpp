// simdjson parsers shared by every run in a process, each lent out for one parse.
//
// A dom::parser keeps buffers sized to the longest document it has parsed (about 14 bytes per
// input byte) and 9 KiB of nesting bookkeeping. Owned by each child protocol, that was memory
// every open stream held while waiting on its child; a line parses in microseconds, so a few
// parsers serve a whole worker.
#pragma once

#include <simdjson.h>

#include <memory>

namespace codex {

class ParserLease {
 public:
  ParserLease();
  ~ParserLease();
  ParserLease(const ParserLease&) = delete;
  ParserLease& operator=(const ParserLease&) = delete;

  // Valid, with everything it parsed, until the lease ends.
  simdjson::dom::parser& parser() { return *parser_; }

 private:
  std::unique_ptr<simdjson::dom::parser> parser_;
};

}  // namespace codex
