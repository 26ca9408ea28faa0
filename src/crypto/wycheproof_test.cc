// Replays the Wycheproof vectors in ../shared/testdata/wycheproof/ (see its README.md): the
// verifier must agree with every `valid` and `invalid` verdict; `acceptable` ones are counted.
// For the JWS/JWK files only RS256/ES256 compact tokens are in scope; every other token must be
// refused (which agrees with `invalid`, and is our documented choice for `valid` HS*/PS*/…).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "common/base64.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/jwt.h"
#include "crypto/keys.h"

namespace moat::crypto {
namespace {

std::string Dir() { return std::string(MOAT_SOURCE_DIR) + "/../shared/testdata/wycheproof"; }

boost::json::object Load(const std::string& name) {
  std::string path = Dir() + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "Wycheproof vectors not found at " << path
                  << " (expected the shared checkout beside the source tree)";
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return boost::json::parse(ss.str()).as_object();
}

std::string Hex(std::string_view hex) {
  std::string out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1]));
  }
  return out;
}

std::string Str(const boost::json::value& v) { return std::string(v.as_string()); }

struct Tally {
  int valid_ok = 0, invalid_ok = 0, acceptable_accepted = 0, acceptable_refused = 0;
  int mismatches = 0;
  int out_of_scope_refused = 0;
  int Checked() const { return valid_ok + invalid_ok + mismatches; }
};

void Record(Tally& t, const std::string& result, bool accepted, const std::string& what) {
  if (result == "acceptable") {
    (accepted ? t.acceptable_accepted : t.acceptable_refused)++;
  } else if ((result == "valid") == accepted) {
    (accepted ? t.valid_ok : t.invalid_ok)++;
  } else {
    t.mismatches++;
    ADD_FAILURE() << what << ": expected " << result << ", verifier "
                  << (accepted ? "accepted" : "refused");
  }
}

void Report(const char* file, const Tally& t) {
  std::printf(
      "[wycheproof] %s: %d vectors checked (%d valid accepted, %d invalid refused, %d "
      "mismatches); acceptable: %d accepted, %d refused; out of scope (refused): %d\n",
      file, t.Checked(), t.valid_ok, t.invalid_ok, t.mismatches, t.acceptable_accepted,
      t.acceptable_refused, t.out_of_scope_refused);
}

// Signature files: one public key per group, (msg, sig, result) per test.
template <class VerifyFn>
Tally RunSignatureFile(const std::string& file, VerifyFn verify) {
  Tally t;
  boost::json::object doc = Load(file);
  if (doc.empty()) return t;
  int expected_total = static_cast<int>(doc["numberOfTests"].as_int64());
  int seen = 0;
  for (const auto& gv : doc["testGroups"].as_array()) {
    const auto& g = gv.as_object();
    Result<PublicKey> key = PublicKey::FromSpkiDer(Hex(g.at("publicKeyDer").as_string()));
    EXPECT_TRUE(key.has_value()) << file << ": " << (key ? "" : key.error().message);
    for (const auto& tv : g.at("tests").as_array()) {
      const auto& test = tv.as_object();
      ++seen;
      bool accepted = key.has_value() && verify(*key, Hex(test.at("msg").as_string()),
                                                Hex(test.at("sig").as_string()));
      Record(t, Str(test.at("result")), accepted,
             file + " tcId " + std::to_string(test.at("tcId").as_int64()) + " (" +
                 Str(test.at("comment")) + ")");
    }
  }
  EXPECT_EQ(seen, expected_total) << file;
  return t;
}

TEST(CryptoWycheproof, RsaPkcs1Sha256) {
  Tally t = RunSignatureFile("rsa_signature_2048_sha256_test.json",
                             [](const PublicKey& k, const std::string& m, const std::string& s) {
                               return Verify(JwsAlg::kRs256, k, m, s);
                             });
  Report("rsa_signature_2048_sha256_test.json", t);
  EXPECT_EQ(t.mismatches, 0);
  EXPECT_GT(t.Checked(), 250);
}

TEST(CryptoWycheproof, EcdsaP256P1363) {
  Tally t = RunSignatureFile("ecdsa_secp256r1_sha256_p1363_test.json",
                             [](const PublicKey& k, const std::string& m, const std::string& s) {
                               return Verify(JwsAlg::kEs256, k, m, s);
                             });
  Report("ecdsa_secp256r1_sha256_p1363_test.json", t);
  EXPECT_EQ(t.mismatches, 0);
  EXPECT_GT(t.Checked(), 250);
}

