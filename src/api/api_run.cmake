# Cloud Run services, IAM policies, custom roles, troubleshooting and audit logs (apirun).
target_sources(moat_api PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/run_common.cc
  ${CMAKE_CURRENT_LIST_DIR}/run_services.cc
  ${CMAKE_CURRENT_LIST_DIR}/policy_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/roles_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/troubleshoot_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/audit_handlers.cc)

moat_test(api_run_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_run_test.cc
  LIBS moat_api moat_cli)  # moat_cli: the CLI's query escaping, as its requests are built
