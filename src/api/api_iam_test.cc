// Tests of the apiiam handlers (service accounts, keys, IAM Credentials, OAuth2 token endpoint,
// discovery, directory, ops), called through the Router over a MemoryStore and a LiveState with
// real identity objects (ServiceAccounts, SigningKeyManager, TokenIssuer, Verifier).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/routes.h"
#include "common/base64.h"
#include "common/json.h"
#include "common/random.h"
#include "common/time.h"
#include "crypto/jwk.h"
#include "crypto/jwt.h"
#include "crypto/x509.h"
#include "identity/credentials_keys.h"
#include "identity/records.h"
#include "identity/service_accounts.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "identity/verifier.h"
#include "state/live_state.h"
#include "store/memory_store.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

constexpr char kOrigin[] = "http://127.0.0.1:8081";
constexpr char kOwner[] = "user:owner@example.com";
constexpr char kAdmin[] = "user:admin@example.com";  // serviceAccountAdmin + keyAdmin on p
constexpr char kViewer[] = "user:viewer@example.com";
constexpr char kAlice[] = "user:alice@example.com";
constexpr char kOutsider[] = "user:mallory@example.com";
constexpr char kSas[] = "/v1/projects/p/serviceAccounts";

// A MemoryStore whose read-write transactions fail AppendAudit while `fail_audit` is set, to
// show that a mutation and its audit entry commit together (or not at all).
class AuditFailingStore : public store::MemoryStore {
 public:
  using MemoryStore::MemoryStore;
  std::atomic<bool> fail_audit{false};

  Result<std::unique_ptr<store::Transaction>> Begin() override {
    MOAT_TRY(auto inner, MemoryStore::Begin());
    return std::unique_ptr<store::Transaction>(new Tx(std::move(inner), fail_audit));
  }

 private:
  class Tx : public store::Transaction {
   public:
    Tx(std::unique_ptr<store::Transaction> inner, const std::atomic<bool>& fail)
        : inner_(std::move(inner)), fail_(fail) {}
    bool read_only() const override { return inner_->read_only(); }
    Result<std::optional<store::Document>> Get(Collection c, std::string_view key) override {
      return inner_->Get(c, key);
    }
    Result<store::ListPage> List(Collection c, const store::ListOptions& o) override {
      return inner_->List(c, o);
    }
    Result<store::Document> Put(Collection c, std::string_view key, std::string_view data,
                                const store::PutOptions& o) override {
      return inner_->Put(c, key, data, o);
    }
    Result<bool> Delete(Collection c, std::string_view key, const store::Precondition& p) override {
      return inner_->Delete(c, key, p);
    }
    Status AppendAudit(const store::AuditEntry& entry) override {
      if (fail_.load()) return Unavailable("the audit log cannot be written");
      return inner_->AppendAudit(entry);
    }
    Result<int64_t> Commit() override { return inner_->Commit(); }
    void Rollback() override { inner_->Rollback(); }

   private:
    std::unique_ptr<store::Transaction> inner_;
    const std::atomic<bool>& fail_;
  };
};

struct Reply {
  int status = 0;
  bj::value body;
  std::string raw;
  http::Headers headers;
  int64_t revision = 0;
  const bj::object& obj() const { return body.as_object(); }
  std::string Str(std::string_view key) const {
    if (!body.is_object()) return "";
    auto* v = body.as_object().if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  }
  std::string ErrorStatus() const {
    if (!body.is_object() || !body.as_object().contains("error")) return "";
    return std::string(body.at("error").at("status").as_string());
  }
  std::string ErrorMessage() const {
    return std::string(body.at("error").at("message").as_string());
  }
};

std::string FormEncode(std::initializer_list<std::pair<std::string, std::string>> fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += '&';
    out += k + '=';
    for (unsigned char c : v) {
      if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
  }
  return out;
}

class ApiIamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(std::chrono::system_clock::now());
    auto failing = std::make_unique<AuditFailingStore>(&clock_);
    failing_ = failing.get();
    store_ = std::move(failing);
    PutPolicy("root",
              R"({"bindings":[{"role":"roles/owner","members":["user:owner@example.com"]}]})");
    PutPolicy("projects/p", R"({"bindings":[
        {"role":"roles/iam.serviceAccountAdmin","members":["user:admin@example.com"]},
        {"role":"roles/iam.serviceAccountKeyAdmin","members":["user:admin@example.com"]},
        {"role":"roles/viewer","members":["user:viewer@example.com"]}]})");
    live_ = std::make_unique<state::LiveState>(*store_);
    ASSERT_TRUE(live_->Start());
    master_ = RandomBytes(32);
    signing_ = std::make_unique<identity::SigningKeyManager>(*store_, master_, clock_);
    ASSERT_TRUE(signing_->Rotate());
    system_keys_ = std::make_unique<identity::SystemManagedKeys>(*store_, master_, clock_);
    issuer_ = std::make_unique<identity::TokenIssuer>(*signing_, clock_,
                                                      identity::IssuerUrls::For(kOrigin));
    identity::VerifierOptions vo;
    vo.issuer = kOrigin;
    vo.api_origin = kOrigin;
    identity::VerifierDeps vd;
    vd.clock = &clock_;
    vd.directory = [this] { return live_->Current()->directory; };
    vd.signing_keys = signing_.get();
    vd.system_keys = system_keys_.get();
    verifier_ = std::make_unique<identity::Verifier>(vo, vd);
    identity::KeyFileOptions ko;
    ko.token_uri = std::string(kOrigin) + "/token";
    ko.api_origin = kOrigin;
    accounts_ = std::make_unique<identity::ServiceAccounts>(*store_, clock_, ko);

    env_.config.api_base = kOrigin;
    env_.config.issuer = kOrigin;
    env_.config.max_revision_wait = std::chrono::milliseconds(5000);
    env_.store = store_.get();
    env_.live = live_.get();
    env_.clock = &clock_;
    env_.verifier = verifier_.get();
    env_.issuer = issuer_.get();
    env_.signing = signing_.get();
    env_.accounts = accounts_.get();
    env_.extra_metrics = [] { return std::string("gateway_requests_total 7"); };
    Authenticator real = MakeVerifierAuthenticator(*verifier_);
    // "Bearer user:EMAIL" / "Bearer serviceAccount:EMAIL" pick the caller; anything else goes
    // through the real verifier.
    env_.authenticate = [real](const http::Request& req) -> Result<Caller> {
      std::string_view auth = req.headers.Get("Authorization");
      if (auth.starts_with("Bearer user:") || auth.starts_with("Bearer serviceAccount:")) {
        Caller c;
        std::string member(auth.substr(7));
        c.principal = member.starts_with("user:")
                          ? iam::Principal::User(member.substr(5))
                          : iam::Principal::ServiceAccount(member.substr(15));
        c.member = member;
        return c;
      }
      return real(req);
    };
    RegisterIamServiceAccountRoutes(router_, env_);
    RegisterIamKeyRoutes(router_, env_);
    RegisterCredentialsRoutesWith(router_, env_, system_keys_.get());
    RegisterOAuthRoutes(router_, env_);
    RegisterDiscoveryRoutesWith(router_, env_, system_keys_.get());
    RegisterDirectoryRoutes(router_, env_);
    RegisterOpsRoutes(router_, env_);
    RegisterRunServiceRoutes(router_, env_);  // to create a service for the logs endpoint
  }
  void TearDown() override { live_->Stop(); }

  void PutPolicy(const std::string& key, const std::string& json) {
    auto rev = store_->Put(Collection::kPolicies, key, json);
    ASSERT_TRUE(rev);
    if (live_) {
      ASSERT_TRUE(live_->WaitForRevision(rev->revision, std::chrono::seconds(5)));
    }
  }

  Reply Call(const std::string& method, const std::string& target, const std::string& caller,
             const std::string& body = "", const std::string& content_type = "") {
    http::Request req;
    req.method = method;
    req.target = target;
    size_t q = target.find('?');
    EXPECT_TRUE(http::PercentDecode(std::string_view(target).substr(0, q), &req.path, false));
    if (q != std::string::npos) req.query = http::ParseQuery(target.substr(q + 1));
    if (!caller.empty()) req.headers.Add("Authorization", "Bearer " + caller);
    if (!content_type.empty()) req.headers.Add("Content-Type", content_type);
    req.body = body;
    req.request_id = "req-" + std::to_string(++request_counter_);
    http::Response resp = router_.Dispatch(req);
    Reply r;
    r.status = resp.status;
    r.raw = resp.body;
    r.headers = resp.headers;
    if (resp.headers.Get("Content-Type").starts_with("application/json")) {
      auto parsed = json::Parse(resp.body, "response");
      EXPECT_TRUE(parsed) << resp.body;
      if (parsed) r.body = *parsed;
    }
    std::string_view rev = resp.headers.Get("X-Moat-Revision");
    if (!rev.empty()) {
      r.revision = std::stoll(std::string(rev));
      EXPECT_TRUE(live_->WaitForRevision(r.revision, std::chrono::seconds(5)));
    }
    return r;
  }

  Reply PostToken(const std::string& form) {
    return Call("POST", "/token", "", form, "application/x-www-form-urlencoded");
  }

  // Creates projects/p/serviceAccounts/ID@p.iam.gserviceaccount.com as the owner.
  std::string CreateSa(const std::string& id) {
    Reply r = Call("POST", kSas, kOwner, R"({"accountId":")" + id + R"("})");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.Str("email");
  }

  std::vector<store::AuditRecord> Audits(const std::string& method) {
    store::AuditQuery q;
    q.page_size = 1000;
    auto page = store_->QueryAudit(q);
    EXPECT_TRUE(page);
    std::vector<store::AuditRecord> out;
    for (auto& r : page->records) {
      if (r.entry.method == method) out.push_back(r);
    }
    return out;
  }

  static bj::object Claims(const std::string& jwt) {
    auto d = crypto::DecodeUnverified(jwt);
    EXPECT_TRUE(d);
    return d ? d->claims : bj::object();
  }

  // Verifies a Moat-issued token against the published JWKS (GET /oauth2/v3/certs).
  bool VerifiesWithMoatJwks(const std::string& token, const std::string& audience) {
    Reply certs = Call("GET", "/oauth2/v3/certs", "");
    auto set = crypto::ParseJwks(certs.raw);
    if (!set) return false;
    crypto::JwtVerifyOptions o;
    o.issuers = {kOrigin};
    o.audiences = {audience};
    o.clock = &clock_;
    return crypto::VerifyJwt(token, crypto::JwksKeyLookup(std::make_shared<crypto::JwkSet>(*set)),
                             o)
        .has_value();
  }

  FakeClock clock_;
  AuditFailingStore* failing_ = nullptr;  // = store_
  std::unique_ptr<store::MemoryStore> store_;
  std::unique_ptr<state::LiveState> live_;
  std::string master_;
  std::unique_ptr<identity::SigningKeyManager> signing_;
  std::unique_ptr<identity::SystemManagedKeys> system_keys_;
  std::unique_ptr<identity::TokenIssuer> issuer_;
  std::unique_ptr<identity::Verifier> verifier_;
  std::unique_ptr<identity::ServiceAccounts> accounts_;
  Env env_;
  http::Router router_;
  std::atomic<int> request_counter_{0};
};

