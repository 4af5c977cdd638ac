#include "conf/yaml_documents.h"

#include <yaml-cpp/eventhandler.h>

#include <sstream>

namespace pgtenant::conf {
namespace {

// Records where each document starts and ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

std::vector<YAML::Node> LoadYamlDocuments(const std::string& text) {
  // A first pass that builds nothing: every document must consume input, so one that starts
  // where the previous one did means the parser is stuck, and LoadAll would never return.
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts events;
  while (parser.HandleNextDocument(events)) {
    const size_t n = events.starts.size();
    if (n >= 2 && events.starts[n - 1].pos == events.starts[n - 2].pos) {
      const YAML::Mark& at = events.starts[n - 1];
      const char c = at.pos >= 0 && static_cast<size_t>(at.pos) < text.size() ? text[at.pos] : ' ';
      const bool printable = c > 0x20 && c < 0x7f;
      throw YAML::ParserException(at, printable ? std::string("unexpected '") + c + "'"
                                                : std::string("unexpected character"));
    }
  }
  // The stream parses to an end, so LoadAll (the same parser) terminates too.
  return YAML::LoadAll(text);
}

}  // namespace pgtenant::conf
