// Internal to moat_api: the handler groups, one registration function per file. Each adds its
// routes to the API router; `env` must outlive the router. One self-contained line per function
// (append only).
#pragma once

#include "api/handler_util.h"
#include "http/router.h"

namespace moat::api { void RegisterRunServiceRoutes(http::Router& router, const Env& env); }  // run_services.cc
namespace moat::api { void RegisterPolicyRoutes(http::Router& router, const Env& env); }  // policy_handlers.cc
namespace moat::api { void RegisterRoleRoutes(http::Router& router, const Env& env); }  // roles_handlers.cc
namespace moat::api { void RegisterTroubleshootRoutes(http::Router& router, const Env& env); }  // troubleshoot_handlers.cc
namespace moat::api { void RegisterAuditRoutes(http::Router& router, const Env& env); }  // audit_handlers.cc
namespace moat::api { void RegisterAllRoutes(http::Router& router, const Env& env); }  // all_routes.cc (the lead)
namespace moat::api { void RegisterIamServiceAccountRoutes(http::Router& router, const Env& env); }  // iam_service_accounts.cc
namespace moat::api { void RegisterIamKeyRoutes(http::Router& router, const Env& env); }  // iam_keys.cc
namespace moat::api { void RegisterCredentialsRoutes(http::Router& router, const Env& env); }  // credentials_handlers.cc
namespace moat::api { void RegisterOAuthRoutes(http::Router& router, const Env& env); }  // oauth_handlers.cc
namespace moat::api { void RegisterDiscoveryRoutes(http::Router& router, const Env& env); }  // discovery_handlers.cc
namespace moat::api { void RegisterDirectoryRoutes(http::Router& router, const Env& env); }  // directory_handlers.cc
namespace moat::api { void RegisterOpsRoutes(http::Router& router, const Env& env); }  // ops_handlers.cc
namespace moat::identity { class SystemManagedKeys; } namespace moat::api { void RegisterDiscoveryRoutesWith(http::Router& router, const Env& env, identity::SystemManagedKeys* system_keys); }  // discovery_handlers.cc (system_keys may be null)
namespace moat::identity { class SystemManagedKeys; } namespace moat::api { void RegisterCredentialsRoutesWith(http::Router& router, const Env& env, identity::SystemManagedKeys* system_keys); }  // credentials_handlers.cc (null: signJwt/signBlob/tokens answer 501)
namespace moat::api { void RegisterInvokeRoutes(http::Router& router, const Env& env); }  // invoke_handlers.cc (the lead)
