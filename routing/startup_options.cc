#include "routing/startup_options.h"

#include <cstring>

namespace pgtenant::routing {
namespace {

// C-locale isspace, which pg_split_opts uses.
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Switches of the postgres getopt string "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:" that
// take an argument; -c and - are handled separately.
bool TakesArgument(char c) { return c != '\0' && std::strchr("BCDdfhkNprStvW", c) != nullptr; }

Status SyntaxError(std::string message) { return Status::Error("42601", std::move(message)); }

// ParseLongOption: "name=value" with '-' in the name turned into '_'.
Status AddSetting(std::string_view arg, std::string_view switch_name, StartupOptions* out) {
  const size_t eq = arg.find('=');
  if (eq == std::string_view::npos) {
    return SyntaxError(std::string(switch_name) + std::string(arg) + " requires a value");
  }
  std::string name(arg.substr(0, eq));
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  out->settings.emplace_back(std::move(name), std::string(arg.substr(eq + 1)));
  return Status::Ok();
}

// One getopt cluster such as "-ec", "-B100" or "-capp.x=1". *next is the index of the token
// after it and advances when a switch takes its argument from there.
Status ParseCluster(const std::vector<std::string>& tokens, size_t* next, const std::string& token,
                    StartupOptions* out) {
  for (size_t k = 1; k < token.size(); ++k) {
    const char sw = token[k];
    if (sw != 'c' && sw != '-' && !TakesArgument(sw)) {
      out->unparsed.push_back(std::string("-") + sw);
      continue;
    }
    std::string arg;
    if (k + 1 < token.size()) {
      arg = token.substr(k + 1);
    } else if (sw == '-') {
      arg.clear();  // "--" alone: getopt's end of switches; nothing to set
    } else if (*next < tokens.size() && !tokens[*next].empty()) {
      arg = tokens[(*next)++];
    } else {
      return SyntaxError(std::string("-") + sw + " requires a value");
    }
    if (sw == 'c') return AddSetting(arg, "-c ", out);
    if (sw == '-') {
      if (arg.empty()) {
        out->unparsed.push_back("--");
        return Status::Ok();
      }
      return AddSetting(arg, "--", out);
    }
    out->unparsed.push_back(std::string("-") + sw);
    out->unparsed.push_back(std::move(arg));
    return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

std::vector<std::string> SplitOptionsString(std::string_view options) {
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < options.size()) {
    while (i < options.size() && IsSpace(options[i])) ++i;
    if (i >= options.size()) break;
    std::string token;
    bool escaped = false;
    for (; i < options.size(); ++i) {
      const char c = options[i];
      if (IsSpace(c) && !escaped) break;
      if (!escaped && c == '\\') {
        escaped = true;
      } else {
        escaped = false;
        token.push_back(c);
      }
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

Result<StartupOptions> ParseStartupOptions(std::string_view options) {
  const std::vector<std::string> tokens = SplitOptionsString(options);
  StartupOptions out;
  size_t next = 0;
  while (next < tokens.size()) {
    const std::string& token = tokens[next++];
    // Only a trailing backslash makes an empty token; the server refuses it whatever it
    // follows, and no options string could carry it on, so refuse it here.
    if (token.empty()) return SyntaxError("invalid command-line argument for server process: \"\"");
    // Not a switch: the server refuses it ("invalid command-line argument"); keep it so the
    // caller can pass it on and let the server say so.
    if (token.size() < 2 || token[0] != '-') {
      out.unparsed.push_back(token);
      continue;
    }
    Status s = ParseCluster(tokens, &next, token, &out);
    if (!s.ok()) return s;
  }
  return out;
}

std::string EscapeOptionToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (IsSpace(c) || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string FormatStartupOptions(const StartupOptions& options) {
  std::string out;
  auto append = [&](std::string_view token) {
    if (!out.empty()) out.push_back(' ');
    out += EscapeOptionToken(token);
  };
  for (const auto& [name, value] : options.settings) {
    append("-c");
    append(name + "=" + value);
  }
  for (const std::string& token : options.unparsed) append(token);
  return out;
}

}  // namespace pgtenant::routing
