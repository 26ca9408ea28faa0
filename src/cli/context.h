// What a command handler sees: its parsed arguments, the local config, output helpers and an
// authenticated client for Moat's API (token acquisition for the active identity).
// Internal to moat_cli (commands_*.cc); not a public header.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/command.h"
#include "cli/config.h"
#include "cli/token_cache.h"

namespace moat::cli {

// The identity a command acts as before impersonation.
struct Credential {
  std::string email;
  boost::json::object data;  // {"type":"service_account","key":{…}} or {"type":"user",…}
  std::string source;        // "credentials", "MOAT_HOME"
};

class Context {
 public:
  Context(Env& env, Config& config, const CommandTree& tree, const ParsedArgs& parsed);

  Env& env() { return env_; }
  Config& config() { return config_; }
  const CommandSpec& spec() const { return *parsed_.command; }
  std::ostream& out() { return *env_.out; }
  std::ostream& err() { return *env_.err; }

  // Positional argument or "" when absent.
  std::string Arg(const std::string& name) const;
  std::optional<std::string> Flag(const std::string& name) const;
  std::optional<bool> Bool(const std::string& name) const;
  std::vector<std::string> List(const std::string& name) const;
  bool Quiet() const { return Bool("quiet").value_or(false); }

  // --project > config > the active service account's key file project_id.
  Result<std::string> Project();
  // --region > config.
  Result<std::string> Region();
  // $MOAT_API_ENDPOINT > config api_endpoint > http://127.0.0.1:8081 (no trailing slash).
  std::string Endpoint() const;

  // A usage error (exit 2) raised by a handler.
  Error UsageError(std::string message);
  bool usage_error() const { return usage_error_; }

  // Prints `value` with --format, else the command's default (yaml when it has none).
  Status Print(const boost::json::value& value);
  Status PrintWith(const boost::json::value& value, const std::string& default_format,
                   bool is_list);
  // Asks "`message` Do you want to continue (y/N)?"; Ok to proceed. With --quiet proceeds.
  // Without a terminal and without --quiet: a FailedPrecondition naming --quiet.
  Status Confirm(const std::string& message);
  // Reads one line (a password) from stdin, prompting on stderr when interactive.
  Result<std::string> ReadSecretLine(const std::string& prompt);

  // --- API client ---
  // Calls the API at `path_and_query` ("/v2/…?x=1") as the active identity. A 2xx JSON body
  // (or {} when empty) is returned; ≥ 400 becomes an Error carrying the envelope's status
  // and message.
  Result<boost::json::value> Call(const std::string& method, const std::string& path_and_query,
                                  const std::optional<boost::json::value>& body = std::nullopt);
  // The same without credentials (the OAuth2 token endpoint), form-encoded.
  Result<boost::json::value> PostForm(const std::string& path,
                                      const std::vector<std::pair<std::string, std::string>>& form);
  // Sends through the transport with --verbosity=debug logging.
  Result<HttpResponse> Send(const HttpRequest& request);

  Result<Credential> ActiveCredential();
  // --impersonate-service-account > config impersonate_service_account.
  std::optional<std::string> Impersonated() const;
  // Bearer token for API calls (cached for this invocation).
  Result<std::string> AccessToken();
  // An ID token whose `aud` is `audience`, for the effective identity. Tokens are reused
  // across invocations through the token cache (token_cache.h) until 5 min before `exp`.
  Result<std::string> IdToken(const std::string& audience);
  // True when the last IdToken() came from the token cache rather than being minted now.
  bool last_id_token_cached() const { return id_token_cached_; }
  // Drops the cached ID token for `audience` (a service refused it); the next IdToken()
  // mints a new one.
  void ForgetIdToken(const std::string& audience);
  // The cache of DIR/access_tokens.json, loaded on first use.
  TokenCache& Cache();
  // Waits for a long-running Operation and returns its `response` (or the value itself when
  // it is not an Operation).
  Result<boost::json::value> WaitOperation(boost::json::value op);

  int64_t NowUnix() const;

 private:
  struct Minted {
    std::string token;
    int64_t expiry = 0;  // unix seconds; 0 when unknown (then the token is not cached)
  };
  Result<std::string> SignJwt(const Credential& cred, boost::json::object claims);
  Result<Minted> BaseAccessToken(const Credential& cred);
  Result<Minted> MintIdToken(const std::string& audience);
  // POSTs `body` to the API as the base identity (never the impersonated one): the
  // iamcredentials calls that mint tokens for --impersonate-service-account.
  Result<boost::json::value> PostAsBaseIdentity(const std::string& path,
                                                const boost::json::value& body);
  TokenCache::Key CacheKey(const Credential& cred, std::string kind, std::string audience) const;
  // Stores a minted token in the cache and writes the cache file (failures only logged with
  // --verbosity=debug: the cache is an optimisation).
  void Remember(const TokenCache::Key& key, const Minted& minted);
  void SaveCache();

  Env& env_;
  Config& config_;
  const CommandTree& tree_;
  const ParsedArgs& parsed_;
  bool usage_error_ = false;
  std::optional<std::string> access_token_;
  bool access_token_cached_ = false;  // access_token_ came from the cache file
  std::optional<TokenCache::Key> access_token_key_;
  bool id_token_cached_ = false;
  std::optional<Credential> credential_;
  std::optional<TokenCache> cache_;
};

// Percent-encodes one path segment or query value (keeps A-Z a-z 0-9 - . _ ~ @).
std::string Escape(std::string_view s);
// Error for an API error response: Google's envelope or a plain body.
Error ApiError(const HttpResponse& response);

// An IAM-enabled resource as the generic policy commands address it.
struct IamTarget {
  std::string kind;  // "service", "service account", "project" (for messages)
  std::string name;  // shown in messages: "hello", "sa@p.iam.gserviceaccount.com"
  std::string path;  // "/v2/projects/p/locations/l/services/hello"
  // How getIamPolicy is called: GET with ?options.requestedPolicyVersion=3 (run), POST with
  // the same query (iam), or POST with {"options":{…}} in the body (resource manager).
  enum class Get { kGetQuery, kPostQuery, kPostBody } get = Get::kGetQuery;
};
Status GetIamPolicyCommand(Context& ctx, const IamTarget& target);
Status SetIamPolicyCommand(Context& ctx, const IamTarget& target, const std::string& file);
// The atomic :addIamPolicyBinding / :removeIamPolicyBinding with --member, --role,
// --condition / --condition-from-file.
Status ModifyBindingCommand(Context& ctx, const IamTarget& target, bool add);
std::vector<FlagSpec> BindingFlags();
// The policy as the server returns it (for callers that inspect it).
Result<boost::json::value> FetchIamPolicy(Context& ctx, const IamTarget& target);

// Registration of every command (commands_*.cc).
void AddRunCommands(CommandTree& tree);
void AddIamCommands(CommandTree& tree);
void AddCoreCommands(CommandTree& tree);  // auth, config, projects, help-markdown

// Builds the complete tree (cached, immutable).
const CommandTree& Tree();

}  // namespace moat::cli
