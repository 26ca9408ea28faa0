# IAM v1 service accounts and keys, IAM Credentials, OAuth2/OIDC discovery and token endpoint,
# Moat's directory (users, groups, trusted issuers), service logs, /healthz and /metrics
# (apiiam).
target_sources(moat_api PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/iam_common.cc
  ${CMAKE_CURRENT_LIST_DIR}/iam_service_accounts.cc
  ${CMAKE_CURRENT_LIST_DIR}/iam_keys.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/ops_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/discovery_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/credentials_handlers.cc
  ${CMAKE_CURRENT_LIST_DIR}/oauth_handlers.cc)


moat_test(api_iam_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_iam_test.cc
  LIBS moat_api)
