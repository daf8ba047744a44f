// The household's address from a "what is my IP" service over HTTPS, with libcurl.
#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "mailguard/outside/address.hpp"

namespace mailguard::outside {
namespace {

struct EasyFree {
  void operator()(CURL* p) const noexcept { curl_easy_cleanup(p); }
};
using EasyPtr = std::unique_ptr<CURL, EasyFree>;

// curl_global_init is not thread-safe in every libcurl build: once, before the first use.
void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Body {
  std::string text;
  bool tooLong = false;
};

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t n = size * count;
  if (body->text.size() + n > HttpsAddressSource::kMaxBody) {
    body->tooLong = true;
    return 0;  // ends the transfer (CURLE_WRITE_ERROR)
  }
  body->text.append(data, n);
  return n;
}

}  // namespace

Result<std::vector<std::string>> HttpsAddressSource::ask() {
  globalInit();
  EasyPtr curl(curl_easy_init());
  if (!curl) return makeError("libcurl could not start a transfer");
  Body body;
  char detail[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
  // https only, also after a redirect; certificate and host name verified (libcurl's
  // default, said here so nobody turns it off by accident).
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!caFile_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, caFile_.c_str());
  // The IPv4 address is the one wanted: over IPv6 the service would see another one. A
  // proxy (https_proxy in the environment) would make it see the proxy's.
  curl_easy_setopt(c, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  // No signals: this runs on a worker thread of guardd (libcurl's resolver timeouts would
  // otherwise use SIGALRM).
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mailguard");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  const CURLcode r = curl_easy_perform(c);
  if (body.tooLong) {
    return makeError("the answer is longer than " + std::to_string(kMaxBody) +
                     " bytes: not one address");
  }
  if (r != CURLE_OK) {
    return makeError(std::string(curl_easy_strerror(r)) + (detail[0] != '\0' ? ": " : "") + detail);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) {
    return makeError("the service answered HTTP status " + std::to_string(status));
  }
  auto address = addressFromBody(body.text);
  if (!address) return address.error();
  return std::vector<std::string>{std::move(*address)};
}

}  // namespace mailguard::outside
