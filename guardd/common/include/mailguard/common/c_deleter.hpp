#pragma once
// unique_ptr deleter for C handles: std::unique_ptr<mnl_socket, CDeleter<mnl_socket_close>>.
namespace mailguard {

template <auto Free>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

}  // namespace mailguard
