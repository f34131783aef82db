// A progress bar on stderr in vLLM's (tqdm's) format when stderr is a terminal:
//   Processed prompts:  37%|███▋      | 24/64 [00:05<00:08, est. speed input: 812.00 toks/s, output: 301.00 toks/s]
// and a plain line every few seconds otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace inferd::cli {

class ProgressBar {
 public:
  ProgressBar(std::string desc, int64_t total, bool enabled = true);
  void Update(int64_t done, int64_t input_tokens, int64_t output_tokens);
  void Close();

 private:
  std::string Render(int64_t done, int64_t in, int64_t out, double elapsed) const;

  std::string desc_;
  int64_t total_;
  bool enabled_, tty_, closed_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  int64_t last_done_ = 0, last_in_ = 0, last_out_ = 0;
};

// "01:05" / "1:02:03"
std::string FormatDuration(double seconds);

}  // namespace inferd::cli
