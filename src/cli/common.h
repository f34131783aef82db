// Options shared by the inferd subcommands: which model to load and how to size the engine.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "inferd/engine.h"
#include "model/model.h"

namespace inferd::cli {

// The embedded default model: $INFERD_MODEL, else the cache path scripts/fetch-model.sh uses.
std::string DefaultModelPath();

// The flags fill the engine's public EngineArgs (inferd/engine.h), field for field.
struct ModelFlags : EngineArgs {
  void Add(CLI::App* app, bool engine_flags);
};

// Loads the model alone (and sets up threads), for commands that run no engine; errors are
// printed by the caller.
StatusOr<std::unique_ptr<LoadedModel>> LoadFromFlags(ModelFlags& flags);
// Engine::Create with the flags' EngineArgs.
StatusOr<std::unique_ptr<Engine>> EngineFromFlags(const ModelFlags& flags);

// Prints "error: <message>" to stderr and sets the process exit code to 1.
void Fail(const Status& status);
// Exit code the subcommand callbacks leave for main().
int& ExitCode();

void AddGenerateCommand(CLI::App& app);
void AddTokenizeCommand(CLI::App& app);
void AddPerplexityCommands(CLI::App& app);  // perplexity, logits
void AddExportHfCommand(CLI::App& app);
void AddBenchCommands(CLI::App& app);  // bench throughput, bench serve
void AddServeCommand(CLI::App& app);   // serve
void AddMemoryCommand(CLI::App& app);  // memory
void AddRouterCommand(CLI::App& app);  // router

}  // namespace inferd::cli
