#include "identity/principals.h"

#include <sodium.h>

#include <algorithm>
#include <mutex>

#include "common/random.h"
#include "identity/lifecycle_internal.h"
#include "identity/records.h"
#include "store/store.h"

namespace moat::identity {
namespace {

using store::Collection;
using store::Precondition;

std::string Quote(std::string_view s) { return "`" + std::string(s) + "`"; }

void InitSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) std::abort();  // no safe way to continue without a CSPRNG
  });
}

constexpr std::string_view kBadLogin = "invalid email or password";

// A hash of a random password, verified against when the user does not exist, so unknown
// users cost the same Argon2id work as wrong passwords.
const std::string& DummyHash() {
  static const std::string hash = [] {
    auto h = HashPassword(RandomHex(16));
    return h ? *h : std::string();
  }();
  return hash;
}

Status ValidateDisplayName(std::string_view display_name) {
  if (display_name.size() > 100) return InvalidArgument("displayName must be at most 100 bytes");
  return Ok();
}

Error UserMissing(std::string_view email) {
  return NotFound("user " + Quote(email) + " does not exist");
}
Error GroupMissing(std::string_view email) {
  return NotFound("group " + Quote(email) + " does not exist");
}

store::PutOptions Replace(const store::Document& doc) {
  store::PutOptions o;
  o.parent = doc.parent;
  o.precondition = Precondition::EtagMatches(doc.etag);
  return o;
}

store::PutOptions CreateOnly() {
  store::PutOptions o;
  o.precondition = Precondition::MustNotExist();
  return o;
}

bool IsLocalHost(std::string_view host) {
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

// An absolute https URL (http only for local hosts), no userinfo, query or fragment.
Status ValidateIssuerUrl(std::string_view url, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(std::string(what) + " " + Quote(url) + " " + std::string(why));
  };
  if (url.empty() || url.size() > 2048) return bad("must be a URL of at most 2048 characters");
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f) return bad("must not contain spaces or non-ASCII characters");
  }
  if (url.find_first_of("?#") != std::string_view::npos) {
    return bad("must not have a query or fragment");
  }
  bool https = url.substr(0, 8) == "https://";
  bool http = url.substr(0, 7) == "http://";
  if (!https && !http) return bad("must start with https://");
  std::string_view rest = url.substr(https ? 8 : 7);
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string_view::npos) return bad("must not contain credentials");
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return bad("has a malformed host");
    std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("has a malformed host");
    host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.empty()) return bad("has no host");
  if (http && !IsLocalHost(host)) return bad("must use https:// (http:// only for localhost)");
  return Ok();
}

Status ValidateIssuerId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 63 && id.front() >= 'a' && id.front() <= 'z' &&
            std::all_of(id.begin(), id.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            });
  if (!ok) {
    return InvalidArgument("trusted issuer id " + Quote(id) +
                           " must be 1-63 characters of lowercase letters, digits and hyphens, "
                           "starting with a letter");
  }
  return Ok();
}

}  // namespace

// --- passwords ---------------------------------------------------------------------------

Result<std::string> HashPassword(std::string_view password) {
  if (password.size() < kMinPasswordLength) {
    return InvalidArgument("password must be at least 8 characters long");
  }
  if (password.size() > kMaxPasswordLength) {
    return InvalidArgument("password must be at most 1024 characters long");
  }
  InitSodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return Internal("password hashing ran out of memory");
  }
  return std::string(out);
}

bool CheckPassword(std::string_view hash, std::string_view password) {
  InitSodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  std::string h(hash);  // libsodium wants a NUL-terminated string
  return crypto_pwhash_str_verify(h.c_str(), password.data(), password.size()) == 0;
}

// --- users -------------------------------------------------------------------------------

Users::Users(store::Store& store, const Clock& clock) : store_(store), clock_(clock) {}

