// The library's threads: a parallel for over chunks of a range, on a pool that sleeps between
// jobs (no spinning) and never makes the caller wait for a thread that holds no work.
//
// Why not OpenMP: on a machine with more runnable threads than cores (2 cores rendering while
// x264 encodes, or other processes), a fork/join region waits at its barrier for a thread the
// scheduler has parked, and libgomp's waiting threads spin meanwhile, taking the core from
// the thread they wait for; measured on 2 loaded cores, 2 OpenMP threads took 4x the CPU time
// and wall time of 1. Here the caller takes chunks itself, in order, like every worker: a
// worker that has not woken up yet holds no chunk, and the caller waits (asleep) only for
// chunks already taken. Without threads everything runs on the caller, in the same order of
// chunks per result, so the results do not depend on the number of threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define P3D_PID() static_cast<long>(::getpid())
#else
#define P3D_PID() 0L
#endif

namespace p3d {

// body(begin, end, participant): participant 0 is the caller, 1 .. threads - 1 the workers, so
// that per-participant scratch can be indexed by it.
using Body = std::function<void(int64_t, int64_t, int)>;

class Pool {
 public:
  void parallel_for(int threads, int64_t n, int64_t chunk, const Body& body) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(chunk, 1);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    // one job at a time: a second caller (another Python thread) or a nested call runs alone
    if (threads <= 1 || n_chunks <= 1 || !busy.owns_lock()) {
      for (int64_t b = 0; b < n; b += chunk) body(b, std::min(n, b + chunk), 0);
      return;
    }
    threads = int(std::min<int64_t>(threads, n_chunks));
    grow(threads - 1);
    auto job = std::make_shared<Job>();
    job->body = &body;
    job->n = n;
    job->chunk = chunk;
    job->n_chunks = n_chunks;
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = job;
      limit_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    run(*job, 0);
    if (job->done.load() != n_chunks) {
      std::unique_lock<std::mutex> lock(job->m);
      job->finished.wait(lock, [&] { return job->done.load() == job->n_chunks; });
    }
  }

 private:
  struct Job {
    const Body* body = nullptr;  // valid while chunks remain: the caller waits for them
    int64_t n = 0, chunk = 1, n_chunks = 0;
    std::atomic<int64_t> next{0}, done{0};
    std::mutex m;
    std::condition_variable finished;
  };

  static void run(Job& job, int participant) {
    for (;;) {
      const int64_t c = job.next.fetch_add(1);
      if (c >= job.n_chunks) return;  // a late worker: nothing left, body never touched
      const int64_t b = c * job.chunk;
      (*job.body)(b, std::min(job.n, b + job.chunk), participant);
      if (job.done.fetch_add(1) + 1 == job.n_chunks) {
        std::lock_guard<std::mutex> lock(job.m);
        job.finished.notify_all();
      }
    }
  }

  void worker(int index) {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= limit_) continue;
        job = job_;
      }
      run(*job, index + 1);
    }
  }

  void grow(int n) {
    std::lock_guard<std::mutex> lock(m_);
    while (int(workers_.size()) < n) {
      const int index = int(workers_.size());
      workers_.emplace_back([this, index] { worker(index); });
      workers_.back().detach();  // the pool lives as long as the process
    }
  }

  std::mutex busy_;
  std::mutex m_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  int limit_ = 0;
  std::vector<std::thread> workers_;
};

// The process's pool, made on first use; a forked child (whose copy has no threads, and maybe
// a mutex held at the fork) gets its own.
inline Pool& pool() {
  static std::mutex m;
  static Pool* instance = nullptr;
  static long owner = -1;
  std::lock_guard<std::mutex> lock(m);
  if (instance == nullptr || owner != P3D_PID()) {
    instance = new Pool();  // never destroyed: its threads sleep until the process exits
    owner = P3D_PID();
  }
  return *instance;
}

inline void parallel_for(int threads, int64_t n, int64_t chunk, const Body& body) {
  pool().parallel_for(threads, n, chunk, body);
}

}  // namespace p3d
