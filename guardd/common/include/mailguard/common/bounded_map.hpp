#pragma once
// A map with a capacity that forgets its oldest entry, for per-peer and per-program state
// that an attacker can make grow (a new source port, a new hash per attempt). Evicting by
// age, not by key order, matters: the smallest key is an arbitrary entry, possibly the one
// that is still in force (a throttle that must go on holding a SYN), while the oldest one
// is the least likely still to be needed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <map>
#include <utility>

namespace mailguard {

// Ordered look-up (so any `<`-comparable key works, a std::tuple say) plus a list in age
// order: the oldest entry is the one least recently inserted, assigned or touched.
// References to values stay valid until their entry is erased or evicted.
template <class K, class V>
class BoundedMap {
  using List = std::list<std::pair<const K, V>>;

 public:
  using value_type = typename List::value_type;
  using iterator = typename List::iterator;
  using const_iterator = typename List::const_iterator;

  // A capacity of 0 is taken as 1: put() returns a reference to what it stored.
  explicit BoundedMap(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}
  // The index holds iterators into this object's list: a copy would point into the
  // original. Moving keeps them valid (std::list's move transfers its nodes).
  BoundedMap(const BoundedMap&) = delete;
  BoundedMap& operator=(const BoundedMap&) = delete;
  BoundedMap(BoundedMap&&) = default;
  BoundedMap& operator=(BoundedMap&&) = default;
  ~BoundedMap() = default;

  // Does not refresh the entry's age.
  V* find(const K& key) {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }
  const V* find(const K& key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }
  [[nodiscard]] bool contains(const K& key) const { return index_.contains(key); }

  // Inserts (as newest) or assigns (and refreshes); evicts the oldest beyond capacity.
  V& put(const K& key, V value) {
    if (const auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(value);
      entries_.splice(entries_.end(), entries_, it->second);
      return it->second->second;
    }
    return insertNewest(key, std::move(value));
  }

  // Inserts when absent (as newest) and returns {value, true}; when present, returns
  // {the value it has, false} and leaves it and its age untouched.
  std::pair<V&, bool> tryPut(const K& key, V value) {
    if (const auto it = index_.find(key); it != index_.end()) return {it->second->second, false};
    return {insertNewest(key, std::move(value)), true};
  }

  // Makes the entry the newest; nothing when absent.
  void touch(const K& key) {
    if (const auto it = index_.find(key); it != index_.end()) {
      entries_.splice(entries_.end(), entries_, it->second);
    }
  }

  bool erase(const K& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return false;
    entries_.erase(it->second);
    index_.erase(it);
    return true;
  }

  // Erases every entry for which pred(const K&, const V&) holds; returns how many.
  template <class Pred>
  std::size_t eraseIf(Pred pred) {
    std::size_t erased = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (pred(std::as_const(it->first), std::as_const(it->second))) {
        index_.erase(it->first);
        it = entries_.erase(it);
        ++erased;
      } else {
        ++it;
      }
    }
    return erased;
  }

  void clear() {
    index_.clear();
    entries_.clear();
  }

  [[nodiscard]] bool empty() const { return entries_.empty(); }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }
  // How many entries were evicted for room so far (not erased ones).
  [[nodiscard]] std::uint64_t evicted() const { return evicted_; }

  // Oldest first. Through a non-const iterator the values may change, not their age.
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  [[nodiscard]] const_iterator begin() const { return entries_.begin(); }
  [[nodiscard]] const_iterator end() const { return entries_.end(); }

 private:
  V& insertNewest(const K& key, V value) {
    entries_.emplace_back(key, std::move(value));
    const auto newest = std::prev(entries_.end());
    index_.emplace(key, newest);
    // The new entry is at the back and the capacity is at least one: it is never evicted.
    while (entries_.size() > capacity_) {
      index_.erase(entries_.front().first);
      entries_.pop_front();
      ++evicted_;
    }
    return newest->second;
  }

  std::size_t capacity_;
  std::uint64_t evicted_ = 0;
  List entries_;                                // oldest first
  std::map<K, typename List::iterator> index_;  // key -> its entry
};

}  // namespace mailguard
