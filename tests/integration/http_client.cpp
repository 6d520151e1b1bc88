// libcurl test client; see http_client.hpp.
#include "http_client.hpp"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>

namespace codex::test {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

void parseHeaderLine(Response& response, std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return;
  }
  std::string name = lower(std::string(line.substr(0, colon)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  response.headers[name] = std::string(value);
}

CURL* prepare(const std::string& method, const std::string& url, const std::string& body,
              curl_slist* list) {
  CURL* curl = curl_easy_init();

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  return curl;
}

curl_slist* headerList(const Headers& headers) {
  curl_slist* list = nullptr;

  for (const auto& h : headers) {
    list = curl_slist_append(list, h.c_str());
  }
  // Large bodies must go at once, without waiting for a 100 Continue.
  return curl_slist_append(list, "Expect:");
}

}  // namespace

std::string Response::header(const std::string& name) const {
  auto found = headers.find(lower(name));
  return found == headers.end() ? "" : found->second;
}

Response request(const std::string& method, const std::string& url, const std::string& body,
                 const Headers& headers) {
  Response response;
  curl_slist* list = headerList(headers);
  CURL* curl = prepare(method, url, body, list);
  auto onBody = +[](char* data, size_t size, size_t count, void* out) {
    static_cast<Response*>(out)->body.append(data, size * count);
    return size * count;
  };
  auto onHeader = +[](char* data, size_t size, size_t count, void* out) {
    parseHeaderLine(*static_cast<Response*>(out), std::string_view(data, size * count));
    return size * count;
  };

  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  response.transport_error = curl_easy_perform(curl) != CURLE_OK;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_easy_cleanup(curl);
  curl_slist_free_all(list);
  return response;
}

StreamClient::StreamClient(std::string url, std::string body, Headers headers)
    : url_(std::move(url)), body_(std::move(body)), headers_(std::move(headers)) {
  thread_ = std::thread([this] { run(); });
}

StreamClient::~StreamClient() {
  abort();
  thread_.join();
}

void StreamClient::run() {
  curl_slist* list = headerList(headers_);
  CURL* curl = prepare("POST", url_, body_, list);

  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  // A silent stream is aborted through the progress callback, not by a timeout.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 0L);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_SOCKOPTDATA, this);
  curl_easy_setopt(
      curl, CURLOPT_SOCKOPTFUNCTION, +[](void* self, curl_socket_t fd, curlsocktype) {
        auto* client = static_cast<StreamClient*>(self);
        std::lock_guard lock(client->mutex_);
        client->socket_ = fd;
        return static_cast<int>(CURL_SOCKOPT_OK);
      });
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
  curl_easy_setopt(
      curl, CURLOPT_XFERINFOFUNCTION,
      +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        auto* client = static_cast<StreamClient*>(self);
        std::lock_guard lock(client->mutex_);
        return client->abort_ ? 1 : 0;
      });
  bool failed = curl_easy_perform(curl) != CURLE_OK;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  curl_slist_free_all(list);

  std::lock_guard lock(mutex_);
  response_.status = status;
  response_.transport_error = failed;
  headers_done_ = done_ = true;
  changed_.notify_all();
}

size_t StreamClient::onHeader(char* data, size_t size, size_t count, void* self) {
  auto* client = static_cast<StreamClient*>(self);
  std::string_view line(data, size * count);
  std::lock_guard lock(client->mutex_);

  if (line.starts_with("HTTP/")) {
    client->response_.status = std::atol(std::string(line.substr(9, 3)).c_str());
  } else if (line == "\r\n") {
    client->headers_done_ = true;
  } else {
    parseHeaderLine(client->response_, line);
  }
  client->changed_.notify_all();
  return size * count;
}

size_t StreamClient::onBody(char* data, size_t size, size_t count, void* self) {
  auto* client = static_cast<StreamClient*>(self);
  std::lock_guard lock(client->mutex_);

  if (client->abort_) {
    return 0;  // makes curl drop the connection
  }
  client->response_.body.append(data, size * count);
  client->changed_.notify_all();
  return size * count;
}

bool StreamClient::waitFor(const std::function<bool(const Response&)>& ready,
                           std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return ready(response_) || done_; }) &&
         ready(response_);
}

bool StreamClient::waitForHeaders(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return headers_done_; });
}

bool StreamClient::waitForBody(const std::string& needle, std::chrono::milliseconds deadline) {
  return waitFor([&](const Response& r) { return r.body.find(needle) != std::string::npos; },
                 deadline);
}

void StreamClient::abort() {
  std::lock_guard lock(mutex_);
  abort_ = true;
  // Shutting the socket down makes the drop immediate, even while the stream is silent.
  if (socket_ >= 0 && !done_) {
    shutdown(socket_, SHUT_RDWR);
  }
}

Response StreamClient::finish() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
  return response_;
}

Response StreamClient::snapshot() {
  std::lock_guard lock(mutex_);
  return response_;
}

Headers jsonHeaders(const std::string& api_key) {
  return {"Content-Type: application/json", "Authorization: Bearer " + api_key};
}

std::vector<std::string> sseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;

  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    std::string frame = body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? body.size() : end + 2;
    if (frame.starts_with("data: ")) {
      out.push_back(frame.substr(6));
    }
  }
  return out;
}

}  // namespace codex::test
