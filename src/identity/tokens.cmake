# moat_identity_tokens: signing keys, token issuing, the one verifier, OAuth2 token endpoint,
# IAM Credentials and metadata-server logic (no HTTP server code). Owned by tokens.cmake.
add_library(moat_identity_tokens STATIC
  master_key.cc signing_keys.cc token_issuer.cc verifier.cc credentials_keys.cc credentials.cc
  oauth_token_endpoint.cc metadata_server.cc)
target_link_libraries(moat_identity_tokens
  PUBLIC moat_identity_directory moat_crypto moat_store moat_common)

moat_test(identity_tokens_test
  SOURCES signing_keys_test.cc verifier_test.cc oauth_token_endpoint_test.cc credentials_test.cc
          metadata_server_test.cc
  LIBS moat_identity_tokens moat_store)

moat_bench(identity_bench SOURCES token_bench.cc LIBS moat_identity_tokens moat_store)