// A key file returned by keys.create, parsed.
struct KeyFile {
  std::string key_id, email, client_id, token_uri;
  std::shared_ptr<crypto::PrivateKey> key;
};

KeyFile ParseKeyFile(const Reply& created) {
  KeyFile kf;
  auto raw = Base64Decode(created.Str("privateKeyData"));
  EXPECT_TRUE(raw.has_value());
  if (!raw) return kf;
  auto file = json::ParseObject(*raw, "key file");
  EXPECT_TRUE(file);
  if (!file) return kf;
  EXPECT_EQ(file->at("type").as_string(), "service_account");
  kf.key_id = std::string(file->at("private_key_id").as_string());
  kf.email = std::string(file->at("client_email").as_string());
  kf.client_id = std::string(file->at("client_id").as_string());
  kf.token_uri = std::string(file->at("token_uri").as_string());
  auto pk = crypto::PrivateKey::FromPem(std::string(file->at("private_key").as_string()));
  EXPECT_TRUE(pk);
  if (pk) kf.key = std::make_shared<crypto::PrivateKey>(std::move(*pk));
  return kf;
}

std::string Assertion(const KeyFile& kf, const Clock& clock, bj::object extra,
                      bool with_kid = true) {
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(clock.Now().time_since_epoch()).count();
  bj::object claims{{"iss", kf.email},
                    {"aud", "https://oauth2.googleapis.com/token"},
                    {"iat", now},
                    {"exp", now + 3600}};
  for (auto& kv : extra) claims[kv.key()] = kv.value();
  auto jwt = crypto::EncodeJwt(crypto::JwsAlg::kRs256, *kf.key, with_kid ? kf.key_id : "", claims);
  EXPECT_TRUE(jwt);
  return jwt ? *jwt : "";
}

// --- service accounts ---------------------------------------------------------------------

TEST_F(ApiIamTest, CreateGetListServiceAccountsWithGoogleJson) {
  Reply c =
      Call("POST", kSas, kAdmin,
           R"({"accountId":"runner","serviceAccount":{"displayName":"Runner","description":"d"}})");
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_GT(c.revision, 0);
  EXPECT_EQ(c.Str("name"), "projects/p/serviceAccounts/runner@p.iam.gserviceaccount.com");
  EXPECT_EQ(c.Str("email"), "runner@p.iam.gserviceaccount.com");
  EXPECT_EQ(c.Str("projectId"), "p");
  EXPECT_EQ(c.Str("displayName"), "Runner");
  EXPECT_EQ(c.Str("description"), "d");
  EXPECT_EQ(c.Str("uniqueId").size(), 21u);
  EXPECT_EQ(c.Str("oauth2ClientId"), c.Str("uniqueId"));
  EXPECT_FALSE(c.Str("etag").empty());
  EXPECT_FALSE(c.obj().contains("disabled"));
  ASSERT_EQ(Audits("google.iam.admin.v1.CreateServiceAccount").size(), 1u);
  EXPECT_EQ(Audits("google.iam.admin.v1.CreateServiceAccount")[0].entry.principal, kAdmin);

  // By email (percent-encoded), by uniqueId, through the `-` wildcard.
  Reply g = Call("GET", std::string(kSas) + "/runner%40p.iam.gserviceaccount.com", kViewer);
  ASSERT_EQ(g.status, 200) << g.raw;
  EXPECT_EQ(g.Str("uniqueId"), c.Str("uniqueId"));
  EXPECT_EQ(Call("GET", std::string(kSas) + "/" + c.Str("uniqueId"), kViewer).status, 200);
  EXPECT_EQ(Call("GET", "/v1/projects/-/serviceAccounts/RUNNER@p.iam.gserviceaccount.com", kViewer)
                .Str("email"),
            "runner@p.iam.gserviceaccount.com");

  CreateSa("second");
  Reply l1 = Call("GET", std::string(kSas) + "?pageSize=1", kViewer);
  ASSERT_EQ(l1.status, 200) << l1.raw;
  ASSERT_EQ(l1.obj().at("accounts").as_array().size(), 1u);
  ASSERT_FALSE(l1.Str("nextPageToken").empty());
  Reply l2 =
      Call("GET", std::string(kSas) + "?pageSize=1&pageToken=" + l1.Str("nextPageToken"), kViewer);
  ASSERT_EQ(l2.status, 200) << l2.raw;
  EXPECT_EQ(l2.obj().at("accounts").as_array().size(), 1u);
  EXPECT_FALSE(l2.obj().contains("nextPageToken"));
  // An empty project lists nothing (proto3 JSON omits the empty field).
  Reply empty = Call("GET", "/v1/projects/q/serviceAccounts", kOwner);
  EXPECT_EQ(empty.status, 200);
  EXPECT_TRUE(empty.obj().empty()) << empty.raw;
}

