#pragma once
// The replies guardd owes callers of asynchronous methods, owned here and nowhere else.
//
// Why: an sdbus-c++ 1.2 message (and so sdbus::Result, which holds the method call)
// keeps a raw pointer to its connection's ISdBus object, which the connection owns
// (Connection::iface_, a unique_ptr). Replying to, or merely destroying, a Result after
// its connection is gone calls through that dangling pointer. So the core is handed a
// callback that captures only a token and a weak handle to this table; drop() runs
// before the connection goes (reconnect, shutdown), and a completion arriving later
// finds its token gone, or the table itself gone, and does nothing.
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>

namespace mailguard::bus {

class PendingReplies {
 public:
  using Token = std::uint64_t;

  // Keeps `reply` until take() or drop(); the token is never reused.
  template <class Reply>
  Token park(Reply reply) {
    const Token token = next_++;
    entries_.emplace(token, std::make_unique<Entry<Reply>>(std::move(reply)));
    return token;
  }

  // The reply parked under `token`, or nullopt when it was taken or dropped already (or
  // parked as another type, which is a programming error the caller cannot act on).
  template <class Reply>
  std::optional<Reply> take(Token token) {
    const auto it = entries_.find(token);
    if (it == entries_.end()) return std::nullopt;
    auto* entry = dynamic_cast<Entry<Reply>*>(it->second.get());
    if (entry == nullptr) return std::nullopt;
    std::optional<Reply> out(std::move(entry->reply));
    entries_.erase(it);
    return out;
  }

  // Destroys every parked reply: the caller then gets no answer (its bus is gone, or
  // guardd is stopping, so its call fails with NoReply or Disconnected on its side).
  void drop() { entries_.clear(); }

  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  struct Base {
    virtual ~Base() = default;
  };
  template <class Reply>
  struct Entry final : Base {
    explicit Entry(Reply r) : reply(std::move(r)) {}
    Reply reply;
  };

  Token next_ = 1;
  std::unordered_map<Token, std::unique_ptr<Base>> entries_;
};

// How a completion finds its reply: the table may be gone (the connection was torn
// down), or the token dropped. Runs `send(reply)` only when the reply is still owed.
template <class Reply, class Send>
void completeReply(const std::weak_ptr<PendingReplies>& table, PendingReplies::Token token,
                   Send&& send) {
  const auto pending = table.lock();
  if (!pending) return;
  auto reply = pending->take<Reply>(token);
  if (!reply) return;
  send(*reply);
}

}  // namespace mailguard::bus
