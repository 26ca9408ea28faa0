# The directory side of moat_identity (owned by the directory/lifecycle code): records, the
# store-side lifecycle of service accounts, keys, users, groups and trusted issuers.
target_sources(moat_identity_directory PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/records.cc
  ${CMAKE_CURRENT_LIST_DIR}/service_accounts.cc
  ${CMAKE_CURRENT_LIST_DIR}/principals.cc
  ${CMAKE_CURRENT_LIST_DIR}/key_usage.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_loader.cc)
target_link_libraries(moat_identity_directory PUBLIC moat_store Boost::json PRIVATE PkgConfig::SODIUM)

moat_test(identity_directory_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/records_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/service_accounts_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/principals_test.cc
  LIBS moat_identity_directory)