TEST_F(ApiIamTest, ServiceAccountErrors) {
  Reply bad = Call("POST", kSas, kOwner, R"({"accountId":"ab"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorStatus(), "INVALID_ARGUMENT");
  EXPECT_NE(bad.ErrorMessage().find("6-30"), std::string::npos) << bad.ErrorMessage();
  Reply unknown = Call("POST", kSas, kOwner, R"({"accountId":"abcdef","bogus":1})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.ErrorMessage().find("Unknown name \"bogus\""), std::string::npos);
  Reply unknown_inner =
      Call("POST", kSas, kOwner, R"({"accountId":"abcdef","serviceAccount":{"x":1}})");
  EXPECT_EQ(unknown_inner.status, 400);
  EXPECT_NE(unknown_inner.ErrorMessage().find("Unknown name \"x\""), std::string::npos);

  CreateSa("runner");
  Reply dup = Call("POST", kSas, kOwner, R"({"accountId":"runner"})");
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.ErrorStatus(), "ALREADY_EXISTS");
  EXPECT_EQ(dup.ErrorMessage(), "Service account ID already exists within project projects/p.");

  Reply anon = Call("POST", kSas, "", R"({"accountId":"abcdef"})");
  EXPECT_EQ(anon.status, 401);
  Reply denied = Call("POST", kSas, kViewer, R"({"accountId":"abcdef"})");
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(denied.ErrorMessage(),
            "Permission 'iam.serviceAccounts.create' denied on resource 'projects/p' (or it may "
            "not exist).");
  // A missing account: NOT_FOUND for who may look, PERMISSION_DENIED for who may not, and
  // always PERMISSION_DENIED through the `-` wildcard (GOOGLE.md §3.4).
  EXPECT_EQ(Call("GET", std::string(kSas) + "/nobody@p.iam.gserviceaccount.com", kOwner).status,
            404);
  EXPECT_EQ(Call("GET", std::string(kSas) + "/nobody@p.iam.gserviceaccount.com", kOutsider).status,
            403);
  EXPECT_EQ(
      Call("GET", "/v1/projects/-/serviceAccounts/nobody@p.iam.gserviceaccount.com", kOwner).status,
      403);
  EXPECT_EQ(Call("GET", std::string(kSas) + "/runner@p.iam.gserviceaccount.com", kOutsider).status,
            403);
  // PATCH needs a mask.
  EXPECT_EQ(Call("PATCH", std::string(kSas) + "/runner@p.iam.gserviceaccount.com", kOwner,
                 R"({"serviceAccount":{"displayName":"x"}})")
                .status,
            400);
}

TEST_F(ApiIamTest, PatchDisableDeleteUndelete) {
  std::string email = CreateSa("runner");
  std::string one = std::string(kSas) + "/" + email;
  Reply p = Call(
      "PATCH", one, kAdmin,
      R"({"serviceAccount":{"displayName":"New","description":"nd"},"updateMask":"displayName"})");
  ASSERT_EQ(p.status, 200) << p.raw;
  EXPECT_EQ(p.Str("displayName"), "New");
  EXPECT_EQ(p.Str("description"), "");
  Reply put = Call("PUT", one, kAdmin, R"({"displayName":"Put","email":")" + email + R"("})");
  ASSERT_EQ(put.status, 200) << put.raw;
  EXPECT_EQ(put.Str("displayName"), "Put");
  EXPECT_EQ(
      Call("PATCH", one, kViewer, R"({"serviceAccount":{},"updateMask":"displayName"})").status,
      403);

  Reply dis = Call("POST", one + ":disable", kAdmin, "{}");
  ASSERT_EQ(dis.status, 200) << dis.raw;
  EXPECT_TRUE(dis.obj().empty());
  EXPECT_EQ(Call("GET", one, kAdmin).obj().at("disabled"), true);
  EXPECT_EQ(Call("POST", one + ":enable", kAdmin, "").status, 200);
  EXPECT_FALSE(Call("GET", one, kAdmin).obj().contains("disabled"));

  std::string uid = Call("GET", one, kAdmin).Str("uniqueId");
  Reply del = Call("DELETE", one, kAdmin);
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_TRUE(del.obj().empty());
  EXPECT_EQ(Call("GET", one, kAdmin).status, 404);
  EXPECT_EQ(
      Call("POST", "/v1/projects/-/serviceAccounts/" + uid + ":undelete", kViewer, "{}").status,
      403);
  Reply und = Call("POST", "/v1/projects/-/serviceAccounts/" + uid + ":undelete", kAdmin, "{}");
  ASSERT_EQ(und.status, 200) << und.raw;
  EXPECT_EQ(und.obj().at("restoredAccount").at("email").as_string(), email);
  EXPECT_EQ(Call("GET", one, kAdmin).status, 200);
  for (const char* m : {"PatchServiceAccount", "UpdateServiceAccount", "DisableServiceAccount",
                        "EnableServiceAccount", "DeleteServiceAccount", "UndeleteServiceAccount"}) {
    EXPECT_EQ(Audits(std::string("google.iam.admin.v1.") + m).size(), 1u) << m;
  }
}

// --- keys and the token endpoint -----------------------------------------------------------

