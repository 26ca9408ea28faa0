#include "cli/wiring.h"

#include <boost/json/serialize.hpp>

#include "crypto/jws.h"
#include "crypto/keys.h"
#include "http/client.h"

namespace moat::cli {
namespace {

class HttpTransport : public Transport {
 public:
  Result<HttpResponse> Send(const HttpRequest& request) override {
    http::ClientRequest req;
    req.method = request.method;
    req.url = request.url;
    for (const auto& [k, v] : request.headers) req.headers.Add(k, v);
    req.body = request.body;
    MOAT_TRY(http::ClientResponse resp, http::Fetch(req));
    HttpResponse out;
    out.status = resp.status;
    for (const auto& f : resp.headers) out.headers.emplace_back(f.name, f.value);
    out.body = std::move(resp.body);
    return out;
  }
};

class CryptoSigner : public Signer {
 public:
  Result<std::string> SignJwt(std::string_view private_key_pem, std::string_view key_id,
                              const boost::json::object& claims) override {
    auto key = crypto::PrivateKey::FromPem(private_key_pem);
    if (!key)
      return InvalidArgument("the key file's private_key is unusable: " + key.error().message);
    boost::json::object header{{"typ", "JWT"}, {"kid", key_id}};
    return crypto::EncodeJws(crypto::AlgForKey(key->type()), *key, std::move(header),
                             boost::json::serialize(claims));
  }
};

}  // namespace

std::unique_ptr<Transport> MakeHttpTransport() { return std::make_unique<HttpTransport>(); }
std::unique_ptr<Signer> MakeCryptoSigner() { return std::make_unique<CryptoSigner>(); }

}  // namespace moat::cli
