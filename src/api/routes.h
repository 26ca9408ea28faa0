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