TEST_F(ApiIamTest, KeyFileSignsAssertionsTheTokenEndpointAccepts) {
  std::string email = CreateSa("runner");
  std::string keys = std::string(kSas) + "/" + email + "/keys";
  EXPECT_EQ(Call("POST", keys, kViewer, "{}").status, 403);
  Reply created =
      Call("POST", keys, kAdmin, R"({"privateKeyType":"TYPE_GOOGLE_CREDENTIALS_FILE"})");
  ASSERT_EQ(created.status, 200) << created.raw;
  EXPECT_EQ(created.Str("privateKeyType"), "TYPE_GOOGLE_CREDENTIALS_FILE");
  EXPECT_EQ(created.Str("keyAlgorithm"), "KEY_ALG_RSA_2048");
  KeyFile kf = ParseKeyFile(created);
  ASSERT_TRUE(kf.key);
  EXPECT_EQ(kf.email, email);
  EXPECT_EQ(kf.token_uri, std::string(kOrigin) + "/token");
  EXPECT_EQ(created.Str("name"), "projects/p/serviceAccounts/" + email + "/keys/" + kf.key_id);
  // The audit entry names the key, never the key file.
  auto audits = Audits("google.iam.admin.v1.CreateServiceAccountKey");
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0].entry.details.find("privateKey"), std::string::npos);
  EXPECT_EQ(audits[0].entry.details.find("PRIVATE"), std::string::npos);

  // target_audience → an ID token for that audience, about the account.
  Reply id = PostToken(FormEncode(
      {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
       {"assertion", Assertion(kf, clock_, {{"target_audience", "https://svc.example"}})}}));
  ASSERT_EQ(id.status, 200) << id.raw;
  EXPECT_EQ(id.headers.Get("Cache-Control"), "no-store");
  bj::object claims = Claims(id.Str("id_token"));
  EXPECT_EQ(claims.at("aud"), "https://svc.example");
  EXPECT_EQ(claims.at("iss"), kOrigin);
  EXPECT_EQ(claims.at("email").as_string(), email);
  EXPECT_EQ(claims.at("sub").as_string(), kf.client_id);
  EXPECT_TRUE(VerifiesWithMoatJwks(id.Str("id_token"), "https://svc.example"));
  // Node's gtoken sends no kid.
  Reply nokid = PostToken(FormEncode(
      {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
       {"assertion", Assertion(kf, clock_, {{"target_audience", "https://a"}}, false)}}));
  EXPECT_EQ(nokid.status, 200) << nokid.raw;
  // scope → an access token the API accepts.
  Reply at = PostToken(FormEncode(
      {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
       {"assertion",
        Assertion(kf, clock_, {{"scope", "https://www.googleapis.com/auth/cloud-platform"}})}}));
  ASSERT_EQ(at.status, 200) << at.raw;
  EXPECT_EQ(at.Str("token_type"), "Bearer");
  EXPECT_TRUE(at.obj().at("expires_in").is_int64());
  // The account has no permission on p: its access token authenticates (403, not 401).
  EXPECT_EQ(Call("GET", kSas, at.Str("access_token")).status, 403);
  PutPolicy("projects/p", R"({"bindings":[{"role":"roles/viewer","members":["serviceAccount:)" +
                              email + R"("]}]})");
  EXPECT_EQ(Call("GET", kSas, at.Str("access_token")).status, 200);

  // Bad requests in OAuth's format.
  Reply bad_grant = PostToken("grant_type=magic");
  EXPECT_EQ(bad_grant.status, 400);
  EXPECT_EQ(bad_grant.Str("error"), "unsupported_grant_type");
  Reply garbage = PostToken(FormEncode(
      {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", "x.y.z"}}));
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(garbage.Str("error"), "invalid_grant");
  EXPECT_EQ(PostToken("grant_type=password&grant_type=password").Str("error"), "invalid_request");
  EXPECT_EQ(Call("POST", "/token", "", "{}", "application/json").Str("error"), "invalid_request");
}

TEST_F(ApiIamTest, KeyListGetDisableDelete) {
  std::string email = CreateSa("runner");
  std::string keys = std::string(kSas) + "/" + email + "/keys";
  Reply created = Call("POST", keys, kAdmin, "{}");
  ASSERT_EQ(created.status, 200) << created.raw;
  KeyFile kf = ParseKeyFile(created);
  ASSERT_TRUE(kf.key);
  std::string key = keys + "/" + kf.key_id;

  Reply list = Call("GET", keys, kViewer);
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.obj().at("keys").as_array().size(), 1u);
  EXPECT_EQ(list.obj().at("keys").as_array()[0].at("keyType"), "USER_MANAGED");
  EXPECT_FALSE(list.obj().at("keys").as_array()[0].as_object().contains("privateKeyData"));
  EXPECT_EQ(Call("GET", keys + "?keyTypes=USER_MANAGED&keyTypes=SYSTEM_MANAGED", kViewer)
                .obj()
                .at("keys")
                .as_array()
                .size(),
            1u);
  EXPECT_EQ(Call("GET", keys + "?keyTypes=KEY_TYPE_UNSPECIFIED", kViewer).status, 400);
  EXPECT_EQ(Call("GET", keys, kOutsider).status, 403);

  Reply get = Call("GET", key, kViewer);
  ASSERT_EQ(get.status, 200) << get.raw;
  EXPECT_FALSE(get.obj().contains("publicKeyData"));
  Reply pem = Call("GET", key + "?publicKeyType=TYPE_X509_PEM_FILE", kViewer);
  ASSERT_EQ(pem.status, 200);
  auto cert = Base64Decode(pem.Str("publicKeyData"));
  ASSERT_TRUE(cert);
  EXPECT_NE(cert->find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(Call("GET", key + "?publicKeyType=BOGUS", kViewer).status, 400);
  EXPECT_EQ(Call("GET", keys + "/0123456789012345678901234567890123456789", kViewer).status, 404);

  // The public key is published for the account.
  Reply x509 = Call("GET", "/robot/v1/metadata/x509/" + email, "");
  ASSERT_EQ(x509.status, 200) << x509.raw;
  EXPECT_TRUE(x509.obj().contains(kf.key_id));

  // Disabled: assertions signed with it are refused, and it leaves the published keys.
  EXPECT_EQ(Call("POST", key + ":disable", kViewer, "{}").status, 403);
  Reply dis = Call("POST", key + ":disable", kAdmin, "{}");
  ASSERT_EQ(dis.status, 200) << dis.raw;
  EXPECT_EQ(Call("GET", key, kViewer).obj().at("disabled"), true);
  std::string form = FormEncode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                                 {"assertion", Assertion(kf, clock_, {{"target_audience", "a"}})}});
  Reply refused = PostToken(form);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.Str("error"), "invalid_grant");
  EXPECT_FALSE(Call("GET", "/robot/v1/metadata/x509/" + email, "").obj().contains(kf.key_id));
  ASSERT_EQ(Call("POST", key + ":enable", kAdmin, "{}").status, 200);
  EXPECT_EQ(PostToken(form).status, 200);

  Reply del = Call("DELETE", key, kAdmin);
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_EQ(Call("GET", key, kViewer).status, 404);
  EXPECT_EQ(PostToken(form).status, 400);
  for (const char* m : {"CreateServiceAccountKey", "DisableServiceAccountKey",
                        "EnableServiceAccountKey", "DeleteServiceAccountKey"}) {
    EXPECT_EQ(Audits(std::string("google.iam.admin.v1.") + m).size(), 1u) << m;
  }
}

TEST_F(ApiIamTest, UploadKey) {
  std::string email = CreateSa("runner");
  std::string keys = std::string(kSas) + "/" + email + "/keys";
  EXPECT_EQ(
      Call("POST", keys + ":upload", kAdmin, R"({"publicKeyData":"bm90IGEgY2VydA=="})").status,
      400);
  EXPECT_EQ(Call("POST", keys + ":upload", kAdmin, R"({})").status, 400);
  // A certificate of the caller's own key: registered, then usable for assertions.
  auto priv = crypto::PrivateKey::GenerateRsa2048();
  ASSERT_TRUE(priv);
  auto cert = crypto::CreateSelfSignedCertificate(*priv, "me", clock_.Now() - std::chrono::hours(1),
                                                  clock_.Now() + std::chrono::hours(24 * 30));
  ASSERT_TRUE(cert) << cert.error().message;
  std::string upload_body = R"({"publicKeyData":")" + Base64Encode(*cert) + R"("})";
  EXPECT_EQ(Call("POST", keys + ":upload", kViewer, upload_body).status, 403);
  Reply up = Call("POST", keys + ":upload", kAdmin, upload_body);
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.Str("keyOrigin"), "USER_PROVIDED");
  EXPECT_EQ(Audits("google.iam.admin.v1.UploadServiceAccountKey").size(), 1u);
  std::string name = up.Str("name");
  KeyFile kf;
  kf.email = email;
  kf.key_id = name.substr(name.rfind('/') + 1);
  kf.key = std::make_shared<crypto::PrivateKey>(std::move(*priv));
  Reply id =
      PostToken(FormEncode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                            {"assertion", Assertion(kf, clock_, {{"target_audience", "a"}})}}));
  EXPECT_EQ(id.status, 200) << id.raw;
  // The same public key cannot be registered twice.
  EXPECT_EQ(Call("POST", keys + ":upload", kAdmin, upload_body).status, 409);
}

// --- IAM Credentials ---------------------------------------------------------------------

TEST_F(ApiIamTest, GenerateIdTokenNeedsTokenCreatorNotOwner) {
  std::string target = CreateSa("target");
  std::string url = "/v1/projects/-/serviceAccounts/" + target + ":generateIdToken";
  std::string body = R"({"audience":"https://svc.example","includeEmail":true})";
  // Owner alone cannot mint tokens (GOOGLE.md §2).
  Reply owner = Call("POST", url, kOwner, body);
  EXPECT_EQ(owner.status, 403) << owner.raw;
  EXPECT_EQ(Call("POST", url, "", body).status, 401);
  PutPolicy(
      "projects/p/serviceAccounts/" + target,
      R"({"bindings":[{"role":"roles/iam.serviceAccountTokenCreator","members":["user:alice@example.com"]}]})");
  Reply ok = Call("POST", url, kAlice, body);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  bj::object claims = Claims(ok.Str("token"));
  EXPECT_EQ(claims.at("aud"), "https://svc.example");
  EXPECT_EQ(claims.at("email").as_string(), target);
  EXPECT_TRUE(VerifiesWithMoatJwks(ok.Str("token"), "https://svc.example"));
  // Unknown targets look like refusals.
  Reply missing = Call("POST",
                       "/v1/projects/-/serviceAccounts/nobody@p.iam.gserviceaccount.com:"
                       "generateIdToken",
                       kAlice, body);
  EXPECT_EQ(missing.status, 403);
  // The `-` is required (GOOGLE.md §7).
  EXPECT_EQ(
      Call("POST", "/v1/projects/p/serviceAccounts/" + target + ":generateIdToken", kAlice, body)
          .status,
      400);
  // generateAccessToken with the same role.
  Reply at = Call("POST", "/v1/projects/-/serviceAccounts/" + target + ":generateAccessToken",
                  kAlice, R"({"scope":["https://www.googleapis.com/auth/cloud-platform"]})");
  ASSERT_EQ(at.status, 200) << at.raw;
  EXPECT_FALSE(at.Str("accessToken").empty());
  EXPECT_FALSE(at.Str("expireTime").empty());
  // Audited, allowed and refused, never with the token.
  auto audits = Audits("google.iam.credentials.v1.IAMCredentials.GenerateIdToken");
  ASSERT_GE(audits.size(), 3u);
  int ok_count = 0, denied = 0;
  for (const auto& a : audits) {
    EXPECT_EQ(a.entry.details.find(ok.Str("token")), std::string::npos);
    ok_count += a.entry.status == "OK";
    denied += a.entry.status == "PERMISSION_DENIED";
  }
  EXPECT_EQ(ok_count, 1);
  EXPECT_GE(denied, 2);
}

TEST_F(ApiIamTest, DelegationChain) {
  std::string mid = CreateSa("middle");
  std::string target = CreateSa("target");
  PutPolicy(
      "projects/p/serviceAccounts/" + mid,
      R"({"bindings":[{"role":"roles/iam.serviceAccountTokenCreator","members":["user:alice@example.com"]}]})");
  std::string url = "/v1/projects/-/serviceAccounts/" + target + ":generateIdToken";
  std::string body =
      R"({"audience":"aud","delegates":["projects/-/serviceAccounts/)" + mid + R"("]})";
  EXPECT_EQ(Call("POST", url, kAlice, R"({"audience":"aud"})").status, 403);
  EXPECT_EQ(Call("POST", url, kAlice, body).status, 403);  // middle may not act on target yet
  PutPolicy(
      "projects/p/serviceAccounts/" + target,
      R"({"bindings":[{"role":"roles/iam.serviceAccountTokenCreator","members":["serviceAccount:)" +
          mid + R"("]}]})");
  Reply ok = Call("POST", url, kAlice, body);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(Claims(ok.Str("token")).at("sub").as_string(),
            Call("GET", std::string(kSas) + "/" + target, kOwner).Str("uniqueId"));
  EXPECT_EQ(Call("POST", url, kOutsider, body).status, 403);
}

