#include "gateway/pages.h"

#include "http/message.h"

namespace moat::gateway {
namespace {

std::string Frame(std::string_view title, std::string_view h1, std::string_view h2) {
  std::string out =
      "<html><head>\n"
      "<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n"
      "<title>";
  out += title;
  out += "</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: ";
  out += h1;
  out += "</h1>\n<h2>";
  out += h2;
  out += "</h2>\n<h2></h2>\n</body></html>\n";
  return out;
}

}  // namespace

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string ForbiddenPage(std::string_view path) {
  return Frame("403 Forbidden", "Forbidden",
               "Your client does not have permission to get URL <code>" + HtmlEscape(path) +
                   "</code> from this server.");
}

std::string UnauthorizedPage(std::string_view path) {
  return Frame("401 Unauthorized", "Unauthorized",
               "Your client does not have permission to the requested URL <code>" +
                   HtmlEscape(path) + "</code>.");
}

std::string ErrorPage(int status) {
  switch (status) {
    case 400:
      return Frame("400 Bad Request", "Bad Request",
                   "Your client has issued a malformed or illegal request.");
    case 404:
      return Frame("404 Page not found", "Page not found",
                   "The requested URL was not found on this server.");
    case 413:
      return Frame("413 Request Entity Too Large", "Request Entity Too Large",
                   "Your client issued a request that was too large.");
    case 502:
      return Frame("502 Bad Gateway", "Bad Gateway",
                   "The server encountered a temporary error and could not complete your "
                   "request.");
    case 503:
      return Frame("503 Service Unavailable", "Service Unavailable",
                   "The service is temporarily unavailable. Please try again later.");
    case 504:
      return Frame("504 Gateway Timeout", "Gateway Timeout",
                   "The upstream server did not respond in time.");
    default: {
      std::string code = std::to_string(status);
      std::string reason(http::ReasonPhrase(status));
      return Frame(code + " " + reason, reason, "The request could not be completed.");
    }
  }
}

namespace {
// "h.p." of a bearer JWT value, or "" when it is not one.
std::string_view UnsignedPart(std::string_view v) {
  size_t sp = v.find(' ');
  if (sp == std::string_view::npos || !http::IEquals(v.substr(0, sp), "bearer")) return {};
  std::string_view token = v.substr(sp + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  size_t d1 = token.find('.');
  if (d1 == std::string_view::npos || d1 == 0) return {};
  size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || d2 == d1 + 1) return {};
  if (token.find('.', d2 + 1) != std::string_view::npos) return {};
  return token.substr(0, d2 + 1);
}
}  // namespace

std::optional<std::string> StripJwtSignature(std::string_view v) {
  std::string_view unsigned_part = UnsignedPart(v);
  if (unsigned_part.empty()) return std::nullopt;
  std::string out = "Bearer ";
  out.append(unsigned_part);
  out.append(kSignatureRemoved);
  return out;
}

bool AppendStrippedJwtField(std::string* out, std::string_view name, std::string_view v) {
  std::string_view unsigned_part = UnsignedPart(v);
  if (unsigned_part.empty()) return false;
  out->append(name);
  out->append(": Bearer ");
  out->append(unsigned_part);
  out->append(kSignatureRemoved);
  out->append("\r\n");
  return true;
}

}  // namespace moat::gateway