TEST(CryptoWycheproof, EcdsaP256Der) {
  Tally t = RunSignatureFile("ecdsa_secp256r1_sha256_test.json",
                             [](const PublicKey& k, const std::string& m, const std::string& s) {
                               return VerifyEcdsaDer(k, m, s);
                             });
  Report("ecdsa_secp256r1_sha256_test.json", t);
  EXPECT_EQ(t.mismatches, 0);
  EXPECT_GT(t.Checked(), 450);
}

// The header's alg, read leniently (the strict decoder may refuse the segment): used only to
// decide whether a vector is in scope.
std::string LenientAlg(std::string_view jws) {
  std::string_view h = jws.substr(0, jws.find('.'));
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : h) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-' || c == '+' ? 62
            : c == '_' || c == '/' ? 63
                                   : -1;
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(bytes, ec);
  if (ec || !v.is_object() || !v.as_object().contains("alg") ||
      !v.as_object().at("alg").is_string()) {
    return "";
  }
  return Str(v.as_object().at("alg"));
}

// A public key set from a Wycheproof group: its "public" member if any, otherwise its
// "private" member with the private parameters removed. A single JWK becomes a one-key set.
Result<JwkSet> GroupKeys(const boost::json::object& g) {
  boost::json::value keys = g.contains("public") ? g.at("public") : g.at("private");
  if (keys.is_object() && !keys.as_object().contains("keys")) {
    boost::json::array one;
    one.push_back(keys);
    keys = boost::json::object{{"keys", one}};
  }
  for (auto& k : keys.as_object()["keys"].as_array()) {
    for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) k.as_object().erase(m);
  }
  return ParseJwks(boost::json::serialize(keys));
}

// Verifies a compact JWS against a key set: strict decode, kid match, JWK usability, signature.
bool AcceptJws(std::string_view compact, const Result<JwkSet>& set) {
  if (!set) return false;
  TokenResult<DecodedJws> jws = DecodeJws(compact);
  if (!jws) return false;
  KeyQuery q{};
  q.alg = jws->alg;
  if (jws->kid) q.kid = *jws->kid;
  for (const PublicKeyPtr& key : JwksKeyLookup(std::make_shared<JwkSet>(*set))(q)) {
    if (VerifyJwsSignature(*jws, *key)) return true;
  }
  return false;
}

Tally RunJwsFile(const std::string& file) {
  Tally t;
  boost::json::object doc = Load(file);
  if (doc.empty()) return t;
  int seen = 0;
  for (const auto& gv : doc["testGroups"].as_array()) {
    const auto& g = gv.as_object();
    Result<JwkSet> set = GroupKeys(g);
    for (const auto& tv : g.at("tests").as_array()) {
      const auto& test = tv.as_object();
      ++seen;
      std::string what = file + " tcId " + std::to_string(test.at("tcId").as_int64()) + " (" +
                         Str(test.at("comment")) + ")";
      std::string result = Str(test.at("result"));
      if (!test.at("jws").is_string()) {  // JSON serialization: not supported, must be refused
        EXPECT_EQ(result, "invalid") << what;
        t.out_of_scope_refused++;
        continue;
      }
      std::string compact = Str(test.at("jws"));
      bool accepted = AcceptJws(compact, set);
      std::string alg = LenientAlg(compact);
      bool in_scope = alg.empty() || alg == "RS256" || alg == "ES256";
      if (in_scope) {
        Record(t, result, accepted, what);
      } else {
        EXPECT_FALSE(accepted) << what << ": alg " << alg << " must be refused";
        if (result == "invalid") {
          Record(t, result, accepted, what);
        } else {
          t.out_of_scope_refused++;
        }
      }
    }
  }
  EXPECT_EQ(seen, doc["numberOfTests"].as_int64()) << file;
  return t;
}

TEST(CryptoWycheproof, JsonWebSignature) {
  Tally t = RunJwsFile("json_web_signature_test.json");
  Report("json_web_signature_test.json", t);
  EXPECT_EQ(t.mismatches, 0);
  EXPECT_GT(t.Checked(), 300);
}

TEST(CryptoWycheproof, JsonWebKey) {
  Tally t = RunJwsFile("json_web_key_test.json");
  Report("json_web_key_test.json", t);
  EXPECT_EQ(t.mismatches, 0);
  EXPECT_GT(t.Checked(), 10);
}

}  // namespace
}  // namespace moat::crypto