TEST_F(ApiIamTest, SignJwtVerifiesAgainstAccountJwks) {
  std::string sa = CreateSa("signer");
  PutPolicy(
      "projects/p/serviceAccounts/" + sa,
      R"({"bindings":[{"role":"roles/iam.serviceAccountTokenCreator","members":["user:alice@example.com"]}]})");
  int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch()).count();
  bj::object claims{
      {"iss", sa}, {"sub", sa}, {"aud", "https://x.example"}, {"iat", now}, {"exp", now + 600}};
  bj::object body{{"payload", json::Serialize(claims)}};
  Reply r = Call("POST", "/v1/projects/-/serviceAccounts/" + sa + ":signJwt", kAlice,
                 json::Serialize(body));
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_FALSE(r.Str("keyId").empty());
  Reply jwk = Call("GET", "/service_accounts/v1/jwk/" + sa, "");
  ASSERT_EQ(jwk.status, 200) << jwk.raw;
  EXPECT_EQ(jwk.headers.Get("Cache-Control"), "public, max-age=300");
  auto set = crypto::ParseJwks(jwk.raw);
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->Find(r.Str("keyId")));
  crypto::JwtVerifyOptions o;
  o.issuers = {sa};
  o.audiences = {"https://x.example"};
  o.clock = &clock_;
  EXPECT_TRUE(crypto::VerifyJwt(r.Str("signedJwt"),
                                crypto::JwksKeyLookup(std::make_shared<crypto::JwkSet>(*set)), o));
  // signBlob with the same permission set.
  Reply blob = Call("POST", "/v1/projects/-/serviceAccounts/" + sa + ":signBlob", kAlice,
                    R"({"payload":")" + Base64Encode("hello") + R"("})");
  ASSERT_EQ(blob.status, 200) << blob.raw;
  EXPECT_FALSE(blob.Str("signedBlob").empty());
  EXPECT_EQ(Call("POST", "/v1/projects/-/serviceAccounts/" + sa + ":signJwt", kOwner,
                 json::Serialize(body))
                .status,
            403);
}

// --- discovery ---------------------------------------------------------------------------

TEST_F(ApiIamTest, DiscoveryAndJwksShapes) {
  Reply conf = Call("GET", "/.well-known/openid-configuration", "");
  ASSERT_EQ(conf.status, 200) << conf.raw;
  EXPECT_EQ(conf.Str("issuer"), kOrigin);
  EXPECT_EQ(conf.Str("jwks_uri"), std::string(kOrigin) + "/oauth2/v3/certs");
  Reply v3 = Call("GET", "/oauth2/v3/certs", "");
  ASSERT_EQ(v3.status, 200);
  EXPECT_EQ(v3.headers.Get("Cache-Control"), signing_->CacheControl());
  EXPECT_NE(v3.headers.Get("Cache-Control").find("max-age="), std::string::npos);
  ASSERT_FALSE(v3.obj().at("keys").as_array().empty());
  const bj::object& k = v3.obj().at("keys").as_array()[0].as_object();
  EXPECT_EQ(k.at("kty"), "RSA");
  EXPECT_TRUE(k.contains("kid"));
  EXPECT_TRUE(k.contains("n"));
  Reply v1 = Call("GET", "/oauth2/v1/certs", "");
  ASSERT_EQ(v1.status, 200);
  ASSERT_TRUE(v1.obj().contains(std::string(k.at("kid").as_string())));
  EXPECT_NE(std::string(v1.obj().at(std::string(k.at("kid").as_string())).as_string())
                .find("BEGIN CERTIFICATE"),
            std::string::npos);
  EXPECT_EQ(Call("GET", "/service_accounts/v1/jwk/nobody%40p.iam.gserviceaccount.com", "").status,
            404);
  EXPECT_EQ(Call("GET", "/robot/v1/metadata/x509/nobody@p.iam.gserviceaccount.com", "").status,
            404);
  std::string sa = CreateSa("runner");
  Reply none = Call("GET", "/service_accounts/v1/jwk/" + sa, "");
  ASSERT_EQ(none.status, 200) << none.raw;
  EXPECT_TRUE(none.obj().at("keys").as_array().empty());
}

// --- directory ---------------------------------------------------------------------------

