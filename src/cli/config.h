// The CLI's local state: properties (project, region, api_endpoint, account,
// impersonate_service_account) and credentials (activated service-account key files, user
// refresh tokens), under $MOAT_CONFIG or $HOME/.config/moat.
//
// Files:  DIR/            0700
//         DIR/config      0600  "key = value" lines
//         DIR/credentials.json 0600  {"accounts": {EMAIL: {"type": "service_account",
//                                     "key": {key file}} | {"type": "user", "refresh_token"}}}
// Writes are atomic (temp file + rename) and create files 0600. A credentials file readable
// by group or others is refused (as ssh refuses such a private key).
//
// Thread-safety: none; one CLI invocation owns these files.
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace moat::cli {

inline constexpr std::string_view kDefaultApiEndpoint = "http://127.0.0.1:8081";

// Canonical property names; also accepted: core/project, run/region, core/account,
// auth/impersonate_service_account, api_endpoint_overrides/moat.
const std::vector<std::string>& PropertyNames();
// Maps an accepted spelling to its canonical name; nullopt for an unknown property.
std::optional<std::string> CanonicalProperty(std::string_view name);

// Resolves the config directory from environment variables; error when neither
// $MOAT_CONFIG nor $HOME is set.
Result<std::string> ConfigDir(const std::map<std::string, std::string>& vars);

// Writes `data` to `path` atomically with mode 0600, creating parent dirs 0700.
Status WritePrivateFile(const std::string& path, std::string_view data);
// Reads a whole file (at most 4 MiB); kNotFound when it does not exist.
Result<std::string> ReadFile(const std::string& path);

class Config {
 public:
  // Loads DIR/config and DIR/credentials.json (missing files are empty).
  static Result<Config> Load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::optional<std::string> Get(const std::string& name) const;
  const std::map<std::string, std::string>& properties() const { return props_; }
  // Validates and stores (not saved until Save()).
  Status Set(const std::string& name, const std::string& value);
  void Unset(const std::string& name) { props_.erase(name); }

  // Credentials keyed by account email.
  const boost::json::object& accounts() const { return accounts_; }
  const boost::json::object* Account(std::string_view email) const;
  void PutAccount(const std::string& email, boost::json::object credential);
  bool RemoveAccount(std::string_view email);

  Status Save() const;

 private:
  std::string dir_;
  std::map<std::string, std::string> props_;
  boost::json::object accounts_;
};

// Checks a parsed service-account key file: type, client_email, private_key,
// private_key_id. Returns the email.
Result<std::string> ValidateKeyFile(const boost::json::object& key);

}  // namespace moat::cli
