// inferd command line: generate | tokenize | perplexity | logits | export-hf
#include <CLI/CLI.hpp>

#include "cli/common.h"

int main(int argc, char** argv) {
  CLI::App app{"inferd: LLM inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "inferd 0.1.0");
  inferd::cli::AddGenerateCommand(app);
  inferd::cli::AddTokenizeCommand(app);
  inferd::cli::AddPerplexityCommands(app);
  inferd::cli::AddExportHfCommand(app);
  inferd::cli::AddBenchCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return inferd::cli::ExitCode();
}
