// One event a line on stderr, with a time, a level and a component. Secrets never go through
// here: callers log user, tenant and pool names, never passwords or verifiers.
// Loop-affine: called only from the event-loop thread (and from main before the loop runs).
#pragma once

#include <cstdarg>

namespace pgtenant::proxy {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define PGT_LOG(level, ...)                                                   \
  do {                                                                        \
    if (::pgtenant::proxy::LogEnabled(level)) ::pgtenant::proxy::Log(level, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) PGT_LOG(::pgtenant::proxy::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) PGT_LOG(::pgtenant::proxy::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARNING(...) PGT_LOG(::pgtenant::proxy::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) PGT_LOG(::pgtenant::proxy::LogLevel::kError, __VA_ARGS__)

}  // namespace pgtenant::proxy