Result<UserRecord> Users::Create(std::string_view email, std::string_view password,
                                 std::string_view display_name, CommitHook<UserRecord>* hook) {
  UserRecord u;
  MOAT_TRY(u.email, NormalizeEmail(email, "user email"));
  MOAT_CHECK_OK(ValidateDisplayName(display_name));
  MOAT_TRY(u.password_hash, HashPassword(password));
  u.unique_id = RandomNumericId();
  u.display_name = std::string(display_name);
  u.create_time = clock_.Now();
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kUsers, u.email));
  if (existing) return AlreadyExists("user " + Quote(u.email) + " already exists");
  MOAT_CHECK_OK(tx->Put(Collection::kUsers, u.email, UserToDocument(u), CreateOnly()));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, u));
  return u;
}

Result<UserRecord> Users::Get(std::string_view email) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "user email"));
  MOAT_TRY(auto doc, store_.Get(Collection::kUsers, key));
  if (!doc) return UserMissing(key);
  return UserFromDocument(doc->data);
}

Result<UserPage> Users::List(int page_size, std::string_view page_token) {
  store::ListOptions o;
  o.page_size = page_size;
  o.page_token = std::string(page_token);
  MOAT_TRY(auto page, store_.List(Collection::kUsers, o));
  UserPage out;
  for (const auto& doc : page.documents) {
    MOAT_TRY(auto u, UserFromDocument(doc.data));
    out.users.push_back(std::move(u));
  }
  out.next_page_token = std::move(page.next_page_token);
  return out;
}

Result<UserRecord> Users::VerifyPassword(std::string_view email, std::string_view password) {
  auto key = NormalizeEmail(email, "user email");
  std::optional<UserRecord> user;
  if (key) {
    MOAT_TRY(auto doc, store_.Get(Collection::kUsers, *key));
    if (doc) {
      MOAT_TRY(auto u, UserFromDocument(doc->data));
      user = std::move(u);
    }
  }
  // Always do the hashing work, so response time does not reveal whether the user exists.
  bool ok = CheckPassword(user ? user->password_hash : DummyHash(), password) && user;
  if (!ok) return Unauthenticated(std::string(kBadLogin));
  if (user->disabled) return PermissionDenied("user " + Quote(user->email) + " is disabled");
  return std::move(*user);
}

Status Users::SetPassword(std::string_view email, std::string_view password) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "user email"));
  MOAT_TRY(std::string hash, HashPassword(password));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kUsers, key));
  if (!doc) return UserMissing(key);
  MOAT_TRY(auto u, UserFromDocument(doc->data));
  u.password_hash = std::move(hash);
  MOAT_CHECK_OK(tx->Put(Collection::kUsers, key, UserToDocument(u), Replace(*doc)));
  MOAT_CHECK_OK(tx->Commit());
  return Ok();
}

Status Users::SetDisabled(std::string_view email, bool disabled) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "user email"));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kUsers, key));
  if (!doc) return UserMissing(key);
  MOAT_TRY(auto u, UserFromDocument(doc->data));
  if (u.disabled == disabled) return Ok();
  u.disabled = disabled;
  MOAT_CHECK_OK(tx->Put(Collection::kUsers, key, UserToDocument(u), Replace(*doc)));
  MOAT_CHECK_OK(tx->Commit());
  return Ok();
}

Status Users::Disable(std::string_view email) { return SetDisabled(email, true); }
Status Users::Enable(std::string_view email) { return SetDisabled(email, false); }

Status Users::Delete(std::string_view email, CommitHook<UserRecord>* hook) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "user email"));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kUsers, key));
  if (!doc) return UserMissing(key);
  MOAT_TRY(auto u, UserFromDocument(doc->data));
  MOAT_CHECK_OK(tx->Delete(Collection::kUsers, key, Precondition::EtagMatches(doc->etag)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, u));
  return Ok();
}

// --- groups ------------------------------------------------------------------------------