TEST_F(ApiIamTest, UsersCrudPasswordLoginAndRefresh) {
  EXPECT_EQ(Call("POST", "/moat/v1/users", kAdmin, R"({"email":"bob@example.com"})").status, 403);
  Reply c = Call("POST", "/moat/v1/users", kOwner,
                 R"({"email":"Bob@Example.com","password":"correct horse","displayName":"Bob"})");
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.Str("email"), "bob@example.com");
  EXPECT_EQ(c.Str("name"), "users/bob@example.com");
  EXPECT_EQ(c.raw.find("assword"), std::string::npos) << c.raw;  // no hash, no password
  EXPECT_EQ(Call("POST", "/moat/v1/users", kOwner,
                 R"({"email":"bob@example.com","password":"correct horse"})")
                .status,
            409);
  EXPECT_EQ(
      Call("POST", "/moat/v1/users", kOwner, R"({"email":"x@example.com","password":"short"})")
          .status,
      400);
  EXPECT_EQ(Call("POST", "/moat/v1/users", kOwner, R"({"email":"x@example.com","pw":"x"})").status,
            400);
  Reply g = Call("GET", "/moat/v1/users/bob%40example.com", kOwner);
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.Str("displayName"), "Bob");
  EXPECT_EQ(Call("GET", "/moat/v1/users/nobody@example.com", kOwner).status, 404);
  EXPECT_EQ(Call("GET", "/moat/v1/users/bob@example.com", kOutsider).status, 403);
  ASSERT_EQ(Call("POST", "/moat/v1/users", kOwner, R"({"email":"carol@example.com"})").status, 200);
  Reply l = Call("GET", "/moat/v1/users?pageSize=1", kOwner);
  ASSERT_EQ(l.status, 200);
  EXPECT_EQ(l.obj().at("users").as_array().size(), 1u);
  EXPECT_FALSE(l.Str("nextPageToken").empty());
  EXPECT_EQ(l.raw.find("assword"), std::string::npos);

  // Password login → refresh token; refresh → access token; refresh + audience → ID token.
  Reply login = PostToken(FormEncode({{"grant_type", "password"},
                                      {"username", "bob@example.com"},
                                      {"password", "correct horse"}}));
  ASSERT_EQ(login.status, 200) << login.raw;
  std::string refresh = login.Str("refresh_token");
  ASSERT_FALSE(refresh.empty());
  EXPECT_EQ(PostToken(FormEncode({{"grant_type", "password"},
                                  {"username", "bob@example.com"},
                                  {"password", "wrong horse"}}))
                .Str("error"),
            "invalid_grant");
  Reply at = PostToken(FormEncode({{"grant_type", "refresh_token"}, {"refresh_token", refresh}}));
  ASSERT_EQ(at.status, 200) << at.raw;
  EXPECT_FALSE(at.Str("access_token").empty());
  Reply idt = PostToken(FormEncode({{"grant_type", "refresh_token"},
                                    {"refresh_token", refresh},
                                    {"target_audience", "https://svc.example"}}));
  ASSERT_EQ(idt.status, 200) << idt.raw;
  bj::object claims = Claims(idt.Str("id_token"));
  EXPECT_EQ(claims.at("aud"), "https://svc.example");
  // The whole refresh reply, with the ID token for the requested audience.
  EXPECT_FALSE(idt.Str("access_token").empty());
  EXPECT_EQ(idt.Str("token_type"), "Bearer");
  EXPECT_TRUE(idt.obj().contains("expires_in"));
  EXPECT_EQ(idt.headers.Get("Cache-Control"), "no-store");
  EXPECT_EQ(claims.at("email"), "bob@example.com");
  EXPECT_TRUE(VerifiesWithMoatJwks(idt.Str("id_token"), "https://svc.example"));
  // The user's access token authenticates the API.
  EXPECT_EQ(Call("GET", "/moat/v1/users", at.Str("access_token")).status, 403);

  // PATCH: displayName, password, disabled (one transaction, audited).
  Reply p = Call("PATCH", "/moat/v1/users/bob@example.com?updateMask=displayName,disabled", kOwner,
                 R"({"displayName":"Robert","disabled":true})");
  ASSERT_EQ(p.status, 200) << p.raw;
  EXPECT_EQ(p.Str("displayName"), "Robert");
  EXPECT_EQ(p.obj().at("disabled"), true);
  EXPECT_EQ(Audits("moat.v1.Users.UpdateUser").size(), 1u);
  EXPECT_EQ(PostToken(FormEncode({{"grant_type", "refresh_token"}, {"refresh_token", refresh}}))
                .Str("error"),
            "invalid_grant");
  EXPECT_EQ(Call("PATCH", "/moat/v1/users/bob@example.com?updateMask=email", kOwner, "{}").status,
            400);
  ASSERT_EQ(Call("PATCH", "/moat/v1/users/bob@example.com?updateMask=password,disabled", kOwner,
                 R"({"password":"battery staple","disabled":false})")
                .status,
            200);
  EXPECT_EQ(PostToken(FormEncode({{"grant_type", "password"},
                                  {"username", "bob@example.com"},
                                  {"password", "battery staple"}}))
                .status,
            200);
  EXPECT_EQ(Call("DELETE", "/moat/v1/users/bob@example.com", kOwner).status, 200);
  EXPECT_EQ(Call("GET", "/moat/v1/users/bob@example.com", kOwner).status, 404);
  EXPECT_EQ(Call("DELETE", "/moat/v1/users/bob@example.com", kOwner).status, 404);
}

TEST_F(ApiIamTest, GroupsCrudAndMembers) {
  Reply c =
      Call("POST", "/moat/v1/groups", kOwner,
           R"({"email":"devs@example.com","displayName":"Devs","members":["user:a@example.com"]})");
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.Str("name"), "groups/devs@example.com");
  EXPECT_EQ(Call("POST", "/moat/v1/groups", kOutsider, R"({"email":"x@example.com"})").status, 403);
  EXPECT_EQ(Call("POST", "/moat/v1/groups", kOwner, R"({"email":"devs@example.com"})").status, 409);
  Reply add = Call("POST", "/moat/v1/groups/devs@example.com:addMember", kOwner,
                   R"({"member":"serviceAccount:Runner@p.iam.gserviceaccount.com"})");
  ASSERT_EQ(add.status, 200) << add.raw;
  EXPECT_EQ(add.obj().at("members").as_array().size(), 2u);
  EXPECT_EQ(Call("POST", "/moat/v1/groups/devs@example.com:addMember", kOwner,
                 R"({"member":"alice@example.com"})")
                .status,
            400);
  Reply rm = Call("POST", "/moat/v1/groups/devs@example.com:removeMember", kOwner,
                  R"({"member":"user:a@example.com"})");
  ASSERT_EQ(rm.status, 200) << rm.raw;
  EXPECT_EQ(rm.obj().at("members").as_array().size(), 1u);
  Reply p = Call("PATCH", "/moat/v1/groups/devs@example.com?updateMask=description", kOwner,
                 R"({"description":"developers"})");
  ASSERT_EQ(p.status, 200) << p.raw;
  EXPECT_EQ(p.Str("description"), "developers");
  EXPECT_EQ(p.Str("displayName"), "Devs");
  // Membership reaches IAM: a group binding grants its members.
  PutPolicy("projects/p",
            R"({"bindings":[{"role":"roles/viewer","members":["group:devs@example.com"]}]})");
  EXPECT_EQ(Call("GET", kSas, "serviceAccount:runner@p.iam.gserviceaccount.com").status, 200);
  Reply l = Call("GET", "/moat/v1/groups", kOwner);
  ASSERT_EQ(l.status, 200);
  EXPECT_EQ(l.obj().at("groups").as_array().size(), 1u);
  EXPECT_EQ(Call("DELETE", "/moat/v1/groups/devs@example.com", kOwner).status, 200);
  EXPECT_EQ(Call("GET", "/moat/v1/groups/devs@example.com", kOwner).status, 404);
}

TEST_F(ApiIamTest, TrustedIssuersCrud) {
  std::string body =
      R"({"id":"corp","issuer":"https://idp.example.com","jwksUri":"https://idp.example.com/jwks","audiences":["moat"]})";
  EXPECT_EQ(Call("POST", "/moat/v1/trustedIssuers", kViewer, body).status, 403);
  Reply c = Call("POST", "/moat/v1/trustedIssuers", kOwner, body);
  ASSERT_EQ(c.status, 200) << c.raw;
  EXPECT_EQ(c.Str("name"), "trustedIssuers/corp");
  EXPECT_EQ(Call("POST", "/moat/v1/trustedIssuers", kOwner, body).status, 409);
  EXPECT_EQ(Call("POST", "/moat/v1/trustedIssuers", kOwner,
                 R"({"id":"bad","issuer":"http://evil.example","jwksUri":"https://x/j"})")
                .status,
            400);
  EXPECT_EQ(Call("GET", "/moat/v1/trustedIssuers/corp", kOwner).Str("jwksUri"),
            "https://idp.example.com/jwks");
  EXPECT_EQ(
      Call("GET", "/moat/v1/trustedIssuers", kOwner).obj().at("trustedIssuers").as_array().size(),
      1u);
  EXPECT_EQ(Call("DELETE", "/moat/v1/trustedIssuers/corp", kOwner).status, 200);
  EXPECT_EQ(Call("GET", "/moat/v1/trustedIssuers/corp", kOwner).status, 404);
  EXPECT_EQ(Audits("moat.v1.TrustedIssuers.CreateTrustedIssuer").size(), 1u);
  EXPECT_EQ(Audits("moat.v1.TrustedIssuers.DeleteTrustedIssuer").size(), 1u);
}

// --- ops ---------------------------------------------------------------------------------

TEST_F(ApiIamTest, HealthzAndMetrics) {
  Reply h = Call("GET", "/healthz", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.raw, "ok");
  CreateSa("runner");
  Reply m = Call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.headers.Get("Content-Type").find("text/plain"), std::string::npos);
  auto rev = store_->CurrentRevision();
  ASSERT_TRUE(rev);
  EXPECT_NE(m.raw.find("moat_store_revision " + std::to_string(*rev) + "\n"), std::string::npos)
      << m.raw;
  EXPECT_NE(m.raw.find("moat_live_state_revision "), std::string::npos);
  EXPECT_NE(m.raw.find("moat_api_responses_total{code=\"200\"} "), std::string::npos) << m.raw;
  EXPECT_NE(m.raw.find("gateway_requests_total 7\n"), std::string::npos);
}

