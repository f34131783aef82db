// inferd command line: serve | generate | tokenize | perplexity | logits | export-hf | bench | memory
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/common.h"

namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The deepest subcommand the user named (flags are checked there).
const CLI::App* Innermost(const CLI::App* app) {
  for (const CLI::App* sub : app->get_subcommands()) return Innermost(sub);
  return app;
}

// "unknown flag --prot; did you mean --port?" for each unexpected argument, like vLLM's argparse.
void SuggestFlags(const CLI::App& app, const std::vector<std::string>& extras) {
  const CLI::App* cmd = Innermost(&app);
  for (const std::string& extra : extras) {
    if (extra.rfind("--", 0) != 0) continue;
    const std::string flag = extra.substr(0, extra.find('='));
    bool known = false;
    for (const CLI::Option* opt : cmd->get_options()) {
      for (const std::string& name : opt->get_lnames()) known = known || flag == "--" + name;
    }
    if (known) continue;
    std::string best;
    size_t best_d = 4;  // suggest only close matches
    for (const CLI::Option* opt : cmd->get_options()) {
      for (const std::string& name : opt->get_lnames()) {
        const size_t d = EditDistance(flag, "--" + name);
        if (d < best_d) {
          best_d = d;
          best = "--" + name;
        }
      }
    }
    if (!best.empty()) std::fprintf(stderr, "unknown flag %s; did you mean %s?\n", flag.c_str(), best.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"inferd: LLM inference engine and OpenAI-compatible server"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "inferd 0.1.0");
  inferd::cli::AddServeCommand(app);
  inferd::cli::AddGenerateCommand(app);
  inferd::cli::AddTokenizeCommand(app);
  inferd::cli::AddPerplexityCommands(app);
  inferd::cli::AddExportHfCommand(app);
  inferd::cli::AddBenchCommands(app);
  inferd::cli::AddMemoryCommand(app);
  inferd::cli::AddRouterCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    SuggestFlags(app, std::vector<std::string>(argv + 1, argv + argc));
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return inferd::cli::ExitCode();
}