Result<std::string> NormalizeGroupMember(std::string_view member) {
  for (std::string_view prefix : {"user:", "serviceAccount:", "group:"}) {
    if (member.substr(0, prefix.size()) == prefix) {
      MOAT_TRY(std::string email, NormalizeEmail(member.substr(prefix.size()), "member email"));
      return std::string(prefix) + email;
    }
  }
  return InvalidArgument("group member " + Quote(member) +
                         " must be user:EMAIL, serviceAccount:EMAIL or group:EMAIL");
}

Groups::Groups(store::Store& store) : store_(store) {}

Result<GroupRecord> Groups::Create(std::string_view email, std::string_view display_name,
                                   std::string_view description,
                                   const std::vector<std::string>& members,
                                   CommitHook<GroupRecord>* hook) {
  GroupRecord g;
  MOAT_TRY(g.email, NormalizeEmail(email, "group email"));
  MOAT_CHECK_OK(ValidateDisplayName(display_name));
  if (description.size() > 256) return InvalidArgument("description must be at most 256 bytes");
  g.display_name = std::string(display_name);
  g.description = std::string(description);
  for (const auto& m : members) {
    MOAT_TRY(std::string normalized, NormalizeGroupMember(m));
    if (std::find(g.members.begin(), g.members.end(), normalized) == g.members.end()) {
      g.members.push_back(std::move(normalized));
    }
  }
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kGroups, g.email));
  if (existing) return AlreadyExists("group " + Quote(g.email) + " already exists");
  MOAT_CHECK_OK(tx->Put(Collection::kGroups, g.email, GroupToDocument(g), CreateOnly()));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, g));
  return g;
}

Result<GroupRecord> Groups::Get(std::string_view email) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "group email"));
  MOAT_TRY(auto doc, store_.Get(Collection::kGroups, key));
  if (!doc) return GroupMissing(key);
  return GroupFromDocument(doc->data);
}

Result<GroupPage> Groups::List(int page_size, std::string_view page_token) {
  store::ListOptions o;
  o.page_size = page_size;
  o.page_token = std::string(page_token);
  MOAT_TRY(auto page, store_.List(Collection::kGroups, o));
  GroupPage out;
  for (const auto& doc : page.documents) {
    MOAT_TRY(auto g, GroupFromDocument(doc.data));
    out.groups.push_back(std::move(g));
  }
  out.next_page_token = std::move(page.next_page_token);
  return out;
}

Status Groups::Delete(std::string_view email, CommitHook<GroupRecord>* hook) {
  MOAT_TRY(std::string key, NormalizeEmail(email, "group email"));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kGroups, key));
  if (!doc) return GroupMissing(key);
  MOAT_TRY(auto g, GroupFromDocument(doc->data));
  MOAT_CHECK_OK(tx->Delete(Collection::kGroups, key, Precondition::EtagMatches(doc->etag)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, g));
  return Ok();
}

Result<GroupRecord> Groups::AddMember(std::string_view group_email, std::string_view member,
                                      CommitHook<GroupRecord>* hook) {
  MOAT_TRY(std::string key, NormalizeEmail(group_email, "group email"));
  MOAT_TRY(std::string m, NormalizeGroupMember(member));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kGroups, key));
  if (!doc) return GroupMissing(key);
  MOAT_TRY(auto g, GroupFromDocument(doc->data));
  if (std::find(g.members.begin(), g.members.end(), m) != g.members.end()) {
    if (hook) MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, g));
    return g;
  }
  g.members.push_back(std::move(m));
  MOAT_CHECK_OK(tx->Put(Collection::kGroups, key, GroupToDocument(g), Replace(*doc)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, g));
  return g;
}

