// http:// base URLs as users write them on the command line ("http://host:port[/prefix]",
// "host:port", "[v6]:port"): used by `inferd bench serve` and `inferd router`.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "inferd/status.h"

namespace inferd {

struct BaseUrl {
  std::string host;         // "127.0.0.1", "localhost", "::1" (brackets removed)
  std::string port = "80";  // service string for the resolver
  std::string prefix;       // path before the endpoint, without a trailing '/': "" or "/proxy"
};

// Accepts "http://host[:port][/prefix]", "host:port" and "[v6]:port". https: InvalidArgument.
StatusOr<BaseUrl> ParseBaseUrl(std::string_view url);

// The Host header value for a URL: "host" or "host:port", IPv6 in brackets.
std::string HostHeader(const BaseUrl& url);

// "host:port" with IPv6 in brackets: the label that names a backend in logs and metrics.
std::string HostPort(const BaseUrl& url);

// The value of `name` in a URL query string ("a=1&api_key=x%2By"), percent-decoded and with
// '+' as a space (application/x-www-form-urlencoded, as browsers send it); the first
// occurrence; nullopt when absent or when its encoding is malformed ("%zz").
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

}  // namespace inferd