TEST_F(ApiIamTest, ServiceLogs) {
  Reply svc = Call("POST", "/v2/projects/p/locations/us-central1/services?serviceId=hello", kOwner,
                   R"({"template":{"upstream":"http://127.0.0.1:9000"}})");
  ASSERT_EQ(svc.status, 200) << svc.raw;
  std::string logs = "/moat/v1/projects/p/locations/us-central1/services/hello:logs?limit=2";
  // No log source: 501.
  Reply none = Call("GET", logs, kOwner);
  EXPECT_EQ(none.status, 501) << none.raw;
  std::string seen_name;
  size_t seen_limit = 0;
  env_.service_logs = [&](const std::string& name, size_t limit) {
    seen_name = name;
    seen_limit = limit;
    return std::vector<ServiceLogLine>{{clock_.Now(), "stdout", "listening"},
                                       {clock_.Now(), "stderr", "oops"}};
  };
  Reply r = Call("GET", logs, kViewer);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(seen_name, "projects/p/locations/us-central1/services/hello");
  EXPECT_EQ(seen_limit, 2u);
  const auto& entries = r.obj().at("entries").as_array();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].at("severity"), "INFO");
  EXPECT_EQ(entries[0].at("textPayload"), "listening");
  EXPECT_EQ(entries[1].at("severity"), "ERROR");
  EXPECT_TRUE(entries[1].as_object().contains("timestamp"));
  EXPECT_EQ(Call("GET", logs, kOutsider).status, 403);
  EXPECT_EQ(
      Call("GET", "/moat/v1/projects/p/locations/us-central1/services/nope:logs", kOwner).status,
      404);
  EXPECT_EQ(Call("GET", logs.substr(0, logs.find('?')) + "?limit=-1", kOwner).status, 400);
}

// --- gaps: audit atomicity, system-managed keys, operations, metrics -------------------------

TEST_F(ApiIamTest, MutationAndAuditEntryCommitTogether) {
  std::string email = CreateSa("runner");
  std::string sa = std::string(kSas) + "/" + email;
  Reply key = Call("POST", sa + "/keys", kAdmin, "{}");
  ASSERT_EQ(key.status, 200) << key.raw;
  std::string key_path = sa + "/keys/" + ParseKeyFile(key).key_id;
  ASSERT_EQ(Call("POST", "/moat/v1/groups", kOwner, R"({"email":"team@example.com"})").status, 200);
  auto rev_before = store_->CurrentRevision();
  ASSERT_TRUE(rev_before);

  // The audit log cannot be written: every mutation fails and changes nothing.
  failing_->fail_audit = true;
  EXPECT_EQ(Call("POST", kSas, kOwner, R"({"accountId":"second"})").status, 503);
  EXPECT_EQ(Call("POST", sa + ":disable", kAdmin, "{}").status, 503);
  EXPECT_EQ(Call("PATCH", sa, kAdmin,
                 R"({"serviceAccount":{"displayName":"X"},"updateMask":"displayName"})")
                .status,
            503);
  EXPECT_EQ(Call("POST", sa + "/keys", kAdmin, "{}").status, 503);
  EXPECT_EQ(Call("POST", key_path + ":disable", kAdmin, "{}").status, 503);
  EXPECT_EQ(Call("DELETE", key_path, kAdmin).status, 503);
  EXPECT_EQ(Call("DELETE", sa, kAdmin).status, 503);
  EXPECT_EQ(Call("POST", "/moat/v1/users", kOwner, R"({"email":"bob@example.com"})").status, 503);
  EXPECT_EQ(Call("POST", "/moat/v1/groups/team@example.com:addMember", kOwner,
                 R"({"member":"user:bob@example.com"})")
                .status,
            503);
  EXPECT_EQ(Call("DELETE", "/moat/v1/groups/team@example.com", kOwner).status, 503);
  EXPECT_EQ(
      Call("POST", "/moat/v1/trustedIssuers", kOwner,
           R"({"id":"corp","issuer":"https://idp.example","jwksUri":"https://idp.example/k"})")
          .status,
      503);
  EXPECT_EQ(*store_->CurrentRevision(), *rev_before);
  failing_->fail_audit = false;

  EXPECT_EQ(Call("GET", std::string(kSas) + "/second@p.iam.gserviceaccount.com", kOwner).status,
            404);
  Reply got = Call("GET", sa, kOwner);
  ASSERT_EQ(got.status, 200);
  EXPECT_FALSE(got.obj().contains("disabled"));
  EXPECT_FALSE(got.obj().contains("displayName"));
  Reply keys = Call("GET", sa + "/keys?keyTypes=USER_MANAGED", kAdmin);
  ASSERT_EQ(keys.obj().at("keys").as_array().size(), 1u);
  EXPECT_FALSE(keys.obj().at("keys").as_array()[0].as_object().contains("disabled"));
  EXPECT_EQ(Call("GET", "/moat/v1/users/bob@example.com", kOwner).status, 404);
  Reply group = Call("GET", "/moat/v1/groups/team@example.com", kOwner);
  ASSERT_EQ(group.status, 200);
  EXPECT_TRUE(group.obj().at("members").as_array().empty());
  EXPECT_EQ(Call("GET", "/moat/v1/trustedIssuers/corp", kOwner).status, 404);

  // With the log back, each mutation is audited once, in the revision it answers with.
  Reply dis = Call("POST", sa + ":disable", kAdmin, "{}");
  ASSERT_EQ(dis.status, 200) << dis.raw;
  EXPECT_EQ(dis.revision, *store_->CurrentRevision());
  auto audits = Audits("google.iam.admin.v1.DisableServiceAccount");
  ASSERT_EQ(audits.size(), 1u);
  EXPECT_EQ(audits[0].entry.resource, "projects/p/serviceAccounts/" + email);
  EXPECT_EQ(audits[0].entry.principal, kAdmin);
  // An idempotent repeat is still audited (and answers a revision).
  Reply again = Call("POST", sa + ":disable", kAdmin, "{}");
  ASSERT_EQ(again.status, 200);
  EXPECT_GT(again.revision, 0);
  EXPECT_EQ(Audits("google.iam.admin.v1.DisableServiceAccount").size(), 2u);
  ASSERT_EQ(Call("DELETE", key_path, kAdmin).status, 200);
  auto key_audits = Audits("google.iam.admin.v1.DeleteServiceAccountKey");
  ASSERT_EQ(key_audits.size(), 1u);
  EXPECT_EQ(key_audits[0].entry.resource, key_path.substr(4));  // without "/v1/"
  ASSERT_EQ(Call("DELETE", "/moat/v1/groups/team@example.com", kOwner).status, 200);
  EXPECT_EQ(Audits("moat.v1.Groups.DeleteGroup").size(), 1u);
}

TEST_F(ApiIamTest, SystemManagedKeysListedGettableAndProtected) {
  env_.system_keys = system_keys_.get();
  std::string email = CreateSa("signer");
  std::string keys = std::string(kSas) + "/" + email + "/keys";
  Reply none = Call("GET", keys, kViewer);
  ASSERT_EQ(none.status, 200);
  EXPECT_FALSE(none.obj().contains("keys"));  // no key yet: Google omits the empty list

  auto sa = accounts_->Get("projects/p/serviceAccounts/" + email);
  ASSERT_TRUE(sa);
  auto signing = system_keys_->ForSigning(*sa);
  ASSERT_TRUE(signing) << signing.error().message;
  const std::string kid = (*signing)->kid;
  Reply user_key = Call("POST", keys, kAdmin, "{}");
  ASSERT_EQ(user_key.status, 200);

  Reply all = Call("GET", keys, kViewer);
  ASSERT_EQ(all.status, 200) << all.raw;
  const auto& list = all.obj().at("keys").as_array();
  ASSERT_EQ(list.size(), 2u);
  const bj::object* system = nullptr;
  for (const auto& k : list) {
    if (k.at("keyType") == "SYSTEM_MANAGED") system = &k.as_object();
  }
  ASSERT_NE(system, nullptr) << all.raw;
  EXPECT_EQ(system->at("name").as_string(), "projects/p/serviceAccounts/" + email + "/keys/" + kid);
  EXPECT_EQ(system->at("keyOrigin"), "GOOGLE_PROVIDED");
  EXPECT_EQ(system->at("keyAlgorithm"), "KEY_ALG_RSA_2048");
  auto after = ParseRfc3339(std::string(system->at("validAfterTime").as_string()));
  auto before = ParseRfc3339(std::string(system->at("validBeforeTime").as_string()));
  ASSERT_TRUE(after && before);
  EXPECT_LT(*after, *before);
  EXPECT_FALSE(system->contains("publicKeyData"));

  Reply only_system = Call("GET", keys + "?keyTypes=SYSTEM_MANAGED", kViewer);
  ASSERT_EQ(only_system.obj().at("keys").as_array().size(), 1u);
  EXPECT_EQ(only_system.obj().at("keys").as_array()[0].at("keyType"), "SYSTEM_MANAGED");
  Reply only_user = Call("GET", keys + "?keyTypes=USER_MANAGED", kViewer);
  ASSERT_EQ(only_user.obj().at("keys").as_array().size(), 1u);
  EXPECT_EQ(only_user.obj().at("keys").as_array()[0].at("keyType"), "USER_MANAGED");

  Reply get = Call("GET", keys + "/" + kid + "?publicKeyType=TYPE_X509_PEM_FILE", kViewer);
  ASSERT_EQ(get.status, 200) << get.raw;
  EXPECT_EQ(get.Str("keyType"), "SYSTEM_MANAGED");
  auto cert = Base64Decode(get.Str("publicKeyData"));
  ASSERT_TRUE(cert);
  EXPECT_EQ(*cert, (*signing)->cert_pem);
  EXPECT_EQ(Call("GET", keys + "/" + kid, kOutsider).status, 403);

  for (std::string suffix : {"", ":disable", ":enable"}) {
    Reply r = suffix.empty() ? Call("DELETE", keys + "/" + kid, kAdmin)
                             : Call("POST", keys + "/" + kid + suffix, kAdmin, "{}");
    EXPECT_EQ(r.status, 400) << suffix << r.raw;
    EXPECT_EQ(r.ErrorStatus(), "FAILED_PRECONDITION") << suffix;
  }
  EXPECT_EQ(Call("DELETE", keys + "/" + kid, kViewer).status, 403);
  EXPECT_EQ(Call("GET", keys + "/" + kid, kViewer).status, 200);  // still there

  // Published for the account, with the user-managed key.
  Reply x509 = Call("GET", "/robot/v1/metadata/x509/" + email, "");
  ASSERT_EQ(x509.status, 200);
  EXPECT_TRUE(x509.obj().contains(kid));
  Reply jwk = Call("GET", "/service_accounts/v1/jwk/" + email, "");
  ASSERT_EQ(jwk.status, 200);
  EXPECT_NE(jwk.raw.find(kid), std::string::npos);
}

TEST_F(ApiIamTest, OperationsListGetWaitDeleteAndPrune) {
  const std::string loc = "/v2/projects/p/locations/us-central1";
  auto deploy = [&](const std::string& id) {
    Reply r = Call("POST", loc + "/services?serviceId=" + id, kOwner,
                   R"({"template":{"upstream":"http://127.0.0.1:9000"}})");
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.Str("name");
  };
  std::string op1 = deploy("one");
  clock_.Advance(std::chrono::seconds(1));
  std::string op2 = deploy("two");
  ASSERT_TRUE(op1.starts_with("projects/p/locations/us-central1/operations/")) << op1;
  ASSERT_LT(op1, op2);  // time-ordered ids

  Reply list = Call("GET", loc + "/operations", kViewer);
  ASSERT_EQ(list.status, 200) << list.raw;
  const auto& ops = list.obj().at("operations").as_array();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].at("name").as_string(), op1);
  EXPECT_EQ(ops[1].at("name").as_string(), op2);
  EXPECT_EQ(ops[0].at("done"), true);
  EXPECT_EQ(ops[0].at("response").at("@type"), "type.googleapis.com/google.cloud.run.v2.Service");
  EXPECT_FALSE(list.obj().contains("nextPageToken"));
  Reply page1 = Call("GET", loc + "/operations?pageSize=1", kViewer);
  ASSERT_EQ(page1.obj().at("operations").as_array().size(), 1u);
  std::string token = page1.Str("nextPageToken");
  ASSERT_FALSE(token.empty());
  Reply page2 = Call("GET", loc + "/operations?pageSize=1&pageToken=" + token, kViewer);
  ASSERT_EQ(page2.status, 200) << page2.raw;
  EXPECT_EQ(page2.obj().at("operations").as_array()[0].at("name").as_string(), op2);
  EXPECT_EQ(Call("GET", loc + "/operations?pageToken=bogus", kViewer).status, 400);
  EXPECT_EQ(Call("GET", loc + "/operations?filter=done%3Dtrue", kViewer).status, 400);
  EXPECT_EQ(Call("GET", loc + "/operations", kOutsider).status, 403);
  EXPECT_EQ(Call("GET", loc + "/operations", "").status, 401);
  Reply empty = Call("GET", "/v2/projects/p/locations/europe-west1/operations", kViewer);
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(empty.raw, "{}");

  Reply get = Call("GET", "/v2/" + op1, kViewer);
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.Str("name"), op1);
  Reply wait = Call("POST", "/v2/" + op1 + ":wait", kViewer, R"({"timeout":"30s"})");
  ASSERT_EQ(wait.status, 200) << wait.raw;
  EXPECT_EQ(wait.raw, get.raw);
  EXPECT_EQ(Call("POST", "/v2/" + op1 + ":wait", kViewer, R"({"timeout":"soon"})").status, 400);
  EXPECT_EQ(Call("POST", "/v2/" + op1 + ":wait", kViewer, R"({"x":1})").status, 400);
  EXPECT_EQ(Call("POST", "/v2/" + op1 + ":wait", kOutsider, "{}").status, 403);

  EXPECT_EQ(Call("DELETE", "/v2/" + op1, kOutsider).status, 403);
  Reply del = Call("DELETE", "/v2/" + op1, kOwner);
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_EQ(del.raw, "{}");
  EXPECT_GT(del.revision, 0);
  EXPECT_EQ(Audits("google.longrunning.Operations.DeleteOperation").size(), 1u);
  EXPECT_EQ(Call("GET", "/v2/" + op1, kOwner).status, 404);
  EXPECT_EQ(Call("DELETE", "/v2/" + op1, kOwner).status, 404);
  EXPECT_EQ(Call("POST", "/v2/" + op1 + ":wait", kOwner, "{}").status, 404);

  // Operations older than 7 days go when a new one is written in the location.
  clock_.Advance(std::chrono::hours(24 * 7) + std::chrono::seconds(1));
  std::string op3 = deploy("three");
  Reply after = Call("GET", loc + "/operations", kViewer);
  ASSERT_EQ(after.status, 200);
  ASSERT_EQ(after.obj().at("operations").as_array().size(), 1u);
  EXPECT_EQ(after.obj().at("operations").as_array()[0].at("name").as_string(), op3);
  EXPECT_EQ(Call("GET", "/v2/" + op2, kOwner).status, 404);
}