Result<GroupRecord> Groups::RemoveMember(std::string_view group_email, std::string_view member,
                                         CommitHook<GroupRecord>* hook) {
  MOAT_TRY(std::string key, NormalizeEmail(group_email, "group email"));
  MOAT_TRY(std::string m, NormalizeGroupMember(member));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kGroups, key));
  if (!doc) return GroupMissing(key);
  MOAT_TRY(auto g, GroupFromDocument(doc->data));
  auto it = std::find(g.members.begin(), g.members.end(), m);
  if (it == g.members.end()) {
    return NotFound(Quote(m) + " is not a member of group " + Quote(key));
  }
  g.members.erase(it);
  MOAT_CHECK_OK(tx->Put(Collection::kGroups, key, GroupToDocument(g), Replace(*doc)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, g));
  return g;
}

// --- trusted issuers ---------------------------------------------------------------------

TrustedIssuers::TrustedIssuers(store::Store& store) : store_(store) {}

Result<TrustedIssuerRecord> TrustedIssuers::Create(std::string_view id, std::string_view issuer,
                                                   std::string_view jwks_uri,
                                                   const std::vector<std::string>& audiences,
                                                   CommitHook<TrustedIssuerRecord>* hook) {
  MOAT_CHECK_OK(ValidateIssuerId(id));
  MOAT_CHECK_OK(ValidateIssuerUrl(issuer, "issuer"));
  MOAT_CHECK_OK(ValidateIssuerUrl(jwks_uri, "jwksUri"));
  TrustedIssuerRecord t{std::string(id), std::string(issuer), std::string(jwks_uri), {}};
  for (const auto& a : audiences) {
    if (a.empty() || a.size() > 2048) {
      return InvalidArgument("audiences must be non-empty strings of at most 2048 characters");
    }
    if (std::find(t.audiences.begin(), t.audiences.end(), a) == t.audiences.end()) {
      t.audiences.push_back(a);
    }
  }
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kTrustedIssuers, t.id));
  if (existing) return AlreadyExists("trusted issuer " + Quote(t.id) + " already exists");
  MOAT_TRY(auto all, internal::ListAll(*tx, Collection::kTrustedIssuers));
  for (const auto& doc : all) {
    MOAT_TRY(auto other, TrustedIssuerFromDocument(doc.data));
    if (other.issuer == t.issuer) {
      return AlreadyExists("issuer " + Quote(t.issuer) + " is already trusted as " +
                           Quote(other.id));
    }
  }
  MOAT_CHECK_OK(
      tx->Put(Collection::kTrustedIssuers, t.id, TrustedIssuerToDocument(t), CreateOnly()));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, t));
  return t;
}

Result<TrustedIssuerRecord> TrustedIssuers::Get(std::string_view id) {
  MOAT_TRY(auto doc, store_.Get(Collection::kTrustedIssuers, id));
  if (!doc) return NotFound("trusted issuer " + Quote(id) + " does not exist");
  return TrustedIssuerFromDocument(doc->data);
}

Result<std::vector<TrustedIssuerRecord>> TrustedIssuers::List() {
  MOAT_TRY(auto tx, store_.BeginRead());
  MOAT_TRY(auto docs, internal::ListAll(*tx, Collection::kTrustedIssuers));
  std::vector<TrustedIssuerRecord> out;
  for (const auto& doc : docs) {
    MOAT_TRY(auto t, TrustedIssuerFromDocument(doc.data));
    out.push_back(std::move(t));
  }
  return out;
}

Status TrustedIssuers::Delete(std::string_view id, CommitHook<TrustedIssuerRecord>* hook) {
  if (id.empty()) return NotFound("trusted issuer `` does not exist");
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kTrustedIssuers, id));
  if (!doc) return NotFound("trusted issuer " + Quote(id) + " does not exist");
  MOAT_TRY(auto t, TrustedIssuerFromDocument(doc->data));
  MOAT_CHECK_OK(tx->Delete(Collection::kTrustedIssuers, id, Precondition::EtagMatches(doc->etag)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, t));
  return Ok();
}

}  // namespace moat::identity
