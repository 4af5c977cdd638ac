// Step two of loading (docs/development.md, *Config loading*): whole-config checks over the decoded
// plain structs. Every problem is appended, each with its key path and the line of the offending
// key; nothing stops at the first. Checks that need the outside world are done here too, at load
// time: files named by cert_file/key_file/ca_file must be readable, and variables named by
// password_env must be set.
//
// Pure apart from reading the environment and the file system; thread-compatible.
#pragma once

#include <string_view>
#include <vector>

#include "conf/config.h"
#include "conf/diagnostic.h"

namespace pgtenant::conf {

// Appends a Diagnostic to *out for every problem in `config`. `lines` comes from the decoding
// step: it places each diagnostic and tells which keys were present (for "password and
// password_env both given"). Plaintext user passwords written in the file are warnings.
// REQUIRES: password_env values already resolved into the password fields and relative file
// paths already resolved, as LoadConfigString does before calling this.
void ValidateConfig(const Config& config, const SourceLines& lines, std::vector<Diagnostic>* out);

// How a stored user password is written (docs/configuration.md, `auth`).
enum class PasswordKind {
  kEmpty,
  kScramVerifier,  // "SCRAM-SHA-256$..." (well-formed or not; see IsWellFormedScramVerifier)
  kMd5Hash,        // "md5" followed by 32 lowercase hex digits
  kPlaintext,
};
PasswordKind ClassifyPassword(std::string_view stored);

// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" with a positive iteration count,
// base64 salt and 32-byte base64 keys, as PostgreSQL stores it in pg_authid.rolpassword.
bool IsWellFormedScramVerifier(std::string_view stored);

// A custom setting name Postgres accepts for SET: two or more dot-separated identifiers
// [A-Za-z_][A-Za-z0-9_]*, e.g. "app.tenant_id".
bool IsCustomGucName(std::string_view name);

// What listen.host may be, as PgBouncer's listen_addr: "*" (every address), an IPv4 or IPv6
// address, or a host name (dot-separated labels of letters, digits, '-' and '_', 1-63 bytes each,
// at most 253 in all). A name is resolved only when pgtenant starts (proxy/listen_address.h).
bool IsListenHost(std::string_view host);

}  // namespace pgtenant::conf