TEST_F(ApiIamTest, MetricsCountEveryRouteByTemplateAndCode) {
  ASSERT_EQ(Call("POST", "/v2/projects/p/locations/us-central1/services?serviceId=m", kOwner,
                 R"({"template":{"upstream":"http://127.0.0.1:9000"}})")
                .status,
            200);
  EXPECT_EQ(Call("GET", "/v2/projects/p/locations/us-central1/services/nope", kOwner).status, 404);
  EXPECT_EQ(Call("GET", "/v1/projects/p/serviceAccounts", kOutsider).status, 403);
  Reply m = Call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  for (
      std::string line :
      {R"(moat_api_requests_total{route="POST /v2/projects/{project}/locations/{location}/services",code="200"} )",
       R"(moat_api_requests_total{route="GET /v2/projects/{project}/locations/{location}/services/{service}",code="404"} )",
       R"(moat_api_requests_total{route="GET /v1/projects/{project}/serviceAccounts",code="403"} )",
       R"(moat_api_request_duration_seconds_bucket{route="POST /v2/projects/{project}/locations/{location}/services",le="+Inf"} )",
       R"(moat_api_request_duration_seconds_count{route="POST /v2/projects/{project}/locations/{location}/services"} )",
       "# TYPE moat_api_request_duration_seconds histogram\n"}) {
    EXPECT_NE(m.raw.find(line), std::string::npos) << line << "\n" << m.raw;
  }
  // The request path never becomes a label (bounded cardinality).
  EXPECT_EQ(m.raw.find("services/nope"), std::string::npos);
}

}  // namespace
}  // namespace moat::api
