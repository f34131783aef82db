#include "cli/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace inferd::cli {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{:02d}:{:02d}", s / 60, s % 60);
}

ProgressBar::ProgressBar(std::string desc, int64_t total, bool enabled)
    : desc_(std::move(desc)), total_(total), enabled_(enabled), tty_(isatty(2) != 0) {
  start_ = last_print_ = std::chrono::steady_clock::now();
}

std::string ProgressBar::Render(int64_t done, int64_t in, int64_t out, double elapsed) const {
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
  const double rate = elapsed > 0 ? done / elapsed : 0;
  const double remaining = rate > 0 ? (total_ - done) / rate : NAN;
  std::string line = fmt::format("{}: {:3d}%|", desc_, static_cast<int>(frac * 100));
  if (tty_) {
    // 10 cells, eighths for the partial cell.
    static const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    const int cells = 10, eighths = static_cast<int>(frac * cells * 8);
    int used = 0;
    for (int i = 0; i < eighths / 8; ++i, ++used) line += "█";
    if (used < cells && eighths % 8) {
      line += kEighths[eighths % 8];
      ++used;
    }
    line.append(cells - used, ' ');
  }
  line += fmt::format("| {}/{} [{}<{}, est. speed input: {:.2f} toks/s, output: {:.2f} toks/s]", done, total_,
                      FormatDuration(elapsed), FormatDuration(remaining), elapsed > 0 ? in / elapsed : 0.0,
                      elapsed > 0 ? out / elapsed : 0.0);
  return line;
}

void ProgressBar::Update(int64_t done, int64_t in, int64_t out) {
  last_done_ = done;
  last_in_ = in;
  last_out_ = out;
  if (!enabled_ || closed_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since < (tty_ ? 0.1 : 5.0) && done < total_) return;
  last_print_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, tty_ ? "\r%s" : "%s\n", Render(done, in, out, elapsed).c_str());
  std::fflush(stderr);
}

void ProgressBar::Close() {
  if (closed_ || !enabled_) return;
  closed_ = true;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, tty_ ? "\r%s\n" : "%s\n", Render(last_done_, last_in_, last_out_, elapsed).c_str());
}

}  // namespace inferd::cli
