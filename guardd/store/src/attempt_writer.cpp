#include <algorithm>
#include <chrono>
#include <iterator>
#include <utility>

#include "mailguard/store/store.hpp"

namespace mailguard::store {
namespace {

using namespace std::chrono_literals;

// A failed batch is retried after 50, 100, 200, 400 and 800 ms, then dropped: a full
// disk must cost attempts, never unbounded memory or a stuck writer.
constexpr int kMaxRetries = 5;
constexpr auto kFirstRetryDelay = 50ms;
constexpr std::uint64_t kPruneEveryAttempts = 1000;
constexpr auto kPruneInterval = 60s;
// Having woken for a few items, wait this long for more before writing, so a burst of
// attempts is one transaction, not one each (issue #7: a transaction per attempt kept the
// writer busy on the core the verdicts needed). flush() and stopping cut it short.
constexpr auto kLinger = 10ms;
constexpr std::size_t kLingerUntilItems = 512;

}  // namespace

Result<std::unique_ptr<AttemptWriter>> AttemptWriter::start(const std::filesystem::path& stateDir,
                                                            std::size_t maxQueued) {
  auto store = SqliteStore::open(stateDir);
  if (!store) return store.error();
  // Attempts are a record, not a promise to the owner: one fsync per batch cost more than
  // writing the batch (issue #7).
  if (auto r = (*store)->relaxSync(); !r) return r.error();
  std::unique_ptr<AttemptWriter> writer(new AttemptWriter());
  writer->store_ = std::move(*store);
  writer->maxQueued_ = std::max<std::size_t>(maxQueued, 1);
  writer->thread_ = std::thread([w = writer.get()] { w->run(); });
  return {std::move(writer)};
}

AttemptWriter::~AttemptWriter() {
  {
    const std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AttemptWriter::submit(AttemptRecord a) {
  {
    const std::lock_guard lock(mu_);
    if (queue_.size() >= maxQueued_) {
      ++stats_.attemptsDropped;
      return;
    }
    queue_.emplace_back(std::move(a));
    ++submitted_;
    // The writer waits for the first item, then lingers until the batch is big enough:
    // waking it for every item in between costs a context switch each.
    if (queue_.size() != 1 && queue_.size() != kLingerUntilItems) return;
  }
  wake_.notify_one();
}

void AttemptWriter::submit(ProgramRecord p) {
  {
    const std::lock_guard lock(mu_);
    // A dropped sighting is repeated by the next attempt of the program; attempts
    // that name it meanwhile are stored unattributed (see writeBatch).
    if (queue_.size() >= maxQueued_) return;
    queue_.emplace_back(std::move(p));
    ++submitted_;
    if (queue_.size() != 1 && queue_.size() != kLingerUntilItems) return;
  }
  wake_.notify_one();
}

void AttemptWriter::flush() {
  std::unique_lock lock(mu_);
  const auto target = submitted_;
  ++flushWaiters_;
  wake_.notify_one();
  done_.wait(lock, [&] { return completed_ >= target; });
  --flushWaiters_;
}

WriterStats AttemptWriter::stats() const {
  const std::lock_guard lock(mu_);
  return stats_;
}

void AttemptWriter::setRetention(std::chrono::hours maxAge, std::uint64_t maxCount) {
  {
    const std::lock_guard lock(mu_);
    retentionAge_ = maxAge;
    retentionCount_ = maxCount;
    // An outstanding prune counts as one item, so that flush() waits for it.
    if (!pruneDue_) ++submitted_;
    pruneDue_ = true;
  }
  wake_.notify_one();
}

void AttemptWriter::run() {
  // The batch in hand: kept across failed attempts to write it, so while it is retried
  // new items wait in (and are bounded by) the queue.
  std::vector<ProgramRecord> programs;
  std::vector<AttemptRecord> attempts;
  int failures = 0;
  std::uint64_t sincePrune = 0;
  auto lastPrune = std::chrono::steady_clock::now();

  std::unique_lock lock(mu_);
  for (;;) {
    const bool haveBatch = !programs.empty() || !attempts.empty();
    if (!haveBatch) {
      if (stop_ && queue_.empty()) break;
      wake_.wait_until(lock, lastPrune + kPruneInterval,
                       [this] { return stop_ || pruneDue_ || !queue_.empty(); });
      if (!queue_.empty() && queue_.size() < kLingerUntilItems) {
        wake_.wait_for(lock, kLinger, [this] {
          return stop_ || flushWaiters_ > 0 || queue_.size() >= kLingerUntilItems;
        });
      }
      for (auto& item : queue_) {
        if (auto* a = std::get_if<AttemptRecord>(&item)) {
          attempts.push_back(std::move(*a));
        } else {
          programs.push_back(std::get<ProgramRecord>(std::move(item)));
        }
      }
      queue_.clear();
    }
    const std::size_t items = programs.size() + attempts.size();
    const bool requested = pruneDue_;
    const bool pruneNow = pruneDue_ || sincePrune >= kPruneEveryAttempts ||
                          std::chrono::steady_clock::now() - lastPrune >= kPruneInterval;
    const auto maxAge = retentionAge_;
    const auto maxCount = retentionCount_;
    if (pruneNow) pruneDue_ = false;
    lock.unlock();

    Result<void> written;
    if (items > 0) written = store_->writeBatch(programs, attempts);
    Result<void> pruned;
    if (pruneNow) {
      pruned = store_->prune(std::chrono::system_clock::now() - maxAge, maxCount);
      lastPrune = std::chrono::steady_clock::now();
      sincePrune = 0;
    }

    lock.lock();
    if (!written) {
      ++stats_.writeErrors;
      stats_.lastError = written.error().message;
    } else if (items > 0) {
      stats_.lastError.clear();
    }
    if (!pruned) {
      ++stats_.writeErrors;
      stats_.lastError = pruned.error().message;
    }
    if (requested) {
      ++completed_;
      done_.notify_all();
    }
    if (items == 0) continue;

    if (written || ++failures > kMaxRetries) {
      if (written) {
        stats_.attemptsWritten += attempts.size();
        sincePrune += attempts.size();
      } else {
        stats_.attemptsDropped += attempts.size();
      }
      completed_ += items;
      programs.clear();
      attempts.clear();
      failures = 0;
      done_.notify_all();
    } else {
      // Back off, but not when stopping: then the retries run back to back.
      const auto delay = kFirstRetryDelay * (1 << (failures - 1));
      wake_.wait_for(lock, delay, [this] { return stop_; });
    }
  }
}

}  // namespace mailguard::store
