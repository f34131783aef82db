// WorkQueue: a few worker threads that run submitted tasks in FIFO order, for work that
// must not run on an event loop (the server's I/O thread hands request parsing, chat
// templates and tokenization to one, so a slow request delays only itself).
//
// Bounded: at most `capacity` tasks wait; TrySubmit refuses more, so a flood of requests
// turns into quick 503s instead of unbounded memory. Unlike ThreadPool (data-parallel
// loops inside one forward step), tasks here are independent and may take milliseconds
// to seconds.
//
// Thread-safety: TrySubmit and Stop may be called from any thread. Stop() discards the
// tasks that have not started, waits for the running ones and joins the workers; the
// destructor calls it. A task must not call Stop().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace inferd {

class WorkQueue {
 public:
  WorkQueue(int num_threads, size_t capacity);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // False (and `task` is dropped) when `capacity` tasks are already waiting or the queue
  // was stopped.
  bool TrySubmit(std::function<void()> task);
  void Stop();

  size_t num_waiting() const;
  int num_threads() const { return static_cast<int>(workers_.size()); }

 private:
  void Loop();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace inferd
