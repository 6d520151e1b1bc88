// Request parameters as nginx passes them (fastcgi_params plus REQUEST_ID).
#include "http_request.hpp"

#include <algorithm>
#include <cctype>

#include "openai.hpp"
#include "text.hpp"

namespace codex {
namespace {}  // namespace

HttpRequest readRequest(const FcgiExchange& io) {
  HttpRequest r;

  r.started = std::chrono::steady_clock::now();
  r.method = io.param("REQUEST_METHOD");
  r.path = io.param("DOCUMENT_URI");
  if (r.path.empty()) {
    std::string uri = io.param("REQUEST_URI");
    r.path = uri.substr(0, uri.find('?'));
  }
  if (r.path.size() > 1 && r.path.back() == '/') {
    r.path.pop_back();
  }
  r.query = io.param("QUERY_STRING");
  r.content_type = io.param("CONTENT_TYPE");
  r.authorization = io.param("HTTP_AUTHORIZATION");
  r.origin = io.param("HTTP_ORIGIN");
  r.user_agent = io.param("HTTP_USER_AGENT");
  r.request_id = io.param("REQUEST_ID");
  if (r.request_id.empty()) {
    r.request_id = newResponseId("req-");  // nginx without our fastcgi_param line
  }
  r.remote_addr = io.param("REMOTE_ADDR");
  r.request_headers = io.param("HTTP_ACCESS_CONTROL_REQUEST_HEADERS");
  r.no_keepalive = io.param("HTTP_X_NO_KEEPALIVE");
  return r;
}

bool HttpRequest::hasJsonBody() const {
  std::string type = lower(trim(std::string_view(content_type).substr(0, content_type.find(';'))));
  // `curl -d` labels JSON as a form, and OpenAI's own examples rely on that working; any other
  // declared type (text/plain, say) is taken at its word and reads as an empty object.
  return type.empty() || type == "application/json" ||
         type == "application/x-www-form-urlencoded" ||
         (type.starts_with("application/") && type.ends_with("+json"));
}

bool HttpRequest::queryHas(std::string_view name, std::string_view value) const {
  std::string_view rest = query;

  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? "" : rest.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos &&
        trim(pair.substr(eq + 1)) == value) {
      return true;
    }
  }
  return false;
}

}  // namespace codex
