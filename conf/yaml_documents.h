// The documents of a YAML stream, as YAML::LoadAll returns them, without its endless loop.
//
// yaml-cpp 0.7 (Debian 12) never returns from LoadAll on some malformed streams, such as one that
// starts with a stray ',' (yaml-cpp issue #1040; fixed upstream by PR #1319): its parser then
// reports a document without consuming anything, and LoadAll collects empty documents until
// memory runs out. A typo in a config file must give a syntax error, not hang a reload.
//
// Thread-safety: pure; safe from any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace pgtenant::conf {

// Throws YAML::Exception (YAML::ParserException for the streams LoadAll would loop on) like
// YAML::LoadAll; callers in conf/ turn it into a diagnostic.
std::vector<YAML::Node> LoadYamlDocuments(const std::string& text);

}  // namespace pgtenant::conf
