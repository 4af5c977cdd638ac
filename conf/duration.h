// Parsing of the config's unit-suffixed scalars: durations ("500ms", "15s", "10m", "1h", "2d" or a
// bare integer of seconds) and byte sizes ("1048576", "64kB", "16MB", "1GB").
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace pgtenant::conf {

// Returns the duration in milliseconds, or nullopt for anything else: negative numbers, fractions,
// unknown units, spaces, or a value that does not fit in Millis. "0" (with or without unit) is 0,
// which the config reads as "none".
std::optional<Millis> ParseDuration(std::string_view text);

// The inverse for display (SHOW CONFIG, diagnostics): the largest unit that is exact, e.g.
// 600000 -> "10m", 1500 -> "1500ms", 0 -> "0".
std::string FormatDuration(Millis millis);

// Returns a size in bytes. Accepts a bare integer (bytes) or an integer followed by B, kB, MB or GB
// (case-insensitive, powers of 1024 as PostgreSQL uses them). nullopt on garbage or overflow.
std::optional<uint64_t> ParseByteSize(std::string_view text);

}  // namespace pgtenant::conf
